"""Decode audio: soundfile (libsndfile) for WAV/FLAC/OGG/MP3, soxr for resampling.

Long files are streamed in blocks so memory does not grow with file length.
Every problem with a file raises :class:`AudioError` with a message a person
understands; the pipeline turns it into a row of the ``errors`` table.

Examples
--------
>>> from audiopipe.audio import load
>>> y, sr = load("clip.flac", sr=22050)          # doctest: +SKIP
>>> for block in stream("long.flac", sr=22050):   # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "AudioInfo", "info", "stream", "load", "to_mono", "resample"]


class AudioError(Exception):
    """A file that cannot be used, with a reason a person understands."""

    def __init__(self, message: str, kind: str = "decode") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file."""

    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(src: str | BinaryIO | Any) -> sf.SoundFile:
    try:
        if hasattr(src, "read"):
            return sf.SoundFile(src)
        return sf.SoundFile(str(src))
    except sf.LibsndfileError as err:
        raise AudioError(f"not a readable audio file ({err.error_string})", "decode") from None
    except (RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"not a readable audio file ({err})", "decode") from None


_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _check_log(f: sf.SoundFile) -> None:
    """libsndfile notes in its log when a WAV/AIFF data chunk is shorter than its header says."""
    try:
        log = f.extra_info
    except Exception:  # noqa: BLE001 - the log is best-effort
        return
    m = _DATA_SHORT.search(log or "")
    if m and int(m.group(2)) < int(m.group(1)):
        raise AudioError(
            f"file is truncated: header claims {m.group(1)} bytes of audio data, the file holds {m.group(2)}",
            "truncated",
        )


def info(src: str | BinaryIO) -> AudioInfo:
    """Read the header of ``src`` (path or binary file object)."""
    with _open(src) as f:
        return AudioInfo(f.format, f.subtype, int(f.samplerate), int(f.channels), int(f.frames))


def check_header(hdr: AudioInfo, limits: Any | None = None) -> None:
    """Raise :class:`AudioError` for headers that are absurd or outside ``limits``."""
    if hdr.sample_rate <= 0:
        raise AudioError(f"header claims a sample rate of {hdr.sample_rate} Hz", "header")
    if hdr.channels <= 0:
        raise AudioError(f"header claims {hdr.channels} channels", "header")
    if limits is None:
        return
    if not limits.min_sample_rate <= hdr.sample_rate <= limits.max_sample_rate:
        raise AudioError(
            f"sample rate {hdr.sample_rate} Hz is outside the allowed "
            f"{limits.min_sample_rate}..{limits.max_sample_rate} Hz (limits.*_sample_rate)",
            "limits",
        )
    if hdr.channels > limits.max_channels:
        raise AudioError(
            f"{hdr.channels} channels exceed limits.max_channels={limits.max_channels}", "limits"
        )
    if hdr.frames > 0 and hdr.duration > limits.max_duration_s:
        raise AudioError(
            f"duration {hdr.duration:.1f} s exceeds limits.max_duration_s={limits.max_duration_s}",
            "limits",
        )


def to_mono(x: np.ndarray, channels: str | int = "mix") -> np.ndarray:
    """Reduce ``(n, channels)`` samples to mono: ``"mix"`` (mean), ``"first"`` or an index."""
    if x.ndim == 1:
        return x
    if channels == "mix":
        return x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    idx = 0 if channels == "first" else int(channels)
    if idx >= x.shape[1]:
        raise AudioError(
            f"channel {idx} requested but the file has {x.shape[1]} channels", "channels"
        )
    return x[:, idx]


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a whole signal with soxr (high quality); identity when rates match."""
    if orig_sr == target_sr:
        return np.asarray(y, dtype=np.float32)
    return soxr.resample(np.asarray(y, dtype=np.float32), orig_sr, target_sr, quality="HQ")


def stream(
    src: str | BinaryIO,
    sr: int | None = None,
    *,
    channels: str | int = "mix",
    block_seconds: float = 60.0,
    limits: Any | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``src`` resampled to ``sr``.

    Memory is bounded by ``block_seconds`` whatever the file's length. A file
    whose data ends before its header says (truncated) yields what it has and
    then raises :class:`AudioError`, so the caller can discard partial output.

    Parameters
    ----------
    src : path or binary file object
    sr : target sample rate (None keeps the native rate)
    channels : "mix" (mean of channels), "first", or a channel index
    block_seconds : decode block length in seconds (at the native rate)
    limits : object with ``min/max_sample_rate``, ``max_channels``, ``max_duration_s``
    """
    with _open(src) as f:
        hdr = AudioInfo(f.format, f.subtype, int(f.samplerate), int(f.channels), int(f.frames))
        check_header(hdr, limits)
        _check_log(f)
        native = hdr.sample_rate
        target = sr or native
        blocksize = max(1024, int(block_seconds * native))
        rs = (
            soxr.ResampleStream(native, target, 1, dtype="float32", quality="HQ")
            if target != native
            else None
        )
        total = 0
        try:
            while True:
                x = f.read(blocksize, dtype="float32", always_2d=True)
                n = x.shape[0]
                last = n < blocksize
                total += n
                if limits is not None and total / native > limits.max_duration_s:
                    raise AudioError(
                        f"decoded audio exceeds limits.max_duration_s={limits.max_duration_s}",
                        "limits",
                    )
                y = to_mono(x, channels)
                if not np.all(np.isfinite(y)):
                    raise AudioError("decoded samples contain NaN or infinity", "decode")
                if rs is not None:
                    y = rs.resample_chunk(np.ascontiguousarray(y), last=last)
                if y.size:
                    yield np.ascontiguousarray(y, dtype=np.float32)
                if last:
                    break
        except sf.LibsndfileError as err:
            raise AudioError(
                f"decoding failed after {total} frames ({err.error_string})", "decode"
            ) from None
        except RuntimeError as err:
            raise AudioError(f"decoding failed after {total} frames ({err})", "decode") from None
        if hdr.frames > 0 and total < hdr.frames:
            raise AudioError(
                f"file is truncated: header claims {hdr.frames} frames, only {total} could be decoded",
                "truncated",
            )
        if total == 0:
            raise AudioError("file contains no audio frames", "empty")


def load(
    src: str | BinaryIO | bytes,
    sr: int | None = None,
    *,
    channels: str | int = "mix",
    limits: Any | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a whole file to mono float32 at ``sr`` (native rate when None).

    Examples
    --------
    >>> y, sr = load("clip.wav", sr=16000)  # doctest: +SKIP
    """
    if isinstance(src, bytes):
        src = io.BytesIO(src)
    if sr is None:
        sr = info(src).sample_rate
        if hasattr(src, "seek"):
            src.seek(0)
    blocks = list(stream(src, sr, channels=channels, limits=limits))
    y = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return y, int(sr)

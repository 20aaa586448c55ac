"""Decode audio: soundfile (libsndfile) for WAV/FLAC/OGG/MP3, soxr for resampling.

Long files are streamed in blocks so memory does not grow with file length.
Every problem with a file raises :class:`AudioError` with a message a person
understands; the pipeline turns it into a row of the ``errors`` table.

Examples
--------
>>> from audiopipe.audio import load, stream
>>> y, sr = load("clip.flac", sr=22050)          # doctest: +SKIP
>>> for block in stream("long.flac", sr=22050):   # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import importlib
import io
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from audiopipe import ogg

__all__ = [
    "DecoderHook",
    "DECODER_HOOK_ENV",
    "load_decoder_hook",
    "AudioError",
    "AudioInfo",
    "info",
    "stream",
    "resample_blocks",
    "load",
    "to_mono",
    "resample",
]


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


def _check_ogg(src: str | BinaryIO | Any) -> None:
    """An Ogg file holds one stream (link) whose last complete page ends it (flag ``0x04``):
    else :class:`AudioError` (:mod:`audiopipe.ogg` says why libsndfile alone would not tell)."""
    if hasattr(src, "read"):
        if getattr(src, "seekable", lambda: True)() is False:
            return  # (libsndfile could not have opened it then)
        _raise_ogg(ogg.problem(src))
        return
    with open(str(src), "rb", buffering=1 << 16) as fh:
        _raise_ogg(ogg.problem(fh))


def _raise_ogg(found: tuple[str, str] | None) -> None:
    if found is not None:
        raise AudioError(*found)


def _ogg_tap(src: str | BinaryIO | Any) -> ogg.Tap | None:
    """A tap on a remote file object (not a path, not in memory, not an OS file): its Ogg
    pages are walked in the bytes libsndfile reads (the check reads nothing of its own)."""
    if not hasattr(src, "read") or isinstance(src, io.BytesIO):
        return None
    if getattr(src, "seekable", lambda: True)() is False:
        return None
    try:
        src.fileno()
        return None  # a local file
    except (AttributeError, OSError, ValueError):
        return ogg.Tap(src)


def _then_check(blocks: Iterator[np.ndarray], tap: ogg.Tap) -> Iterator[np.ndarray]:
    """``blocks``, then the tap's Ogg check (as a truncated WAV fails after its last block).
    When decoding fails, the Ogg check's finding is raised in its place, as for a local
    file, checked before decoding (a file cut before its first audio page is truncated, not
    empty)."""
    try:
        yield from blocks
    except AudioError:
        _raise_ogg(tap.problem())
        raise
    _raise_ogg(tap.problem())


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


#: in an array whose layout is inferred, the channel axis is at most this long
MAX_INFERRED_CHANNELS = 64


def _channel_axis(shape: tuple[int, ...]) -> int:
    """The channel axis of a 2-D array of unknown layout: the shorter axis (see :func:`to_mono`)."""
    n0, n1 = shape
    short = min(n0, n1)
    if n0 == n1 or short > MAX_INFERRED_CHANNELS:
        raise ValueError(
            f"cannot tell the channel axis of audio shaped {shape}: pass channel_axis=0 for "
            "(channels, samples) as librosa, or channel_axis=1 for (samples, channels) as soundfile"
        )
    return 0 if n0 < n1 else 1


def to_mono(
    y: np.ndarray, channels: str | int = "mix", *, channel_axis: int | None = None
) -> np.ndarray:
    """Mono float32 samples from 1-D or multichannel audio: the one channel-layout rule.

    Layouts: 1-D is mono already. 2-D is ``(samples, channels)`` as soundfile reads it
    (``channel_axis=1``) or ``(channels, samples)`` as librosa holds it (``channel_axis=0``);
    with ``channel_axis=None`` the shorter axis is taken as the channels, and an array whose
    axes are equally long, or whose shorter axis exceeds :data:`MAX_INFERRED_CHANNELS`, is
    refused as ambiguous (``ValueError``). Code that knows its layout (a decoder's blocks,
    where the last block may hold fewer samples than channels) passes ``channel_axis``.
    More than 2-D is librosa's ``(..., samples)``: every leading axis is a channel axis.

    ``channels`` is ``"mix"`` (the mean of the channels, summed in channel order in float32),
    ``"first"``, or a channel index (:class:`AudioError` when the file has fewer channels).
    Mixing adds channel views instead of reducing over the short axis (``x.mean(axis=1)`` on
    ``(n, 2)`` costs as much as decoding FLAC); for fewer than 8 channels the result is the
    same as ``mean``, bit for bit.

    Examples
    --------
    >>> x = np.array([[1.0, 3.0], [2.0, 4.0], [0.0, 0.0]], np.float32)  # (samples, channels)
    >>> to_mono(x).tolist(), to_mono(x.T).tolist(), to_mono(x, "first").tolist()
    ([2.0, 3.0, 0.0], [2.0, 3.0, 0.0], [1.0, 2.0, 0.0])
    >>> to_mono(np.zeros((2, 2)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot tell the channel axis of audio shaped (2, 2): pass channel_axis=0 ...
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        return y
    if y.ndim > 2:
        if channel_axis not in (None, 0):
            raise ValueError(f"audio shaped {y.shape} is (..., samples): channel_axis must be 0")
        y, axis = y.reshape(-1, y.shape[-1]), 0
    else:
        axis = _channel_axis(y.shape) if channel_axis is None else channel_axis % 2
    n_ch = y.shape[axis]
    views = [y[c] if axis == 0 else y[:, c] for c in range(n_ch)] if channels == "mix" else []
    if channels == "mix":
        if n_ch == 1:
            return views[0]
        out = np.add(views[0], views[1])
        for v in views[2:]:
            out += v
        out /= np.float32(n_ch)
        return out
    idx = 0 if channels == "first" else int(channels)
    if not 0 <= idx < n_ch:
        raise AudioError(f"channel {idx} requested but the file has {n_ch} channels", "channels")
    return y[idx] if axis == 0 else y[:, idx]


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a whole signal with soxr (high quality); identity when rates match."""
    if orig_sr == target_sr:
        return np.asarray(y, dtype=np.float32)
    return soxr.resample(np.asarray(y, dtype=np.float32), orig_sr, target_sr, quality="HQ")


def _add_time(timings: MutableMapping[str, float] | None, phase: str, t0: float) -> float:
    """Add the seconds since ``t0`` to ``timings[phase]``; return now."""
    now = time.perf_counter()
    if timings is not None:
        timings[phase] = timings.get(phase, 0.0) + (now - t0)
    return now


def stream(
    src: str | BinaryIO,
    sr: int | None = None,
    *,
    channels: str | int = "mix",
    block_seconds: float = 60.0,
    limits: Any | None = None,
    timings: MutableMapping[str, float] | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of ``src`` resampled to ``sr``.

    Memory is bounded by ``block_seconds`` whatever the file's length. A file
    whose data ends before its header says (truncated) yields what it has and
    then raises :class:`AudioError`, so the caller can discard partial output; an Ogg
    file (Vorbis, Opus) whose last complete page does not end its stream, or that chains
    several streams, raises before anything is decoded (libsndfile would decode it as a
    shorter clip) - a remote file object (fsspec) after its last block, or in place of an
    error decoding it, its pages walked in the bytes libsndfile read (the check adds no
    read of its own; an ingest reads a remote file once, hashes its bytes and decodes them
    from memory: :mod:`audiopipe.ingest.reader`); bytes after a complete stream (an ID3v1
    tag, padding) are ignored.

    Parameters
    ----------
    src : path or binary file object
        A local path is read by libsndfile directly (faster than through a Python file
        object, whose every read is a call back into Python).
    sr : target sample rate (None keeps the native rate)
    channels : "mix" (mean of channels), "first", or a channel index
    block_seconds : decode block length in seconds (at the native rate)
    limits : object with ``min/max_sample_rate``, ``max_channels``, ``max_duration_s``
    timings : mapping that accumulates seconds spent per phase: ``decode`` (libsndfile),
        ``mix`` (channels to mono, finiteness check), ``resample`` (soxr)

    Examples
    --------
    >>> import io, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.zeros((44100, 2), np.float32), 44100, format="WAV")
    >>> _ = buf.seek(0)
    >>> t = {}
    >>> sum(b.size for b in stream(buf, 22050, timings=t)), sorted(t)
    (22050, ['decode', 'mix', 'resample'])
    """
    t0 = time.perf_counter()
    tap = _ogg_tap(src)
    with _open(src if tap is None else tap) as f:
        hdr = AudioInfo(f.format, f.subtype, int(f.samplerate), int(f.channels), int(f.frames))
        check_header(hdr, limits)
        _check_log(f)
        if hdr.format == "OGG" and tap is None:  # Vorbis, Opus: libsndfile trusts the last page
            _check_ogg(src)
        _add_time(timings, "decode", t0)  # opening and the header
        blocks = _mono_blocks(f, hdr, channels, block_seconds, limits, timings)
        if hdr.format == "OGG" and tap is not None:
            blocks = _then_check(blocks, tap)
        yield from resample_blocks(blocks, hdr.sample_rate, sr or hdr.sample_rate, timings=timings)


def resample_blocks(
    blocks: Iterable[np.ndarray],
    orig_sr: int,
    target_sr: int,
    *,
    timings: MutableMapping[str, float] | None = None,
) -> Iterator[np.ndarray]:
    """Resample consecutive mono float32 blocks with soxr (HQ), streaming: the same samples as
    resampling their concatenation. Identity when the rates match.

    Examples
    --------
    >>> out = list(resample_blocks([np.zeros(44100, np.float32)] * 2, 44100, 22050))
    >>> sum(b.size for b in out)
    44100
    """
    if orig_sr == target_sr:
        yield from blocks
        return
    rs = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality="HQ")
    for y in itertools.chain(blocks, [None]):  # None: the end, flush what soxr holds
        t0 = time.perf_counter()
        out = rs.resample_chunk(np.zeros(0, np.float32) if y is None else y, last=y is None)
        _add_time(timings, "resample", t0)
        if out.size:
            yield out


def _mono_blocks(
    f: sf.SoundFile,
    hdr: AudioInfo,
    channels: str | int,
    block_seconds: float,
    limits: Any | None,
    timings: MutableMapping[str, float] | None,
) -> Iterator[np.ndarray]:
    """Decode an open file in blocks of ``block_seconds``, each mixed to mono float32."""
    native = hdr.sample_rate
    blocksize = max(1024, int(block_seconds * native))
    total = 0
    try:
        while True:
            t0 = time.perf_counter()  # (the consumer ran since the last block)
            x = f.read(blocksize, dtype="float32", always_2d=True)
            t0 = _add_time(timings, "decode", t0)
            n = x.shape[0]
            total += n
            if limits is not None and total / native > limits.max_duration_s:
                raise AudioError(
                    f"decoded audio exceeds limits.max_duration_s={limits.max_duration_s}",
                    "limits",
                )
            y = to_mono(x, channels, channel_axis=1)
            if not np.all(np.isfinite(y)):
                raise AudioError("decoded samples contain NaN or infinity", "decode")
            y = np.ascontiguousarray(y)
            _add_time(timings, "mix", t0)
            if y.size:
                yield y
            if n < blocksize:
                break
    except sf.LibsndfileError as err:
        promised = f" of the {hdr.frames} the header promises" if hdr.frames > total else ""
        raise AudioError(
            f"decoding failed after {total} frames{promised} ({err.error_string}): "
            "the file is cut short or damaged", "decode"
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


DecoderHook = Callable[[str], None]
DECODER_HOOK_ENV = "AUDIOPIPE_DECODER_HOOK"


def load_decoder_hook(spec: str | None) -> DecoderHook | None:
    """Import a decoder hook named ``"module:function"`` (None for no hook).

    The hook is called with each file's uri before it is decoded, in the worker
    process. It is how fault-injection tests (and users' own checks) reach the
    decoding step of a cluster run: set ``AUDIOPIPE_DECODER_HOOK`` where the run is
    planned (it travels to the workers with the ingest or clip-stage context), or on the
    workers. Clip stages call it in ``Dataset.load_audio`` on their workers.

    Examples
    --------
    >>> load_decoder_hook("os.path:basename")("/a/b.wav")
    'b.wav'
    """
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{DECODER_HOOK_ENV} must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)

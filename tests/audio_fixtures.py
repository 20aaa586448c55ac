"""Generated audio files with known content, and the bad inputs ingestion must survive."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def sine(f: float = 440.0, dur: float = 1.0, sr: int = 22050, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def write(
    path: Path, y: np.ndarray, sr: int, fmt: str | None = None, subtype: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, format=fmt, subtype=subtype)
    return path


def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write every bad input of the spine issue; returns name -> (path, expected: 'ok'|'error')."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    p = folder / "zero_bytes.wav"
    p.write_bytes(b"")
    out["zero"] = (p, "error")
    p = folder / "text.wav"
    p.write_text("this is not audio, just text pretending to be a wav file\n" * 20)
    out["text"] = (p, "error")
    full = write(folder / "_full.flac", sine(dur=3.0), 22050)
    data = full.read_bytes()
    full.unlink()
    p = folder / "truncated.flac"
    p.write_bytes(data[: len(data) // 2])
    out["truncated_flac"] = (p, "error")
    # a WAV whose header claims more frames than it holds
    y = (sine(dur=1.0) * 32767).astype("<i2")
    pcm = y.tobytes()
    claimed = len(pcm) * 4
    hdr = b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 22050 * 2, 2, 16)
    hdr += b"data" + struct.pack("<I", claimed)
    p = folder / "short_data.wav"
    p.write_bytes(hdr + pcm)
    out["header_lies"] = (p, "error")
    out["silence"] = (write(folder / "silence.wav", np.zeros(22050, np.float32), 22050), "ok")
    out["tiny"] = (write(folder / "tiny.wav", sine(dur=0.01), 22050), "ok")
    six = np.stack([sine(f=200 * (i + 1), dur=1.0) for i in range(6)], axis=1)
    out["six_channels"] = (write(folder / "six.wav", six, 22050), "ok")
    out["8k"] = (write(folder / "rate8k.wav", sine(dur=1.0, sr=8000), 8000), "ok")
    out["96k"] = (write(folder / "rate96k.flac", sine(dur=1.0, sr=96000), 96000), "ok")
    return out

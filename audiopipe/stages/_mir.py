"""Private helpers shared by the MIR stages (beats, transcribe, separate).

Onset strength and spectrograms come from ``audiopipe.features`` (no second STFT here).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

import audiopipe.features as F


def onset_strength(
    y: np.ndarray, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512, lag: int = 1
) -> np.ndarray:
    """Onset strength envelope (librosa definition, mean over mel bands), float64."""
    return np.asarray(
        F.onset_strength(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, lag=lag), dtype=np.float64
    )


def single_blas_thread() -> Any:
    """Context limiting BLAS to one thread: many small matmuls (NMF updates) run up to 40x
    slower with OpenBLAS threads on a loaded machine (measured: 513x16 @ 16x600 products)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def write_midi(
    path: str,
    notes: Sequence[tuple[float, float, int, int]],
    *,
    tempo_bpm: float = 120.0,
    ticks_per_beat: int = 480,
    program: int = 0,
) -> None:
    """Write a format-0 Standard MIDI File of ``(onset_s, offset_s, midi, velocity)`` notes."""
    us_per_beat = int(round(60e6 / tempo_bpm))
    tps = ticks_per_beat * 1e6 / us_per_beat  # ticks per second
    ev: list[tuple[int, int, bytes]] = []
    for on, off, pitch, vel in notes:
        p = int(np.clip(pitch, 0, 127))
        v = int(np.clip(vel, 1, 127))
        t_on, t_off = int(round(on * tps)), int(round(max(off, on) * tps))
        ev.append((t_on, 1, bytes([0x90, p, v])))
        ev.append((max(t_off, t_on + 1), 0, bytes([0x80, p, 0])))  # offs first at equal time
    ev.sort(key=lambda e: (e[0], e[1]))
    trk = bytearray(b"\x00\xff\x51\x03" + us_per_beat.to_bytes(3, "big"))
    trk += b"\x00" + bytes([0xC0, program & 0x7F])
    now = 0
    for t, _, msg in ev:
        trk += _vlq(t - now) + msg
        now = t
    trk += b"\x00\xff\x2f\x00"
    with open(path, "wb") as fh:
        fh.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat))
        fh.write(b"MTrk" + struct.pack(">I", len(trk)) + bytes(trk))


def read_midi_notes(path: str) -> list[tuple[float, float, int, int]]:
    """Read back notes from a format-0 file written by :func:`write_midi` (for tests)."""
    data = open(path, "rb").read()
    _, _, _, tpb = struct.unpack(">IHHH", data[4:14])
    i = 22
    us_per_beat = 500000
    t = 0
    open_: dict[int, tuple[int, int]] = {}
    out = []
    while i < len(data):
        d = 0
        while True:
            b = data[i]
            i += 1
            d = (d << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        t += d
        st = data[i]
        if st == 0xFF:
            typ, ln = data[i + 1], data[i + 2]
            if typ == 0x51:
                us_per_beat = int.from_bytes(data[i + 3 : i + 6], "big")
            i += 3 + ln
            if typ == 0x2F:
                break
        elif st & 0xF0 == 0xC0:
            i += 2
        else:
            p, v = data[i + 1], data[i + 2]
            i += 3
            if st & 0xF0 == 0x90 and v > 0:
                open_[p] = (t, v)
            elif p in open_:
                t0, v0 = open_.pop(p)
                out.append((t0, t, p, v0))
    sec = us_per_beat / 1e6 / tpb
    return sorted((a * sec, b * sec, p, v) for a, b, p, v in out)

"""What the MIR stages share (beats, retrieve, transcribe, separate, fingerprint): onset
strength, tempo, MIDI files (mono mixing is ``audiopipe.audio.to_mono``).

Onset strength and spectrograms come from ``audiopipe.features`` (no second STFT here).

Examples
--------
>>> notes = [(0.0, 0.5, 60, 100), (0.5, 1.0, 64, 90)]
>>> [(round(a, 2), round(b, 2), m, v) for a, b, m, v in read_midi_notes(midi_bytes(notes))]
[(0.0, 0.5, 60, 100), (0.5, 1.0, 64, 90)]
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MAX_TEMPO", "onset_strength", "tempo_estimate", "tempo_range_problem", "midi_bytes",
    "read_midi_notes",
]

#: the fastest tempo :func:`tempo_estimate` considers (BPM; librosa's ``max_tempo``)
MAX_TEMPO = 320.0


def onset_strength(
    y: np.ndarray, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512, lag: int = 1
) -> np.ndarray:
    """Onset strength envelope (librosa definition, mean over mel bands), float64."""
    import audiopipe.features as F

    return np.asarray(
        F.onset_strength(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, lag=lag), dtype=np.float64
    )


def tempo_range_problem(sr: float, hop_length: int, max_tempo: float = MAX_TEMPO) -> str | None:
    """Why onset frames of ``hop_length`` at ``sr`` cannot hold the tempo range (None: they can).

    The tempogram's shortest lag is one frame: a beat period at ``max_tempo`` shorter than
    that leaves the fastest tempi unreachable (at sr 1000, hop 5000, a frame is 5 s long).

    Examples
    --------
    >>> tempo_range_problem(22050, 512) is None, tempo_range_problem(1000, 5000)[:28]
    (True, 'hop_length (5000) must be <=')
    """
    if 60.0 * sr / hop_length >= max_tempo:
        return None
    return (f"hop_length ({hop_length}) must be <= {int(60.0 * sr / max_tempo)} at sr {sr}: "
            f"a beat at {max_tempo:g} BPM would be shorter than one onset frame")


def _tempo_prior(bpms: np.ndarray, start_bpm: float, std_bpm: float = 1.0) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2


def tempo_estimate(
    onset_envelope: np.ndarray,
    sr: float = 22050,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    std_bpm: float = 1.0,
    max_tempo: float = MAX_TEMPO,
    ac_size: float = 8.0,
    aggregate: bool = True,
) -> np.ndarray:
    """Tempo in BPM: peak of the (mean) autocorrelation tempogram times a log-normal prior.

    As ``librosa.feature.tempo``. Returns a 1-element array (``aggregate=True``) or one
    tempo per frame (local tempo, with the same prior; for music whose tempo changes).

    Examples
    --------
    >>> o = np.zeros(1000); o[::43] = 1.0  # one onset every 43 frames = 60 BPM at 22050/512
    >>> float(np.round(tempo_estimate(o)[0]))
    60.0
    """
    import audiopipe.features as F

    fr = sr / hop_length
    win_length = max(1, int(round(ac_size * fr)))
    o = np.asarray(onset_envelope, dtype=np.float64)
    tg = np.asarray(
        F.tempogram(onset_envelope=o, hop_length=hop_length, win_length=win_length), np.float64
    )
    lags = np.arange(win_length, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpms = 60.0 * fr / lags
    logprior = _tempo_prior(bpms, start_bpm, std_bpm)
    logprior[bpms > max_tempo] = -np.inf
    logprior[0] = -np.inf
    if aggregate:
        tg = tg.mean(axis=1, keepdims=True)
    score = np.log1p(1e6 * tg) + logprior[:, None]
    best = np.argmax(score, axis=0)
    # parabolic refinement of the peak lag on the autocorrelation (sub-frame period)
    cols = np.arange(score.shape[1])
    lag = best.astype(np.float64)
    ok = (best > 1) & (best < win_length - 1)
    if ok.any():
        a, b, c = (tg[best[ok] + d, cols[ok]] for d in (-1, 0, 1))
        den = a - 2 * b + c
        shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
        lag[ok] += np.clip(shift, -0.5, 0.5)
    return 60.0 * fr / lag


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def midi_bytes(
    notes: Sequence[tuple[float, float, int, int]],
    *,
    tempo_bpm: float = 120.0,
    ticks_per_beat: int = 480,
    program: int = 0,
) -> bytes:
    """A format-0 Standard MIDI File of ``(onset_s, offset_s, midi, velocity)`` notes."""
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
    head = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
    return head + b"MTrk" + struct.pack(">I", len(trk)) + bytes(trk)


def read_midi_notes(data: bytes) -> list[tuple[float, float, int, int]]:
    """Notes of a format-0 file written by :func:`midi_bytes` (for tests)."""
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

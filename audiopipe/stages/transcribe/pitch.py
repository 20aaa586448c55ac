"""Monophonic pitch tracking (pYIN-style) and notes from a pitch track.

:func:`pitch_track` computes YIN's cumulative mean normalised difference per frame, turns
its troughs into pitch candidates with probabilities under a Beta(2, 18) distribution of
thresholds (Mauch & Dixon 2014, pYIN), and decodes a voiced/unvoiced pitch path with the
stages' Viterbi decoder (banded transitions). :func:`notes_from_pitch` turns the path into
notes (onset, offset, MIDI pitch, velocity) with pitch hysteresis and a minimum duration.

Examples
--------
>>> import numpy as np
>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> y = 0.5 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
>>> f0, voiced, prob = pitch_track(y, sr)
>>> round(float(np.median(f0[voiced])))
440
>>> [n[2] for n in notes_from_pitch(f0, voiced, sr=sr, y=y)]
[69]
"""

from __future__ import annotations

import numpy as np

from audiopipe.audio import to_mono

__all__ = [
    "Note", "pitch_track", "min_frame_length", "notes_from_pitch", "hz_to_midi", "midi_to_hz",
]

Note = tuple[float, float, int, int]


def hz_to_midi(f: np.ndarray | float) -> np.ndarray:
    """MIDI number (float) of a frequency in Hz."""
    return 69.0 + 12.0 * np.log2(np.asarray(f, dtype=np.float64) / 440.0)


def midi_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz of a (fractional) MIDI number."""
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


# --------------------------------------------------------------------------- pitch tracking


def _cmnd(frames: np.ndarray, win_length: int, max_lag: int) -> np.ndarray:
    """YIN cumulative mean normalised difference, shape (n_frames, max_lag + 1)."""
    n = frames.shape[1]
    nfft = 1 << int(np.ceil(np.log2(n + win_length)))
    A = np.fft.rfft(frames, nfft, axis=1)
    B = np.fft.rfft(frames[:, :win_length], nfft, axis=1)
    acf = np.fft.irfft(A * np.conj(B), nfft, axis=1)[:, : max_lag + 1]
    sq = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    e_tau = sq[:, lags + win_length] - sq[:, lags]
    d = np.maximum(e_tau[:, :1] + e_tau - 2.0 * acf, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    out = np.ones_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 1:] = np.where(cum > 0, d[:, 1:] * lags[1:] / cum, 1.0)
    return out


def min_frame_length(fmin: float, sr: float) -> int:
    """Shortest ``frame_length`` of :func:`pitch_track` whose lags reach ``sr / fmin``.

    YIN compares the first ``frame_length // 2`` samples of a frame with their copy at each
    lag, so lags up to ``frame_length - frame_length // 2 - 1`` fit in the frame.

    Examples
    --------
    >>> min_frame_length(65.0, 22050)
    681
    """
    return 2 * int(np.ceil(sr / fmin)) + 1


def pitch_track(
    y: np.ndarray,
    sr: float = 22050,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    frame_length: int = 2048,
    hop_length: int | None = None,
    *,
    beta_parameters: tuple[float, float] = (2.0, 18.0),
    bins_per_semitone: int = 5,
    max_transition_rate: float = 35.92,
    switch_prob: float = 0.01,
    no_trough_prob: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN-style fundamental frequency track with voicing.

    Parameters
    ----------
    y : np.ndarray
        Audio, mono or ``(..., n)`` (mixed down).
    sr : float
        Sample rate.
    fmin, fmax : float
        Search range in Hz (librosa.pyin's names and defaults C2..C7).
    frame_length : int
        Analysis frame; the YIN integration window is ``frame_length // 2``.
    hop_length : int, optional
        Default ``frame_length // 4``; frame ``t``'s analysis window (YIN's integration
        window of ``frame_length // 2`` samples) is centred on sample ``t * hop_length``.
    beta_parameters, bins_per_semitone, max_transition_rate, switch_prob, no_trough_prob
        As in pYIN / ``librosa.pyin`` (coarser pitch grid by default: 20 cents).

    Returns
    -------
    f0 : np.ndarray, float64, Hz (NaN where unvoiced)
    voiced : np.ndarray, bool
    voiced_prob : np.ndarray, float64 in [0, 1]

    Examples
    --------
    >>> f0, v, p = pitch_track(np.zeros(4096, np.float32))
    >>> bool(v.any())
    False
    """
    from scipy.special import betainc

    if fmax > sr / 2:
        raise ValueError(f"fmax={fmax} is above the Nyquist frequency ({sr / 2:g} Hz at sr={sr})")
    need = min_frame_length(fmin, sr)
    if frame_length < need:  # a shorter frame would silently raise the lowest pitch found
        raise ValueError(
            f"frame_length={frame_length} is too short for fmin={fmin} at sr={sr}: "
            f"need frame_length >= {need} (or a higher fmin)"
        )
    y = to_mono(y).astype(np.float64)
    hop = frame_length // 4 if hop_length is None else int(hop_length)
    n_frames = 1 + y.size // hop
    empty = (np.full(n_frames, np.nan), np.zeros(n_frames, bool), np.zeros(n_frames))
    if y.size == 0 or not np.any(y):
        return empty
    win = frame_length // 2
    min_lag = max(1, int(np.floor(sr / fmax)))
    max_lag = int(np.ceil(sr / fmin))  # <= frame_length - win - 1 (min_frame_length)
    if max_lag <= min_lag + 1:
        raise ValueError(f"fmin={fmin} and fmax={fmax} leave no lags to search at sr={sr}")
    # YIN compares the frame's first ``win`` samples with their lagged copy: pad so that
    # this window (not the whole frame) is centred on sample t * hop - otherwise the f0
    # of frame t is the f0 of ~frame_length / 4 samples earlier (librosa.pyin's lag)
    yp = np.pad(y, (win // 2, frame_length - win // 2))
    frames = np.lib.stride_tricks.sliding_window_view(yp, frame_length)[::hop][:n_frames]
    cm = _cmnd(frames, win, max_lag)
    n_frames = cm.shape[0]
    # troughs: local minima within [min_lag, max_lag]
    c = cm[:, min_lag : max_lag + 1]
    is_tr = np.zeros_like(c, dtype=bool)
    is_tr[:, 1:-1] = (c[:, 1:-1] < c[:, :-2]) & (c[:, 1:-1] <= c[:, 2:])
    a, b = beta_parameters
    n_semi = 12.0 * np.log2(fmax / fmin)
    n_bins = int(np.ceil(n_semi * bins_per_semitone)) + 1
    emit = np.zeros((n_frames, n_bins))
    fbin = np.full((n_frames, n_bins), np.nan)
    vprob = np.zeros(n_frames)
    for t in range(n_frames):
        idx = np.flatnonzero(is_tr[t])
        if idx.size == 0:
            continue
        vals = c[t, idx]
        prev_min = np.minimum.accumulate(np.concatenate([[1.0], vals[:-1]]))
        p = np.maximum(
            betainc(a, b, np.minimum(prev_min, 1.0)) - betainc(a, b, np.minimum(vals, 1.0)), 0
        )
        p[vals >= prev_min] = 0.0
        g = int(np.argmin(vals))
        p[g] += no_trough_prob * (1.0 - betainc(a, b, min(vals[g], 1.0)))
        # parabolic interpolation of each trough's lag
        k = idx + min_lag
        lo, hi = cm[t, k - 1], cm[t, np.minimum(k + 1, max_lag)]
        den = lo - 2 * cm[t, k] + hi
        shift = np.where(den > 0, 0.5 * (lo - hi) / np.where(den > 0, den, 1.0), 0.0)
        f = sr / (k + np.clip(shift, -0.5, 0.5))
        ok = (f >= fmin) & (f <= fmax) & (p > 0)
        if not ok.any():
            continue
        bins = np.round(12.0 * np.log2(f[ok] / fmin) * bins_per_semitone).astype(int)
        bins = np.clip(bins, 0, n_bins - 1)
        np.add.at(emit[t], bins, p[ok])
        order = np.argsort(p[ok])  # the most probable trough of a bin gives its frequency
        fbin[t, bins[order]] = f[ok][order]
        vprob[t] = min(1.0, p[ok].sum())
    states_v, voiced = _decode(
        emit, vprob, bins_per_semitone, max_transition_rate, hop / sr, switch_prob
    )
    f0 = fbin[np.arange(n_frames), states_v]
    centre = fmin * 2.0 ** (states_v / (12.0 * bins_per_semitone))
    f0 = np.where(np.isnan(f0), centre, f0)
    f0 = np.where(voiced, f0, np.nan)
    return f0, voiced, vprob


def _decode(
    emit: np.ndarray, vprob: np.ndarray, bps: int, rate: float, dt: float, switch: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (pitch bin, voiced) per frame; voiced and unvoiced copies of every bin.

    States ``0..n-1`` are voiced bins, ``n..2n-1`` unvoiced ones. A bin moves at most
    ``w`` bins per frame (triangular weights); voicing stays with ``1 - switch``. Voiced
    predecessors are listed first, so ties keep the voicing (as pYIN).
    """
    from audiopipe.stages._viterbi import Predecessors, viterbi

    T, n = emit.shape
    w = max(1, int(round(rate * 12 * bps * dt)))
    offs = np.arange(-w, w + 1)
    tri = (w + 1 - np.abs(offs)).astype(np.float64)
    logT = np.log(tri / tri.sum())
    near = np.arange(n)[:, None] + offs[None, :]  # (n, 2w+1) predecessor bins
    band = np.where((near >= 0) & (near < n), logT[None, :], -np.inf)
    near = np.clip(near, 0, n - 1)
    ls, lns = np.log(switch), np.log(1.0 - switch)
    src = np.block([[near, near + n], [near + n, near]])  # voiced: [v, u]; unvoiced: [u, v]
    logw = np.block([[band + lns, band + ls], [band + lns, band + ls]])
    tiny = 1e-300
    log_e = np.empty((T, 2 * n))
    log_e[:, :n] = np.log(np.maximum(emit, tiny))
    log_e[:, n:] = np.log(np.maximum((1.0 - vprob) / n, tiny))[:, None]
    path = viterbi(log_e, Predecessors(src, logw), log_init=np.full(2 * n, np.log(0.5)))
    return path % n, path < n


# --------------------------------------------------------------------------- notes


def _velocity(rms: float) -> int:
    """MIDI velocity from a note's RMS: -60 dBFS -> 1, 0 dBFS -> 127."""
    db = 20.0 * np.log10(max(rms, 1e-9))
    return int(np.clip(round(127 * (1.0 + db / 60.0)), 1, 127))


def notes_from_pitch(
    f0: np.ndarray,
    voiced: np.ndarray,
    voiced_prob: np.ndarray | None = None,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    y: np.ndarray | None = None,
    min_note_duration: float = 0.1,
    hysteresis: float = 0.8,
    median_frames: int = 5,
) -> list[Note]:
    """Segment a pitch track into notes ``(onset_s, offset_s, midi, velocity)``.

    A note is a voiced run; within a run a new note starts when the (median-smoothed)
    pitch stays more than ``hysteresis`` semitones from the current note for
    ``min_note_duration``. Notes shorter than ``min_note_duration`` are dropped.
    Velocity comes from the note's RMS in ``y`` (64 without audio).

    Examples
    --------
    >>> f0 = np.r_[np.full(20, 220.0), np.full(20, 330.0)]
    >>> [n[2] for n in notes_from_pitch(f0, np.ones(40, bool), hop_length=512)]
    [57, 64]
    """
    from scipy.ndimage import median_filter

    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.asarray(voiced, bool) & np.isfinite(f0) & (f0 > 0)
    T = f0.size
    if T == 0 or not voiced.any():
        return []
    midi = np.full(T, np.nan)
    midi[voiced] = hz_to_midi(f0[voiced])
    min_frames = max(1, int(round(min_note_duration * sr / hop_length)))
    fr = hop_length / sr
    yy = None if y is None else to_mono(y).astype(np.float64)
    segs: list[tuple[int, int, float]] = []
    edges = np.diff(np.r_[0, voiced.astype(np.int8), 0])
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        m = median_filter(midi[s:e], size=min(median_frames, e - s) | 1, mode="nearest")
        start, cur, i = 0, float(np.round(m[0])), 0
        while i < m.size:
            if abs(m[i] - cur) > hysteresis:
                j = i
                while j < m.size and abs(m[j] - cur) > hysteresis and j - i < min_frames:
                    j += 1
                if j - i >= min_frames:  # a stable new pitch: close the note at i
                    segs.append(
                        (s + start, s + i, float(np.median(m[start:i])) if i > start else cur)
                    )
                    start, cur = i, float(np.round(np.median(m[i:j])))
                    i = j
                    continue
            i += 1
        segs.append((s + start, e, float(np.median(m[start:]))))
    notes: list[Note] = []
    for a, b, pm in segs:
        if b - a < min_frames:
            continue
        on, off = a * fr, b * fr
        if yy is not None:
            seg = yy[int(on * sr) : max(int(off * sr), int(on * sr) + 1)]
            vel = _velocity(float(np.sqrt(np.mean(seg**2)))) if seg.size else 64
        else:
            vel = 64
        notes.append((round(on, 4), round(off, 4), int(np.round(pm)), vel))
    return notes



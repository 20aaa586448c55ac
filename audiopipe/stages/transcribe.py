"""Transcription: pitch tracking (pYIN-style) -> note events -> ``notes`` table + MIDI files.

Monophonic: :func:`pitch_track` computes YIN's cumulative mean normalised difference per
frame, turns its troughs into pitch candidates with probabilities under a Beta(2, 18)
distribution of thresholds (Mauch & Dixon 2014, pYIN), and decodes a voiced/unvoiced
pitch path with a banded Viterbi HMM. :func:`notes_from_pitch` turns the path into notes
(onset, offset, MIDI pitch, velocity) with pitch hysteresis and a minimum duration.

Polyphonic: :class:`HarmonicNMF` explains the magnitude spectrogram with fixed harmonic
templates (one per MIDI pitch) and sparse KL-NMF activations; :func:`notes_from_activations`
thresholds them with hysteresis. ``run(ds, params, run_id=...)`` picks ``method`` "mono"
(default) or "poly", writes ``notes`` (clip_id, onset_s, offset_s, midi, velocity, error),
one MIDI file per clip under ``ds.path("midi")`` and a piano-roll PNG.

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

import os
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.special import betainc

import audiopipe.features as F
from audiopipe.audio import to_mono
from audiopipe.stages._mir import single_blas_thread, write_midi

__all__ = [
    "pitch_track",
    "notes_from_pitch",
    "HarmonicNMF",
    "notes_from_activations",
    "transcribe",
    "hz_to_midi",
    "midi_to_hz",
    "run",
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
        Default ``frame_length // 4``; frame ``t`` is centred on sample ``t * hop_length``.
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
    y = to_mono(y).astype(np.float64)
    hop = frame_length // 4 if hop_length is None else int(hop_length)
    n_frames = 1 + y.size // hop
    empty = (np.full(n_frames, np.nan), np.zeros(n_frames, bool), np.zeros(n_frames))
    if y.size == 0 or not np.any(y):
        return empty
    win = frame_length // 2
    min_lag = max(1, int(np.floor(sr / fmax)))
    max_lag = min(int(np.ceil(sr / fmin)), frame_length - win - 1)
    if max_lag <= min_lag + 1:
        raise ValueError(f"fmin={fmin} is too low for frame_length={frame_length} at sr={sr}")
    yp = np.pad(y, frame_length // 2)
    if yp.size < frame_length:
        yp = np.pad(yp, (0, frame_length - yp.size))
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
    states_v, voiced = _viterbi(
        emit, vprob, bins_per_semitone, max_transition_rate, hop / sr, switch_prob
    )
    f0 = fbin[np.arange(n_frames), states_v]
    centre = fmin * 2.0 ** (states_v / (12.0 * bins_per_semitone))
    f0 = np.where(np.isnan(f0), centre, f0)
    f0 = np.where(voiced, f0, np.nan)
    return f0, voiced, vprob


def _viterbi(
    emit: np.ndarray, vprob: np.ndarray, bps: int, rate: float, dt: float, switch: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decode (pitch bin, voiced) per frame; voiced and unvoiced copies of every bin."""
    T, n = emit.shape
    w = max(1, int(round(rate * 12 * bps * dt)))
    offs = np.arange(-w, w + 1)
    tri = (w + 1 - np.abs(offs)).astype(np.float64)
    logT = np.log(tri / tri.sum())
    src = np.arange(n)[:, None] + offs[None, :]  # (n, 2w+1) predecessors
    valid = (src >= 0) & (src < n)
    src = np.clip(src, 0, n - 1)
    band = np.where(valid, logT[None, :], -np.inf)
    tiny = 1e-300
    log_ev = np.log(np.maximum(emit, tiny))
    log_eu = np.log(np.maximum((1.0 - vprob) / n, tiny))
    ls, lns = np.log(switch), np.log(1.0 - switch)
    pv = log_ev[0] + np.log(0.5)
    pu = np.full(n, log_eu[0] + np.log(0.5))
    bp_v = np.zeros((T, n), np.int32)  # encoded predecessor: bin + n * (was unvoiced)
    bp_u = np.zeros((T, n), np.int32)
    rows = np.arange(n)
    for t in range(1, T):
        cv = pv[src] + band
        cu = pu[src] + band
        av, au = np.argmax(cv, axis=1), np.argmax(cu, axis=1)
        mv, mu = cv[rows, av], cu[rows, au]
        qv, qu = src[rows, av], src[rows, au]
        # into voiced: stay voiced (1 - s) or switch from unvoiced (s)
        stay, sw = mv + lns, mu + ls
        nv = np.where(stay >= sw, stay, sw)
        bp_v[t] = np.where(stay >= sw, qv, qu + n)
        stay_u, sw_u = mu + lns, mv + ls
        nu = np.where(stay_u >= sw_u, stay_u, sw_u)
        bp_u[t] = np.where(stay_u >= sw_u, qu + n, qv)
        pv, pu = nv + log_ev[t], nu + log_eu[t]
    bins = np.zeros(T, np.int64)
    voiced = np.zeros(T, bool)
    if pv.max() >= pu.max():
        cur, is_v = int(np.argmax(pv)), True
    else:
        cur, is_v = int(np.argmax(pu)), False
    for t in range(T - 1, -1, -1):
        bins[t], voiced[t] = cur, is_v
        if t == 0:
            break
        code = bp_v[t, cur] if is_v else bp_u[t, cur]
        cur, is_v = int(code % n), bool(code < n)
    return bins, voiced


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


# --------------------------------------------------------------------------- polyphonic


class HarmonicNMF:
    """Polyphonic activations: KL-NMF with fixed harmonic templates, one per MIDI pitch.

    Parameters
    ----------
    midi_min, midi_max : int
        Pitch range of the templates (default A0..C8).
    n_harmonics : int
        Partials per template, amplitude ``h ** -harmonic_decay``.
    n_fft, hop_length : int
        STFT of ``audiopipe.features.stft``.
    max_iter : int
        Multiplicative updates of the activations (templates stay fixed).
    sparsity : float
        L1 weight on activations (discourages octave/harmonic ghosts).
    max_freq : float
        Spectrogram bins above this frequency (Hz) are left out of the fit.
    fundamental_gate : float
        Switch a pitch off in frames where the magnitude at its fundamental is below this
        fraction of its strongest partial 2-4 (0 disables; against sub-octave ghosts).

    Examples
    --------
    >>> sr = 22050
    >>> t = np.arange(sr) / sr
    >>> y = sum(np.sin(2 * np.pi * 261.63 * h * t) / h for h in (1, 2, 3)).astype(np.float32)
    >>> H = HarmonicNMF(max_iter=30).fit_transform(y, sr)
    >>> int(HarmonicNMF().midi_numbers()[H.sum(axis=1).argmax()])
    60
    """

    def __init__(
        self,
        midi_min: int = 21,
        midi_max: int = 108,
        n_harmonics: int = 8,
        harmonic_decay: float = 1.0,
        n_fft: int = 4096,
        hop_length: int = 256,
        max_iter: int = 40,
        sparsity: float = 0.1,
        max_freq: float = 5000.0,
        fundamental_gate: float = 0.1,
    ) -> None:
        self.midi_min = midi_min
        self.midi_max = midi_max
        self.n_harmonics = n_harmonics
        self.harmonic_decay = harmonic_decay
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_iter = max_iter
        self.sparsity = sparsity
        self.max_freq = max_freq
        self.fundamental_gate = fundamental_gate

    def midi_numbers(self) -> np.ndarray:
        return np.arange(self.midi_min, self.midi_max + 1)

    def templates(self, sr: float) -> np.ndarray:
        """Template matrix ``(1 + n_fft // 2, n_pitches)``, columns of unit sum."""
        freqs = np.arange(self.n_fft // 2 + 1) * sr / self.n_fft
        bw = sr / self.n_fft
        W = np.zeros((freqs.size, self.midi_numbers().size))
        for j, m in enumerate(self.midi_numbers()):
            f0 = float(midi_to_hz(m))
            for h in range(1, self.n_harmonics + 1):
                fh = f0 * h * np.sqrt(1 + 0.0004 * h * h)  # slight inharmonicity (strings)
                if fh >= sr / 2:
                    break
                sigma = max(0.7 * bw, 0.01 * fh)
                W[:, j] += h**-self.harmonic_decay * np.exp(-0.5 * ((freqs - fh) / sigma) ** 2)
        W /= np.maximum(W.sum(axis=0, keepdims=True), 1e-12)
        return W

    def fit_transform(self, y: np.ndarray, sr: float = 22050) -> np.ndarray:
        """Activations ``(n_pitches, n_frames)`` for audio ``y`` (deterministic: H starts at 1)."""
        y = to_mono(y)
        V = np.abs(F.stft(y, n_fft=self.n_fft, hop_length=self.hop_length))
        W = self.templates(sr).astype(np.float32)
        # bins above the highest template partial carry no information for the fit
        top = int(np.flatnonzero(W.sum(axis=1) > 1e-6 * W.sum(axis=1).max()).max()) + 1
        top = min(top, int(self.max_freq * self.n_fft / sr) + 1)
        V, W = V[:top], W[:top]
        self.templates_ = W
        H = np.full((W.shape[1], V.shape[1]), max(float(V.mean()), 1e-9), dtype=np.float32)
        if not np.any(V):
            self.activations_ = np.zeros_like(H)
            return self.activations_
        Wsum = W.sum(axis=0)[:, None]
        with single_blas_thread():
            for _ in range(self.max_iter):
                R = V / np.maximum(W @ H, 1e-12)
                H *= (W.T @ R) / (Wsum + self.sparsity)
        if self.fundamental_gate > 0:
            H *= self._fundamental_support(V, sr) >= self.fundamental_gate
        self.activations_ = H
        return H

    def _fundamental_support(self, V: np.ndarray, sr: float) -> np.ndarray:
        """Per pitch and frame: magnitude near f0 over the strongest of partials 2-4.

        Harmonic templates let a pitch an octave or a twelfth below explain a note's upper
        partials ("missing fundamental" ghosts); a pitch whose fundamental region is
        ``fundamental_gate`` times weaker than its next partials is switched off.
        """
        n_bins = V.shape[0]
        out = np.zeros((self.midi_numbers().size, V.shape[1]), dtype=np.float32)

        def peak(f: float) -> np.ndarray:
            k = f * self.n_fft / sr
            lo, hi = int(np.floor(k * 0.985)), int(np.ceil(k * 1.015)) + 1
            if lo >= n_bins:
                return np.zeros(V.shape[1], dtype=np.float32)
            return V[max(lo, 0) : min(hi, n_bins)].max(axis=0)

        for j, m in enumerate(self.midi_numbers()):
            f0 = float(midi_to_hz(m))
            ref = np.max([peak(f0 * h) for h in (2, 3, 4)], axis=0)
            out[j] = peak(f0) / np.maximum(ref, 1e-9)
        return out


def notes_from_activations(
    H: np.ndarray,
    midi_numbers: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 256,
    onset_threshold: float = 0.2,
    frame_threshold: float = 0.05,
    min_note_duration: float = 0.05,
    onset_search: int = 8,
) -> list[Note]:
    """Hysteresis thresholding of activations (relative to their maximum) into notes.

    A note is a run above ``frame_threshold`` whose peak exceeds ``onset_threshold``; its
    onset is where it first reaches half the peak of the run's first ``onset_search`` frames.
    """
    if H.size == 0 or not np.any(H > 0):
        return []
    from scipy.ndimage import median_filter

    A = median_filter(H / H.max(), size=(1, 3), mode="nearest")
    fr = hop_length / sr
    min_frames = max(1, int(round(min_note_duration / fr)))
    notes: list[Note] = []
    for j, m in enumerate(midi_numbers):
        a = A[j]
        active = a > frame_threshold
        edges = np.diff(np.r_[0, active.astype(np.int8), 0])
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if e - s < min_frames or a[s:e].max() < onset_threshold:
                continue
            vel = int(np.clip(round(127 * np.sqrt(a[s:e].max())), 1, 127))
            # a long window sees a note before its onset: the onset is where the activation
            # first reaches half of its early peak (the onset at the window's centre)
            head = a[s : min(e, s + onset_search)]
            on = s + int(np.argmax(head >= 0.5 * head.max()))
            notes.append((round(on * fr, 4), round(e * fr, 4), int(m), vel))
    notes.sort()
    return notes


def transcribe(
    y: np.ndarray,
    sr: float = 22050,
    method: str = "mono",
    *,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    frame_length: int = 2048,
    hop_length: int = 256,
    min_note_duration: float = 0.1,
) -> list[Note]:
    """Notes of a clip: ``method="mono"`` (pitch track) or ``"poly"`` (harmonic NMF).

    Examples
    --------
    >>> transcribe(np.zeros(22050, np.float32))
    []
    """
    y = to_mono(y)
    if method == "mono":
        f0, v, p = pitch_track(y, sr, fmin, fmax, frame_length, hop_length)
        return notes_from_pitch(
            f0, v, p, sr=sr, hop_length=hop_length, y=y, min_note_duration=min_note_duration
        )
    if method == "poly":
        est = HarmonicNMF(
            midi_min=int(np.ceil(hz_to_midi(fmin))),
            midi_max=int(np.floor(hz_to_midi(fmax))),
            hop_length=hop_length,
        )
        H = est.fit_transform(y, sr)
        return notes_from_activations(
            H, est.midi_numbers(), sr=sr, hop_length=hop_length, min_note_duration=min_note_duration
        )
    raise ValueError(f"method must be 'mono' or 'poly', got {method!r}")


# --------------------------------------------------------------------------- stage adapter

NOTES_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("onset_s", pa.float64()),
        ("offset_s", pa.float64()),
        ("midi", pa.int32()),
        ("velocity", pa.int32()),
        ("error", pa.string()),
    ]
)


def _piano_roll(path: str, notes: list[Note], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for on, off, m, v in notes:
        ax.broken_barh([(on, off - on)], (m - 0.4, 0.8), color=plt.cm.viridis(v / 127))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    if notes:
        ax.set_ylim(min(n[2] for n in notes) - 2, max(n[2] for n in notes) + 2)
        ax.set_xlim(0, max(n[1] for n in notes) + 0.1)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(ds: Any, params: dict, *, run_id: str) -> dict:
    """Transcribe every clip: ``notes`` table, ``midi/<clip_id>.mid``, one piano-roll PNG.

    Params: ``method`` ("mono" | "poly"), ``sr`` (22050), ``fmin``, ``fmax``,
    ``frame_length`` (2048), ``hop_length`` (256), ``min_note_duration`` (0.1),
    ``clips`` (optional ids). A failing clip gets one row with its ``error`` and no notes.
    """
    from audiopipe.stages._common import StageInputError, metric_rows, plot_path, write_metrics

    method = params.get("method", "mono")
    if method not in ("mono", "poly"):
        raise StageInputError(f"transcribe: method must be 'mono' or 'poly', got {method!r}")
    sr = int(params.get("sr", 22050))
    kw = {
        k: params[k]
        for k in ("fmin", "fmax", "frame_length", "hop_length", "min_note_duration")
        if k in params
    }
    ids = params.get("clips") or ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    midi_dir = ds.path("midi")
    os.makedirs(midi_dir, exist_ok=True)
    rows: list[dict] = []
    plotted = None
    n_err = 0
    for cid in ids:
        try:
            y, _ = ds.load_audio(cid, sr=sr)
            notes = transcribe(y, sr, method, **kw)
        except Exception as err:  # noqa: BLE001  (errors are data)
            n_err += 1
            rows.append(
                {
                    "clip_id": cid,
                    "onset_s": None,
                    "offset_s": None,
                    "midi": None,
                    "velocity": None,
                    "error": f"{type(err).__name__}: {err}",
                }
            )
            continue
        rows += [
            {"clip_id": cid, "onset_s": a, "offset_s": b, "midi": m, "velocity": v, "error": None}
            for a, b, m, v in notes
        ]
        write_midi(os.path.join(midi_dir, f"{cid}.mid"), notes)
        if plotted is None and notes:
            plotted = plot_path(ds, f"transcribe_{run_id}")
            _piano_roll(plotted, notes, f"{cid[:12]} ({method})")
    ds.write_table("notes", pa.Table.from_pylist(rows, schema=NOTES_SCHEMA), mode="overwrite")
    n_notes = sum(r["error"] is None for r in rows)
    metrics = {"n_clips": len(ids), "n_errors": n_err, "n_notes": n_notes}
    write_metrics(ds, metric_rows("transcribe", method, metrics, split="all", run_id=run_id))
    return {"tables": ["notes"], "midi_dir": midi_dir, "metrics": metrics, "plot": plotted}

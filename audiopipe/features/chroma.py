"""Chroma from the STFT (librosa definitions): ``chroma_stft``, the piptrack peaks and the
tuning estimate it uses; functions and the recipe feature.
"""

from __future__ import annotations

from typing import Unpack

import numpy as np

from ._core import fft_frequencies, normalize_frames
from .block import Block, Computer
from .extractor import Extractor
from .filters import chroma_filterbank, hz_to_octs
from .frontend import StftArgs, norm_name, spectral, spectrogram_of
from .registry import Param, feature, one_of, optional, pos_int

__all__ = ["chroma_stft", "estimate_tuning", "piptrack", "piptrack_peaks", "tuning_from_peaks"]


def _peaks(S: np.ndarray, sr: float, n_fft: int, fmin: float, fmax: float, threshold: float):
    """``(f_idx, t_idx, pitch, magnitude)`` of librosa's piptrack peaks in ``S`` (freq, frames).

    Only the bins inside ``[fmin, fmax)`` (plus a neighbour each side) are examined, copied
    frame-major so every step reads contiguous memory; the per-frame reference is still the
    maximum over all bins. Peaks come out frame by frame.
    """
    if S.dtype.kind == "c" or (S.size and S.min() < 0):
        S = np.abs(S)
    F, T = S.shape[-2:]
    freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    band = np.flatnonzero((max(fmin, 0) <= freqs) & (freqs < min(fmax, sr / 2)))
    empty = np.zeros(0, np.intp)
    if not len(band) or not T or F < 3:
        return empty, empty, np.zeros(0, S.dtype), np.zeros(0, S.dtype)
    lo, hi = int(band[0]) - 1, int(band[-1]) + 2  # with one neighbour each side
    pad_lo, pad_hi = max(-lo, 0), max(hi - F, 0)
    ref = threshold * S.max(axis=-2)  # (T,)
    X = S.T[:, max(lo, 0) : min(hi, F)]  # (T, band) view; contiguous rows if frame-major
    X = np.ascontiguousarray(X)
    if pad_lo or pad_hi:  # a band touching bin 0 / Nyquist: pad with zeros (never peaks)
        X = np.pad(X, ((0, 0), (pad_lo, pad_hi)))
    Z = X * (X > ref[:, None])
    m = (Z[:, 1:-1] > Z[:, :-2]) & (Z[:, 1:-1] >= Z[:, 2:])
    rows_f = np.arange(lo + 1, hi - 1)  # global bin of each column of m
    m &= ((rows_f >= band[0]) & (rows_f <= band[-1]) & (rows_f > 0))[None, :]
    if hi - 1 > F - 1 and F - 1 >= lo + 1:  # the last bin: a peak when above its neighbour
        j = F - 1 - (lo + 1)
        m[:, j] = (Z[:, j + 1] > Z[:, j]) & (freqs[F - 1] < min(fmax, sr / 2))
    t_idx, col = np.nonzero(m)
    f_idx = rows_f[col]
    # the parabola only at the peaks (a few % of the bins), same arithmetic as on full arrays
    cm, lm, rm = X[t_idx, col + 1], X[t_idx, col], X[t_idx, col + 2]
    a = rm + lm - 2 * cm
    b = (rm - lm) / 2  # also np.gradient's central difference
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0, -b / a).astype(S.dtype)
    edge = (f_idx == 0) | (f_idx == F - 1)
    if edge.any():  # no parabola at the edges; one-sided gradient
        shift[edge] = 0
    pitches = (f_idx + shift) * float(sr) / n_fft
    mags = cm + 0.5 * b * shift
    return f_idx, t_idx, pitches, mags


def _one_clip(func: str, y: np.ndarray | None, S: np.ndarray | None) -> None:
    """``ValueError`` unless ``y`` is one mono signal (1-D) or ``S`` one (freq, frames)
    spectrogram: the peaks of several channels would be mixed up by frame index."""
    if S is not None and np.ndim(S) != 2:
        raise ValueError(f"{func}: S must be one clip's (freq, frames) spectrogram, got shape "
                         f"{np.shape(S)}; call it per channel")
    if S is None and y is not None and np.ndim(y) != 1:
        raise ValueError(f"{func}: y must be one mono signal (1-D), got shape {np.shape(y)}; "
                         "mix down (y.mean(axis=0)) or call it per channel")


def piptrack_peaks(S: np.ndarray, sr: float, n_fft: int, fmin: float = 150.0,
                   fmax: float = 4000.0, threshold: float = 0.1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and magnitudes of the spectral peaks ``librosa.piptrack`` keeps (flat).

    ``S`` is one clip's (freq, frames) spectrogram (librosa passes chroma's *power*
    spectrogram). A bin is a peak when it is a local maximum (``> left``, ``>= right``; the
    first bin never, the last when above its neighbour) of ``S * (S > threshold * max(S of
    the frame))`` inside ``[fmin, fmax)``; its frequency is refined by parabolic
    interpolation and its magnitude by ``0.5 * gradient * shift``.
    """
    _, _, p, m = _peaks(S, sr, n_fft, fmin, fmax, threshold)
    return p, m


def piptrack(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    fmin: float = 150.0,
    fmax: float = 4000.0,
    threshold: float = 0.1,
    **stft: Unpack[StftArgs],
) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and magnitude arrays (freq, frames), as ``librosa.piptrack`` (one clip).

    ``S``: a magnitude spectrogram; ``**stft`` as :func:`~audiopipe.features.spectrogram`.

    Examples
    --------
    >>> p, m = piptrack(y=np.zeros(4096, np.float32))
    >>> p.shape, float(p.max())
    ((1025, 9), 0.0)
    """
    _one_clip("piptrack", y, S)
    M, n_fft = spectrogram_of(y=y, S=S, power=1.0, stft=stft, func="piptrack")
    Sa = np.abs(M)
    fi, ti, p, m = _peaks(Sa, sr, n_fft, fmin, fmax, threshold)
    pitches = np.zeros_like(Sa)
    mags = np.zeros_like(Sa)
    pitches[fi, ti] = p
    mags[fi, ti] = m
    return pitches, mags


def tuning_from_peaks(pitches: np.ndarray | None, mags: np.ndarray | None,
                      resolution: float = 0.01, bins_per_octave: int = 12) -> float:
    """``librosa.estimate_tuning`` from piptrack peaks: keep peaks at or above the median
    magnitude, histogram their deviation from the equal-tempered grid, return the mode."""
    if pitches is None or not len(pitches):
        return 0.0
    sel = pitches > 0
    if not sel.any():
        return 0.0
    thr = np.median(mags[sel])
    f = pitches[(mags >= thr) & sel]
    f = f[f > 0]
    if not len(f):
        return 0.0
    residual = np.mod(bins_per_octave * hz_to_octs(f), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, edges = np.histogram(residual, bins)
    return float(edges[np.argmax(counts)])


def estimate_tuning(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    resolution: float = 0.01,
    bins_per_octave: int = 12,
    **stft: Unpack[StftArgs],
) -> float:
    """Tuning offset in fractions of a bin, ``librosa.estimate_tuning`` (one clip).

    ``S``: a magnitude spectrogram; ``**stft`` as :func:`~audiopipe.features.spectrogram`.
    A multichannel ``y`` (or ``S`` with more than 2 axes) raises ``ValueError`` (librosa
    pools the channels' peaks into one estimate; mix down, or call it per channel).

    Examples
    --------
    >>> sr = 22050; t = np.arange(2 * sr) / sr
    >>> y = np.sin(2 * np.pi * 440 * 2 ** (0.25 / 12) * t)
    >>> abs(estimate_tuning(y=y, sr=sr) - 0.25) < 0.02
    True
    """
    _one_clip("estimate_tuning", y, S)
    if S is None:
        S, n_fft = spectrogram_of(y=y, S=None, power=1.0, stft=stft, func="estimate_tuning")
    else:
        S, n_fft = np.asarray(S), 2 * (np.shape(S)[-2] - 1)
    p, m = piptrack_peaks(S, sr, n_fft)
    return tuning_from_peaks(p, m, resolution, bins_per_octave)


def _tuning_check(v) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and -0.5 <= v <= 0.5
    return None if ok else f"must be in [-0.5, 0.5] or null, got {v!r}"


@feature("chroma_stft", dims="n_chroma", params={
    "n_chroma": Param(12, pos_int, "chroma bins per octave"),
    "tuning": Param(0.0, optional(_tuning_check),
                    "tuning offset in bins; null = estimate from the whole clip (librosa's "
                    "default; needs two passes when streaming)"),
    "norm": Param("inf", optional(one_of("inf", 1, 2)), "per-frame normalisation")},
    doc="Chromagram of the power spectrogram (librosa.feature.chroma_stft).")
def _chroma(p: dict, ex: Extractor) -> Computer:
    n_chroma, tuning = p["n_chroma"], p["tuning"]
    norm = np.inf if p["norm"] == "inf" else p["norm"]
    sr, n_fft = ex.sr, ex.n_fft
    needs = ()
    if tuning is None:
        needs = (("collect", "tuning",
                  lambda b: piptrack_peaks(b.power, sr, n_fft),
                  lambda parts: tuning_from_peaks(
                      np.concatenate([q[0] for q in parts]) if parts else None,
                      np.concatenate([q[1] for q in parts]) if parts else None,
                      bins_per_octave=n_chroma)),)

    def bank(t: float) -> np.ndarray:  # cached and read-only in filters
        return chroma_filterbank(sr=sr, n_fft=n_fft, tuning=t, n_chroma=n_chroma)

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            # whole clip, tuning unknown yet: the peaks are frame-local, so take them now,
            # and keep the power frame-major, flattened (concatenating (1, k*freq) pieces
            # along the last axis is a plain copy; (freq, k) pieces would be transposed)
            p, m = piptrack_peaks(b.power, sr, n_fft)
            return {"_chroma_power": b.power_fm.reshape(1, -1).copy(),
                    "_chroma_pitch": p[None, :], "_chroma_mag": m[None, :]}
        t = g[needs[0]] if needs else tuning
        return {"chroma_stft": normalize_frames(bank(t) @ b.power, norm)}

    def finish(res: dict) -> dict:
        P_fm = res.pop("_chroma_power").reshape(-1, n_fft // 2 + 1)
        t = tuning_from_peaks(res.pop("_chroma_pitch")[0], res.pop("_chroma_mag")[0],
                              bins_per_octave=n_chroma)
        return {"chroma_stft": normalize_frames(np.ascontiguousarray((P_fm @ bank(t).T).T),
                                                norm)}

    return Computer(step, needs=needs, finish=finish)


def chroma_stft(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    norm: float | None = np.inf,
    tuning: float | None = None,
    n_chroma: int = 12,
    ctroct: float = 5.0,
    octwidth: float | None = 2.0,
    base_c: bool = True,
    **stft: Unpack[StftArgs],
) -> np.ndarray:
    """Chromagram from the power spectrogram, ``(..., n_chroma, n_frames)``; librosa's
    ``chroma_stft``.

    ``chroma_filterbank @ |stft|^2`` (``S``: a power spectrogram), each frame normalised to
    unit ``norm`` (max by default; all-zero frames stay 0). ``tuning=None`` estimates the
    tuning from the whole clip as librosa does (peak picking + histogram; per clip for a
    batch); pass ``tuning=0`` for a frame-local definition (the recipe default). ``**stft`` as
    :func:`~audiopipe.features.spectrogram`.

    Examples
    --------
    >>> sr = 22050; t = np.arange(sr) / sr
    >>> c = chroma_stft(y=np.sin(2 * np.pi * 440 * t).astype(np.float32), sr=sr, tuning=0)
    >>> int(np.argmax(c[:, 10]))  # A
    9
    """
    def direct(P: np.ndarray, n_fft: int) -> np.ndarray:
        if tuning is None and P.ndim > 2:  # a batch: each clip its own tuning
            flat = P.reshape((-1,) + P.shape[-2:])
            out = [direct(p, n_fft) for p in flat]
            return np.stack(out).reshape(P.shape[:-2] + out[0].shape)
        t = tuning
        if t is None:
            p, m = piptrack_peaks(P, sr, n_fft)
            t = tuning_from_peaks(p, m, bins_per_octave=n_chroma)
        fb = chroma_filterbank(sr=sr, n_fft=n_fft, tuning=t, n_chroma=n_chroma,
                               ctroct=ctroct, octwidth=octwidth, base_c=base_c)
        return normalize_frames(np.matmul(fb, P), norm)

    params = None
    if (ctroct, octwidth, base_c) == (5.0, 2.0, True) and norm_name(norm) in (None, "inf", 1, 2):
        params = {"n_chroma": n_chroma, "norm": norm_name(norm),
                  "tuning": None if tuning is None else float(tuning)}
    return spectral("chroma_stft", params, direct, y=y, sr=sr, S=S, power=2.0, stft=stft)

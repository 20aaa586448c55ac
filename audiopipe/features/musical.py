"""Musical features (librosa definitions): chroma from the STFT, onset strength (log-mel
spectral flux) and the autocorrelation tempogram, plus the tuning estimate chroma uses.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import WindowSpec, fft_frequencies, get_window, power_to_db
from ._fast import norm_name, run
from .filters import chroma_filterbank, hz_to_octs
from .spectral import melspectrogram, spectrogram

__all__ = ["chroma_stft", "estimate_tuning", "piptrack", "onset_strength", "tempogram",
           "normalize_frames", "onset_from_db", "tempogram_frames"]

_TINY32 = np.finfo(np.float32).tiny


def normalize_frames(X: np.ndarray, norm: float | None) -> np.ndarray:
    """``librosa.util.normalize(X, norm, axis=-2)``: columns with norm < tiny are left as is."""
    if norm is None:
        return X
    if norm == np.inf:
        n = np.abs(X).max(axis=-2, keepdims=True)
    elif norm == 1:
        n = np.abs(X).sum(axis=-2, keepdims=True)
    else:
        n = (np.abs(X) ** norm).sum(axis=-2, keepdims=True) ** (1.0 / norm)
    n = np.where(n < np.finfo(X.dtype).tiny, 1.0, n).astype(X.dtype)
    return X / n


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


def piptrack(y: np.ndarray | None = None, sr: float = 22050, S: np.ndarray | None = None,
             n_fft: int = 2048, hop_length: int = 512, fmin: float = 150.0,
             fmax: float = 4000.0, threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and magnitude arrays (freq, frames), as ``librosa.piptrack`` (one clip).

    Examples
    --------
    >>> p, m = piptrack(np.zeros(4096, np.float32))
    >>> p.shape, float(p.max())
    ((1025, 9), 0.0)
    """
    Sa = np.abs(spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=1.0))
    fi, ti, p, m = _peaks(Sa, sr, 2 * (Sa.shape[-2] - 1), fmin, fmax, threshold)
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


def estimate_tuning(y: np.ndarray | None = None, sr: float = 22050,
                    S: np.ndarray | None = None, n_fft: int = 2048, resolution: float = 0.01,
                    bins_per_octave: int = 12) -> float:
    """Tuning offset in fractions of a bin, ``librosa.estimate_tuning`` (one clip).

    Examples
    --------
    >>> sr = 22050; t = np.arange(2 * sr) / sr
    >>> abs(estimate_tuning(np.sin(2 * np.pi * 440 * 2 ** (0.25 / 12) * t), sr=sr) - 0.25) < 0.02
    True
    """
    if S is None:
        S = spectrogram(y=y, n_fft=n_fft, power=1.0)
    p, m = piptrack_peaks(np.asarray(S), sr, 2 * (np.shape(S)[-2] - 1))
    return tuning_from_peaks(p, m, resolution, bins_per_octave)


def chroma_stft(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    norm: float | None = np.inf,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    tuning: float | None = None,
    n_chroma: int = 12,
    ctroct: float = 5.0,
    octwidth: float | None = 2.0,
    base_c: bool = True,
) -> np.ndarray:
    """Chromagram from the power spectrogram, ``(..., n_chroma, n_frames)``; librosa's
    ``chroma_stft``.

    ``chroma_filterbank @ |stft|^2`` (``S``: a power spectrogram), each frame normalised to
    unit ``norm`` (max by default; all-zero frames stay 0). ``tuning=None`` estimates the
    tuning from the whole clip as librosa does (peak picking + histogram; per clip for a
    batch); pass ``tuning=0`` for a frame-local definition (the recipe default).

    Examples
    --------
    >>> sr = 22050; t = np.arange(sr) / sr
    >>> c = chroma_stft(np.sin(2 * np.pi * 440 * t).astype(np.float32), sr=sr, tuning=0)
    >>> int(np.argmax(c[:, 10]))  # A
    9
    """
    if S is None and (ctroct, octwidth, base_c) == (5.0, 2.0, True) \
            and norm_name(norm) in (None, "inf", 1, 2):
        out = run("chroma_stft", {"n_chroma": n_chroma, "norm": norm_name(norm),
                                  "tuning": None if tuning is None else float(tuning)},
                  y, sr, n_fft, hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    P = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=2.0,
                    win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    n_fft = 2 * (P.shape[-2] - 1)
    if tuning is None and P.ndim > 2:
        flat = P.reshape((-1,) + P.shape[-2:])
        out = [chroma_stft(S=p, sr=sr, norm=norm, tuning=None, n_chroma=n_chroma, ctroct=ctroct,
                           octwidth=octwidth, base_c=base_c) for p in flat]
        return np.stack(out).reshape(P.shape[:-2] + out[0].shape)
    if tuning is None:
        p, m = piptrack_peaks(P, sr, n_fft)
        tuning = tuning_from_peaks(p, m, bins_per_octave=n_chroma)
    fb = chroma_filterbank(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma,
                           ctroct=ctroct, octwidth=octwidth, base_c=base_c)
    return normalize_frames(np.matmul(fb, P), norm)


def onset_from_db(S_db: np.ndarray, prev: np.ndarray | None, t0: int, lag: int, max_size: int,
                  n_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal onset strength of the dB frames ``S_db`` ``(..., n_mels, k)`` starting at
    absolute frame ``t0``, given ``prev`` = the ``min(t0, lag + n_pad)`` frames before them.

    ``env[t] = mean_f max(0, S[t - n_pad] - ref[t - n_pad - lag])`` for ``t >= lag + n_pad``
    and 0 before (librosa's zero padding). Returns ``(env (..., 1, k), prev for the next
    block)``.
    """
    d = lag + n_pad
    full = S_db if prev is None or not prev.shape[-1] else np.concatenate([prev, S_db], axis=-1)
    base = t0 - (full.shape[-1] - S_db.shape[-1])  # absolute index of full[..., 0]
    if max_size == 1:
        ref = full
    else:
        import scipy.ndimage

        ref = scipy.ndimage.maximum_filter1d(full, max_size, axis=-2)
    k = S_db.shape[-1]
    out = np.zeros(S_db.shape[:-2] + (1, k), np.float32)
    first = max(d, t0)  # first absolute frame with a non-zero definition
    if first < t0 + k:
        a = full[..., first - n_pad - base : t0 + k - n_pad - base]
        b = ref[..., first - n_pad - lag - base : t0 + k - n_pad - lag - base]
        out[..., 0, first - t0 :] = np.maximum(a - b, np.float32(0.0)).mean(axis=-2)
    return out, full[..., max(full.shape[-1] - d, 0) :]


def onset_strength(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    lag: int = 1,
    max_size: int = 1,
    detrend: bool = False,
    center: bool = True,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Onset strength envelope ``(..., n_frames)``; ``librosa.onset.onset_strength``.

    Spectral flux of the log-power mel spectrogram (``power_to_db``, 128 bands): the mean
    over bands of ``max(0, S[t] - ref[t - lag])`` (``ref`` = S, or its ``max_size``-band
    maximum filter), shifted right by ``lag + n_fft // (2 hop)`` frames with zeros when
    ``center`` so the envelope lines up with the STFT frames; optional ``detrend`` high-pass
    ``(1 - z^-1) / (1 - 0.99 z^-1)``. ``S``: a log-power (dB) spectrogram used as is.
    ``top_db`` (librosa: 80, relative to the whole clip's maximum) is exposed; ``None`` makes
    the envelope frame-local (the recipe default). librosa's multi-channel variant is not
    provided.

    Examples
    --------
    >>> onset_strength(np.random.default_rng(0).standard_normal(22050), sr=22050).shape
    (44,)
    """
    if lag < 1 or max_size < 1:
        raise ValueError(f"lag and max_size must be >= 1, got {lag}, {max_size}")
    if S is None and center:  # (center only shifts the envelope; the mel frames are centred)
        out = run("onset_strength", {"n_mels": n_mels, "fmin": float(fmin), "fmax": fmax,
                                     "lag": lag, "max_size": max_size, "detrend": bool(detrend),
                                     "top_db": top_db},
                  y, sr, n_fft, hop_length, None, "hann", center)
        if out is not None:
            return out[..., 0, :]
    if S is None:
        M = melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                           fmin=fmin, fmax=fmax)
        from .cepstral import clip_db

        S = clip_db(power_to_db(M, top_db=None), top_db)
    S = np.asarray(S, np.float32)
    n_pad = n_fft // (2 * hop_length) if center else 0
    env, _ = onset_from_db(S, None, 0, lag, max_size, n_pad)
    if detrend:
        from scipy.signal import lfilter

        env = lfilter([1.0, -1.0], [1.0, -0.99], env, axis=-1).astype(np.float32)
    return env[..., 0, :]


def tempogram_frames(env_padded: np.ndarray, win: np.ndarray, n: int, norm: float | None
                     ) -> np.ndarray:
    """Autocorrelation tempogram of windows ``env_padded[t : t + win_length]``, t < n."""
    L = len(win)
    st = env_padded.strides[-1]
    fr = np.lib.stride_tricks.as_strided(
        env_padded, shape=env_padded.shape[:-1] + (n, L),
        strides=env_padded.strides[:-1] + (st, st), writeable=False)
    x = fr * win
    n_pad = scipy.fft.next_fast_len(2 * L - 1, real=True)
    X = scipy.fft.rfft(x, n=n_pad, axis=-1)
    ac = scipy.fft.irfft(X.real**2 + X.imag**2, n=n_pad, axis=-1)[..., :L]
    return normalize_frames(np.swapaxes(ac, -1, -2).astype(np.float32), norm)


def tempogram(
    y: np.ndarray | None = None,
    sr: float = 22050,
    onset_envelope: np.ndarray | None = None,
    hop_length: int = 512,
    win_length: int = 384,
    center: bool = True,
    window: WindowSpec = "hann",
    norm: float | None = np.inf,
) -> np.ndarray:
    """Autocorrelation tempogram ``(..., win_length, n_frames)``; ``librosa.feature.tempogram``.

    The windowed (Hann, ``win_length`` frames) autocorrelation of the onset strength
    envelope around each frame, each column normalised to unit ``norm``. Centred windows
    extend the envelope by ``win_length // 2`` frames with a linear ramp to zero at both
    ends (librosa's ``linear_ramp`` padding). Row ``k`` is lag ``k`` frames (tempo
    ``60 sr / (hop_length k)`` BPM).

    Examples
    --------
    >>> tempogram(np.random.default_rng(0).standard_normal(22050), sr=22050).shape
    (384, 44)
    """
    if win_length < 1:
        raise ValueError(f"win_length: must be >= 1, got {win_length}")
    if onset_envelope is None:
        if y is None:
            raise ValueError("either y or onset_envelope must be given")
        onset_envelope = onset_strength(y=y, sr=sr, hop_length=hop_length)
    env = np.asarray(onset_envelope, np.float32)
    n = env.shape[-1]
    if center:
        pad = [(0, 0)] * (env.ndim - 1) + [(win_length // 2, win_length // 2)]
        env = np.pad(env, pad, mode="linear_ramp", end_values=0)
    win = get_window(window, win_length).astype(np.float32)
    n_out = n if center else env.shape[-1] - win_length + 1
    if n_out < 1:
        raise ValueError(f"envelope of {n} frames is shorter than win_length={win_length} "
                         "(use center=True)")
    return tempogram_frames(np.ascontiguousarray(env), win, n_out, norm)

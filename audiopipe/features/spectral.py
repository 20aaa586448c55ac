"""Spectra and spectral-shape features (librosa definitions unless stated).

Every public function takes either audio ``y`` (any leading batch dimensions; float32/64 or
int16) or a precomputed spectrogram ``S`` ``(..., 1 + n_fft // 2, n_frames)`` and returns
float32 ``(..., n_dims, n_frames)``. The ``*_from_*`` kernels work on one spectrogram block
laid out (freq, frames) and are what :class:`audiopipe.features.Extractor` calls on its
shared STFT.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import (
    BLOCK_FRAMES,
    WindowSpec,
    _frame_rows,
    as_audio,
    fft_frequencies,
    fft_window,
    pad_signal,
    power_to_db,
)
from ._fast import _NOPE, norm_name, run
from .filters import bank_matmul, mel_filterbank

__all__ = [
    "spectrogram",
    "melspectrogram",
    "spectrum",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
    "spectral_contrast",
    "spectral_entropy",
    "spectral_flux",
]

_TINY32 = np.finfo(np.float32).tiny


def spectrogram(
    y: np.ndarray | None = None,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    power: float = 1.0,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """``|stft(y)| ** power`` (float32), or ``S`` itself when given (librosa's ``_spectrogram``).

    ``power=1`` is the magnitude spectrogram, ``power=2`` the power spectrogram.

    Examples
    --------
    >>> spectrogram(np.zeros(4096, np.float32), power=2).shape
    (1025, 9)
    """
    if S is not None:
        return np.asarray(S, dtype=np.float32)
    if y is None:
        raise ValueError("either y or S must be given")
    M = magnitude_T(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                    window=window, center=center, pad_mode=pad_mode)
    if power == 1:
        return M
    if power == 2:
        return np.square(M, out=M)
    return np.power(M, np.float32(power), out=M)


def magnitude_T(
    y: np.ndarray,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """``|stft(y)|`` as a C-contiguous float32 ``(..., 1 + n_fft//2, n_frames)`` array.

    Frames are windowed and transformed in cache-sized blocks and the magnitude is written
    straight into the (freq, frames) layout the filter-bank products want, so no complex
    spectrogram or whole-array transpose is ever materialised (the fast path behind every
    spectral function given ``y``).
    """
    y = as_audio(y)
    n_fft = int(n_fft)
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else int(hop_length)
    if hop_length <= 0:
        raise ValueError(f"hop_length: must be > 0, got {hop_length}")
    win = fft_window(window, n_fft, win_length).astype(np.float32)
    yp = pad_signal(y, n_fft, center, pad_mode)
    flat = yp.reshape((-1, yp.shape[-1]))
    T = 1 + (yp.shape[-1] - n_fft) // hop_length
    F = n_fft // 2 + 1
    out = np.empty((flat.shape[0], F, T), np.float32)
    B = BLOCK_FRAMES
    buf = np.empty((B, n_fft), np.float32)
    for c in range(flat.shape[0]):
        rows = _frame_rows(flat[c], n_fft, hop_length)
        for a in range(0, T, B):
            k = min(B, T - a)
            np.multiply(rows[a : a + k], win, out=buf[:k])
            np.abs(scipy.fft.rfft(buf[:k], axis=-1).T, out=out[c, :, a : a + k])
    return out.reshape(yp.shape[:-1] + (F, T))


def _abs_pow(D: np.ndarray, power: float) -> np.ndarray:
    re, im = D.real, D.imag
    P = re * re
    P += im * im
    if power == 2:
        return P
    if power == 1:
        return np.sqrt(P, out=P)
    return np.power(P, np.float32(power / 2), out=P)


def _n_fft_from(S: np.ndarray | None, n_fft: int) -> int:
    return n_fft if S is None else 2 * (np.shape(S)[-2] - 1)


def melspectrogram(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
) -> np.ndarray:
    """Mel spectrogram ``mel_filterbank @ |stft| ** power``, float32 ``(..., n_mels, n_frames)``.

    Reference: ``librosa.feature.melspectrogram`` (Slaney mel, ``power=2``, 128 bands,
    ``fmax = sr/2``). ``S``, when given, is a magnitude/power spectrogram used as is.
    For log-mel apply :func:`power_to_db` (or use the recipe's ``log: true``).

    Examples
    --------
    >>> melspectrogram(np.zeros(22050, np.float32), sr=22050).shape
    (128, 44)
    """
    if S is None and norm_name(norm) is not _NOPE:
        out = run("melspectrogram", {"n_mels": n_mels, "fmin": float(fmin), "fmax": fmax,
                                     "htk": bool(htk), "norm": norm_name(norm),
                                     "power": float(power)},
                  y, sr, n_fft, hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    S = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=power,
                    win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    M = mel_filterbank(sr=sr, n_fft=_n_fft_from(S, n_fft), n_mels=n_mels, fmin=fmin, fmax=fmax,
                       htk=htk, norm=norm)
    return bank_matmul(M, S)


def spectrum(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    power: float = 2.0,
    **stft_kwargs,
) -> np.ndarray:
    """Clip-average spectrum: mean over frames of ``|stft| ** power``, ``(..., 1 + n_fft//2)``.

    A clip-level feature (one vector per clip), so it is not a frame feature of the recipe;
    the ``features`` table's per-clip mean of ``power_spectrogram`` is the same thing.
    There is no librosa function; it is the plain average of librosa's power spectrogram.

    Examples
    --------
    >>> spectrum(np.ones(4096, np.float32)).shape
    (1025,)
    """
    P = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=power, **stft_kwargs)
    return P.mean(axis=-1, dtype=np.float64).astype(np.float32)


# --------------------------------------------------------------------------------------
# kernels on a (freq, frames) magnitude block

def centroid_from_mag(M: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """``sum_f f S / sum_f S`` per frame (0 where the frame is all zero), shape (..., 1, k)."""
    num = np.matmul(freq.astype(np.float32)[None, :], M)
    den = M.sum(axis=-2, keepdims=True)
    den[den < _TINY32] = 1.0
    return num / den


def bandwidth_from_mag(M: np.ndarray, freq: np.ndarray, centroid: np.ndarray,
                       p: float = 2.0, norm: bool = True) -> np.ndarray:
    """``(sum_f S_n |f - centroid|^p)^(1/p)``, ``S_n`` = S normalised to unit sum if ``norm``."""
    Mt = np.swapaxes(M, -1, -2)
    if M.ndim == 2 and Mt.flags.c_contiguous:  # frame-major data (the extractor's blocks)
        # one (frames, freq) pass per step, summed along contiguous rows, no mixed layouts
        dev = np.subtract(freq.astype(np.float32)[None, :], np.swapaxes(centroid, -1, -2))
        if p == 2:
            np.multiply(dev, dev, out=dev)
        else:
            np.abs(dev, out=dev)
            dev **= np.float32(p)
        s = np.einsum("ij,ij->i", dev, Mt)[None, :]
        if norm:
            den = Mt.sum(axis=-1)[None, :]
            den[den < _TINY32] = 1.0
            s /= den
        return s ** np.float32(1.0 / p)
    dev = np.abs(freq.astype(np.float32)[:, None] - centroid)
    if p == 2:
        dev *= dev
    else:
        dev **= np.float32(p)
    dev *= M
    s = dev.sum(axis=-2, keepdims=True)
    if norm:
        den = M.sum(axis=-2, keepdims=True)
        den[den < _TINY32] = 1.0
        s /= den
    return s ** np.float32(1.0 / p)


def rolloff_from_mag(M: np.ndarray, freq: np.ndarray, roll_percent: float = 0.85,
                     chunk: int = 32) -> np.ndarray:
    """Lowest bin frequency where the cumulative magnitude reaches ``roll_percent`` of the total.

    ``M`` is (..., freq, k). A cumulative sum over all bins is sequential and slow; instead
    the bins are summed in chunks of ``chunk``, the chunk where the threshold is crossed is
    found from the running chunk totals, and only that chunk is accumulated bin by bin (the
    same answer up to float32 rounding of the sums, i.e. a one-bin move only on exact ties).
    """
    lead, (F, k) = M.shape[:-2], M.shape[-2:]
    X = np.swapaxes(M, -1, -2).reshape((-1, F))  # (frames, freq): contiguous for frame-major
    nf = F // chunk
    # chunk sums as a matrix-vector product: BLAS is ~4x faster than a reduction over a
    # short inner axis
    sums = X[:, : nf * chunk].reshape(-1, nf, chunk) @ np.ones(chunk, X.dtype)
    if F % chunk:
        sums = np.concatenate([sums, X[:, nf * chunk :].sum(axis=-1, keepdims=True)], axis=1)
    nb = sums.shape[1]
    CB = np.cumsum(sums, axis=1)
    thr = np.float32(roll_percent) * CB[:, -1:]
    j = np.minimum(np.count_nonzero(CB < thr, axis=1), nb - 1)
    cols = j[:, None] * chunk + np.arange(chunk)
    sub = np.take_along_axis(X, np.minimum(cols, F - 1), axis=1)
    sub[cols >= F] = 0.0
    rows = np.arange(X.shape[0])
    base = np.where(j > 0, CB[rows, np.maximum(j - 1, 0)], np.float32(0.0))
    cs = np.cumsum(sub, axis=1)
    cs += base[:, None]
    idx = np.minimum(j * chunk + np.count_nonzero(cs < thr, axis=1), F - 1)
    return freq.astype(np.float32)[idx].reshape(lead + (1, k))


def flatness_from_power(P: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """Geometric over arithmetic mean of ``max(amin, P)`` per frame (librosa with power=2)."""
    St = np.maximum(P, np.float32(amin))
    # float32 sums are pairwise (accurate) along a contiguous axis; otherwise use float64
    acc = np.float32 if St.strides[-2] == St.itemsize else np.float64
    g = np.exp(np.log(St).mean(axis=-2, keepdims=True, dtype=acc)).astype(np.float32)
    return g / St.mean(axis=-2, keepdims=True)


# --------------------------------------------------------------------------------------
# public spectral-shape functions (librosa signatures)

def _mag_and_freq(y, sr, S, n_fft, hop_length, win_length, window, center, pad_mode, freq):
    M = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=1.0,
                    win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    if np.any(M < 0):
        raise ValueError("S: spectral shape features need a non-negative magnitude spectrogram")
    if freq is None:
        freq = fft_frequencies(sr=sr, n_fft=2 * (M.shape[-2] - 1))
    freq = np.asarray(freq)
    if freq.ndim != 1 or len(freq) != M.shape[-2]:
        raise ValueError(f"freq: expected shape ({M.shape[-2]},), got {freq.shape}")
    return M, freq


def spectral_centroid(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    freq: np.ndarray | None = None,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Spectral centroid (Hz), ``(..., 1, n_frames)``; ``librosa.feature.spectral_centroid``.

    Magnitude-weighted mean frequency of ``|stft|`` (power 1). An all-zero frame gives 0.

    Examples
    --------
    >>> sr = 22050; t = np.arange(sr) / sr
    >>> c = spectral_centroid(np.sin(2 * np.pi * 1000 * t).astype(np.float32), sr=sr)
    >>> bool(abs(np.median(c) - 1000) < 5)
    True
    """
    if S is None and freq is None:
        out = run("spectral_centroid", {}, y, sr, n_fft, hop_length, win_length, window, center,
                  pad_mode)
        if out is not None:
            return out
    M, freq = _mag_and_freq(y, sr, S, n_fft, hop_length, win_length, window, center, pad_mode,
                            freq)
    return centroid_from_mag(M, freq)


def spectral_bandwidth(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    freq: np.ndarray | None = None,
    centroid: np.ndarray | None = None,
    norm: bool = True,
    p: float = 2.0,
) -> np.ndarray:
    """Spectral bandwidth / spread (Hz), ``(..., 1, n_frames)``; librosa ``spectral_bandwidth``.

    ``(sum_f S_n(f) |f - centroid|^p)^(1/p)`` with ``S_n`` the magnitude spectrum normalised
    to unit sum per frame (``norm=True``).

    Examples
    --------
    >>> b = spectral_bandwidth(np.random.default_rng(0).standard_normal(22050), sr=22050)
    >>> b.shape
    (1, 44)
    """
    if S is None and freq is None and centroid is None:
        out = run("spectral_bandwidth", {"p": float(p), "norm": bool(norm)}, y, sr, n_fft,
                  hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    M, freq = _mag_and_freq(y, sr, S, n_fft, hop_length, win_length, window, center, pad_mode,
                            freq)
    if centroid is None:
        centroid = centroid_from_mag(M, freq)
    return bandwidth_from_mag(M, freq, np.asarray(centroid, np.float32), p=p, norm=norm)


def spectral_rolloff(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    freq: np.ndarray | None = None,
    roll_percent: float = 0.85,
) -> np.ndarray:
    """Roll-off frequency (Hz), ``(..., 1, n_frames)``; ``librosa.feature.spectral_rolloff``.

    The lowest bin centre frequency at which the cumulative magnitude reaches
    ``roll_percent`` of the frame's total. An all-zero frame gives 0 Hz (as librosa).
    Being a bin index, it can differ from librosa by one bin when the cumulative sum
    ties the threshold to within float32 rounding.

    Examples
    --------
    >>> spectral_rolloff(np.zeros(4096, np.float32)).max()
    np.float32(0.0)
    """
    if not 0.0 < roll_percent < 1.0:
        raise ValueError(f"roll_percent: must be in (0, 1), got {roll_percent}")
    if S is None and freq is None:
        out = run("spectral_rolloff", {"roll_percent": float(roll_percent)}, y, 22050 if sr is None
                  else sr, n_fft, hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    M, freq = _mag_and_freq(y, sr, S, n_fft, hop_length, win_length, window, center, pad_mode,
                            freq)
    return rolloff_from_mag(M, freq, roll_percent)


def spectral_flatness(
    y: np.ndarray | None = None,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    amin: float = 1e-10,
    power: float = 2.0,
) -> np.ndarray:
    """Spectral flatness (Wiener entropy), ``(..., 1, n_frames)``; librosa ``spectral_flatness``.

    ``gmean(max(amin, |S|^power)) / mean(max(amin, |S|^power))``; 1 for white noise, near 0
    for a tone; silence gives 1 (all bins at the floor).

    Examples
    --------
    >>> round(float(spectral_flatness(np.zeros(4096, np.float32)).min()), 4)
    1.0
    """
    if amin <= 0:
        raise ValueError(f"amin: must be > 0, got {amin}")
    if S is None:
        out = run("spectral_flatness", {"amin": float(amin), "power": float(power)}, y, 22050,
                  n_fft, hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    M = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=1.0,
                    win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    P = M * M if power == 2 else M ** np.float32(power)
    return flatness_from_power(P, amin)


def contrast_from_mag(M: np.ndarray, band_masks: list[np.ndarray], n_keep: list[int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (peak, valley) means of the ``n_keep`` largest / smallest magnitudes."""
    shape = M.shape[:-2] + (len(band_masks), M.shape[-1])
    peak = np.empty(shape, np.float32)
    valley = np.empty(shape, np.float32)
    Mt = np.swapaxes(M, -1, -2)  # (..., frames, freq): contiguous rows for frame-major blocks
    for k, (sel, q) in enumerate(zip(band_masks, n_keep, strict=True)):
        sub = Mt[..., sel[0] : sel[-1] + 1]  # bands are contiguous bin ranges
        n = sub.shape[-1]
        if 2 * q <= n:
            # two single-kth partitions: numpy's SIMD select handles one kth; a (kth1, kth2)
            # tuple takes the generic introselect path, ~3x slower than both of these
            valley[..., k, :] = np.partition(sub, q - 1, axis=-1)[..., :q].mean(axis=-1)
            peak[..., k, :] = np.partition(sub, n - q, axis=-1)[..., n - q :].mean(axis=-1)
        else:
            part = np.sort(sub, axis=-1)
            valley[..., k, :] = part[..., :q].mean(axis=-1)
            peak[..., k, :] = part[..., n - q :].mean(axis=-1)
    return peak, valley


def contrast_bands(sr: float, n_fft: int, fmin: float, n_bands: int, quantile: float
                   ) -> tuple[list[np.ndarray], list[int]]:
    """librosa's octave sub-bands (bin indices) and how many bins each quantile mean keeps."""
    if n_bands < 1:
        raise ValueError(f"n_bands: must be >= 1, got {n_bands}")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile: must be in (0, 1), got {quantile}")
    if fmin <= 0:
        raise ValueError(f"fmin: must be > 0, got {fmin}")
    freq = fft_frequencies(sr=sr, n_fft=n_fft)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ValueError("fmin/n_bands: frequency band exceeds Nyquist; reduce fmin or n_bands")
    masks, keeps = [], []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:], strict=True)):
        band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        keep = int(max(np.rint(quantile * np.sum(band)), 1))
        sel = np.flatnonzero(band)
        if k < n_bands:
            sel = sel[:-1]
        masks.append(sel)
        keeps.append(keep)
    return masks, keeps


def spectral_contrast(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    fmin: float = 200.0,
    n_bands: int = 6,
    quantile: float = 0.02,
    linear: bool = False,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Spectral contrast, ``(..., n_bands + 1, n_frames)``; ``librosa.feature.spectral_contrast``.

    Per octave band (from ``fmin``; the first band is everything below it, the last
    everything above), the difference between the mean of the top ``quantile`` and of the
    bottom ``quantile`` of the magnitudes, in dB unless ``linear``. As librosa, the dB values
    are ``power_to_db`` of the *magnitudes* with ``top_db=80`` clipping at each array's
    maximum over the whole clip; ``top_db=None`` (the recipe default) makes frames
    independent. The per-band quantile means use ``np.partition`` instead of a full sort.

    Examples
    --------
    >>> spectral_contrast(np.random.default_rng(0).standard_normal(22050)).shape
    (7, 44)
    """
    if S is None:
        out = run("spectral_contrast", {"fmin": float(fmin), "n_bands": int(n_bands),
                                        "quantile": float(quantile), "linear": bool(linear),
                                        "top_db": top_db},
                  y, sr, n_fft, hop_length, win_length, window, center, pad_mode)
        if out is not None:
            return out
    M = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=1.0,
                    win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    masks, keeps = contrast_bands(sr, 2 * (M.shape[-2] - 1), fmin, n_bands, quantile)
    peak, valley = contrast_from_mag(M, masks, keeps)
    if linear:
        return peak - valley
    from .cepstral import clip_db

    pk = clip_db(power_to_db(peak, top_db=None), top_db)
    va = clip_db(power_to_db(valley, top_db=None), top_db)
    return pk - va


def entropy_of_subbands(E: np.ndarray, n_short_blocks: int, total: np.ndarray | None = None,
                        eps: float = 1e-8) -> np.ndarray:
    """pyAudioAnalysis' entropy of ``n_short_blocks`` equal sub-blocks along axis -2.

    ``E`` holds non-negative energies (..., n, k); the last ``n % n_short_blocks`` rows are
    dropped (after ``total``, default their sum, is taken), each sub-block's share
    ``s = sum / (total + eps)`` and the entropy ``-sum s log2(s + eps)`` is returned
    ``(..., 1, k)``.
    """
    n = E.shape[-2]
    sub = n // n_short_blocks
    if total is None:
        total = E.sum(axis=-2, keepdims=True, dtype=np.float64)
    blocks = E[..., : sub * n_short_blocks, :].reshape(
        E.shape[:-2] + (n_short_blocks, sub, E.shape[-1]))
    s = blocks.sum(axis=-2, dtype=np.float64) / (total + eps)
    return (-(s * np.log2(s + eps)).sum(axis=-2, keepdims=True)).astype(np.float32)


def _paa_spectrum(y, S, sr, n_fft, hop_length, window, center):
    """pyAudioAnalysis' |FFT| / (n_fft / 2) without the Nyquist bin, (..., n_fft//2, T)."""
    if S is not None:
        M = np.asarray(S, np.float32)
        n = 2 * (M.shape[-2] - 1)
        return M[..., : n // 2, :] * np.float32(2.0 / n)
    n_fft = int(0.050 * sr) if n_fft is None else int(n_fft)
    hop_length = int(0.025 * sr) if hop_length is None else int(hop_length)
    M = spectrogram(y=y, n_fft=n_fft, hop_length=hop_length, power=1.0, window=window,
                    center=center)
    return M[..., : n_fft // 2, :] * np.float32(1.0 / (n_fft // 2))


def spectral_entropy(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    window: WindowSpec = "boxcar",
    center: bool = False,
    n_short_blocks: int = 10,
) -> np.ndarray:
    """Spectral entropy, ``(..., 1, n_frames)``; pyAudioAnalysis ``spectral_entropy``.

    The magnitude spectrum (bins below Nyquist, ``|FFT| / (n_fft/2)``) is split into
    ``n_short_blocks`` equal sub-bands; with ``s_j`` = sub-band energy (sum of squared
    magnitudes) over the frame's total, the entropy is ``-sum s_j log2(s_j + eps)``,
    ``eps = 1e-8``. Defaults are pyAudioAnalysis' short-term framing: rectangular frames of
    50 ms every 25 ms (``n_fft``/``hop_length`` default to those at ``sr``), uncentred.
    Range ``[0, log2(n_short_blocks)]``: 0 for a pure tone, high for noise; silence gives 0.
    pyAudioAnalysis also normalises the whole file (mean removed, divided by its maximum)
    before framing; that cancels here (the entropy is scale-free) except for a DC offset.

    Examples
    --------
    >>> e = spectral_entropy(np.random.default_rng(0).standard_normal(22050), sr=22050)
    >>> bool(e.mean() > 3.0)
    True
    """
    M = _paa_spectrum(y, S, sr, n_fft, hop_length, window, center)
    E = M * M
    return entropy_of_subbands(E, n_short_blocks)


def flux_from_mag(M: np.ndarray, prev: np.ndarray | None, eps: float = 1e-8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """pyAudioAnalysis flux of each frame against the one before (``prev``: last column of
    the previous block, or None at the clip start, where the flux is 0). Returns the flux
    ``(..., 1, k)`` and the normalised last column for the next block."""
    Mt = np.swapaxes(M, -1, -2)  # (..., frames, freq)
    N = Mt / (Mt + np.float32(eps)).sum(axis=-1, keepdims=True)
    first = N[..., :1, :] if prev is None else prev
    d = np.diff(np.concatenate([first, N], axis=-2), axis=-2)
    d *= d
    return d.sum(axis=-1)[..., None, :], N[..., -1:, :]


def spectral_flux(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    window: WindowSpec = "boxcar",
    center: bool = False,
) -> np.ndarray:
    """Spectral flux, ``(..., 1, n_frames)``; pyAudioAnalysis ``spectral_flux``.

    ``sum_f (X_t(f)/sum X_t - X_{t-1}(f)/sum X_{t-1})^2`` of consecutive magnitude spectra,
    each normalised to unit sum (``sum(X + eps)``, ``eps = 1e-8``); the first frame's flux
    is 0 (pyAudioAnalysis compares it with itself). Framing and spectrum as
    :func:`spectral_entropy` (50 ms rectangular frames every 25 ms). librosa has no spectral
    flux; its ``onset_strength`` is a log-mel flux (:func:`audiopipe.features.onset_strength`).

    Examples
    --------
    >>> float(spectral_flux(np.zeros(22050, np.float32), sr=22050).max())
    0.0
    """
    M = _paa_spectrum(y, S, sr, n_fft, hop_length, window, center)
    return flux_from_mag(M, None)[0]

"""Filter banks and transform matrices: mel, chroma, DCT, gammatone and Bark.

Banks are built once in float64 following the reference formulas and returned as cached,
read-only float32 ``(n_filters, 1 + n_fft // 2)`` matrices (safe to share between threads).
:func:`bank_matmul` applies one to a ``(..., freq, frames)`` spectrogram (sparse when the bank
is mostly zeros); :func:`banded_plan` / :func:`apply_banded` are the extractor's form for
frame-major blocks.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.sparse

from ._core import fft_frequencies

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_frequencies",
    "mel_filterbank",
    "chroma_filterbank",
    "dct_matrix",
    "hz_to_octs",
    "gammatone_filterbank",
    "bark_filterbank",
    "bark_centers",
    "bank_matmul",
    "banded_plan",
    "apply_banded",
]


def hz_to_mel(frequencies: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz to mel, Slaney's auditory-toolbox scale (default) or HTK, as ``librosa.hz_to_mel``.

    Slaney: linear below 1 kHz (``f / (200/3)``), logarithmic above (27 mels per factor 6.4).
    HTK: ``2595 log10(1 + f / 700)``.

    Examples
    --------
    >>> round(float(hz_to_mel(1000.0)), 9)
    15.0
    """
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    logs = min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, logs, mels)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (``librosa.mel_to_hz``).

    Examples
    --------
    >>> round(float(mel_to_hz(15.0)), 6)
    1000.0
    """
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(
    n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False
) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced in mel, as ``librosa.mel_frequencies``.

    Examples
    --------
    >>> np.round(mel_frequencies(n_mels=3, fmin=0.0, fmax=2000.0), 3)
    array([   0.   ,  836.063, 2000.   ])
    """
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


@functools.lru_cache(maxsize=64)
def _mel_cached(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    fftfreqs = fft_frequencies(sr=sr, n_fft=n_fft)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, None]
    elif norm is not None:
        p = np.inf if norm == "inf" else float(norm)
        lengths = np.linalg.norm(weights, ord=p, axis=-1, keepdims=True)
        weights = weights / np.where(lengths > np.finfo(np.float64).tiny, lengths, 1.0)
    w = weights.astype(np.float32)
    w.setflags(write=False)
    zero = ~(weights.max(axis=1) > 0)
    # the all-zero channels, when librosa warns: one that does not start at 0 Hz is among them
    empty = int(zero.sum()) if np.any(zero & (mel_f[:-2] != 0)) else 0
    return w, empty


def mel_filterbank(
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
) -> np.ndarray:
    """Triangular mel filter bank ``(n_mels, 1 + n_fft // 2)`` float32, as ``librosa.filters.mel``.

    Triangles between consecutive mel-spaced edge frequencies (``n_mels + 2`` edges from
    ``fmin`` to ``fmax``, default ``sr / 2``), Slaney mel scale unless ``htk``; ``norm="slaney"``
    divides each triangle by its width in Hz (constant energy per channel), a number ``p``
    normalises each row to unit p-norm, ``None`` leaves peaks at 1. The result is cached and
    read-only. Channels no FFT bin falls in (``fmax`` above Nyquist, ``n_mels`` too many for
    ``n_fft``) are all zero and a ``UserWarning`` says so, as librosa's does.

    Examples
    --------
    >>> M = mel_filterbank(sr=22050, n_fft=2048, n_mels=128)
    >>> M.shape
    (128, 1025)
    """
    if fmax is None:
        fmax = float(sr) / 2
    if n_mels <= 0:
        raise ValueError(f"n_mels: must be > 0, got {n_mels}")
    if not 0 <= fmin < fmax:
        raise ValueError(f"fmin/fmax: need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    w, empty = _mel_cached(float(sr), int(n_fft), int(n_mels), float(fmin), float(fmax),
                           bool(htk), norm if norm is None or isinstance(norm, str) else float(norm))
    if empty:
        above = f", fmax {fmax:g} Hz is above Nyquist ({sr / 2:g} Hz)" if fmax > sr / 2 else ""
        warnings.warn(
            f"Empty filters detected in mel frequency basis: {empty} of {n_mels} mel channels "
            f"have no FFT bin (sr {sr:g} Hz, n_fft {n_fft}{above}) and will produce empty "
            "responses. Try increasing your sampling rate (and fmax) or reducing n_mels.",
            UserWarning, stacklevel=2)
    return w


def hz_to_octs(frequencies: np.ndarray | float, *, tuning: float = 0.0,
               bins_per_octave: int = 12) -> np.ndarray:
    """Hz to octave numbers, ``log2(f / (A440 / 16))`` with ``A440 = 440 * 2**(tuning/bpo)``."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies, dtype=np.float64) / (a440 / 16))


@functools.lru_cache(maxsize=64)
def _chroma_cached(sr, n_fft, n_chroma, tuning, ctroct, octwidth, norm, base_c):
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    D = np.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / binwidthbins[None, :]) ** 2)
    if norm is not None:
        lengths = np.linalg.norm(wts, ord=norm, axis=0, keepdims=True)
        wts = wts / np.where(lengths > np.finfo(np.float64).tiny, lengths, 1.0)
    if octwidth is not None:
        wts *= np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2))[None, :]
    if base_c:
        wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    w = np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)
    w.setflags(write=False)
    return w


def chroma_filterbank(
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    n_chroma: int = 12,
    tuning: float = 0.0,
    ctroct: float = 5.0,
    octwidth: float | None = 2.0,
    norm: float | None = 2,
    base_c: bool = True,
) -> np.ndarray:
    """Chroma filter bank ``(n_chroma, 1 + n_fft // 2)`` float32, as ``librosa.filters.chroma``.

    Ellis' chromagram weights: each FFT bin contributes a Gaussian bump (width one chroma
    bin, or the bin's own width at low frequency) to its pitch class, columns normalised to
    unit ``norm``, weighted by a Gaussian over octaves centred at ``ctroct`` (octave 5,
    ~ 880 Hz) of width ``octwidth`` octaves; rows start at C when ``base_c``.

    Examples
    --------
    >>> chroma_filterbank(sr=22050, n_fft=2048).shape
    (12, 1025)
    """
    return _chroma_cached(float(sr), int(n_fft), int(n_chroma), float(tuning), float(ctroct),
                          None if octwidth is None else float(octwidth), norm, bool(base_c))


@functools.lru_cache(maxsize=64)
def dct_matrix(n_out: int, n_in: int, *, lifter: float = 0.0) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n_out, n_in)`` float32 (``scipy.fft.dct(norm="ortho")`` rows).

    With ``lifter > 0`` row ``k`` is scaled by ``1 + lifter/2 * sin(pi (k+1) / lifter)``, as
    librosa's MFCC liftering.

    Examples
    --------
    >>> D = dct_matrix(4, 4)
    >>> np.allclose(D @ D.T, np.eye(4), atol=1e-6)
    True
    """
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    d[0] *= 1 / np.sqrt(2.0)
    if lifter and lifter > 0:
        d *= 1 + (lifter / 2) * np.sin(np.pi * np.arange(1, n_out + 1) / lifter)[:, None]
    w = d.astype(np.float32)
    w.setflags(write=False)
    return w


class _Key:
    """Hashable identity wrapper so the read-only cached banks can key a CSR cache."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __hash__(self) -> int:
        return id(self.a)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.a is self.a


@functools.lru_cache(maxsize=64)
def _csr_cached(key: _Key):
    bank = key.a
    if np.count_nonzero(bank) > 0.3 * bank.size:
        return None
    return scipy.sparse.csr_array(bank)


def bank_matmul(bank: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``bank @ S`` over the last two axes, float32; sparse (CSR) when the bank is mostly
    zeros and is one of the cached, read-only banks of this module (as the mel bank)."""
    S = np.asarray(S, dtype=np.float32)
    csr = _csr_cached(_Key(bank)) if not bank.flags.writeable else None
    if csr is None:
        return np.matmul(bank, S)
    if S.ndim == 2:
        return np.asarray(csr @ np.ascontiguousarray(S), dtype=np.float32)
    flat = S.reshape((-1,) + S.shape[-2:])
    out = np.stack([csr @ np.ascontiguousarray(s) for s in flat]).astype(np.float32)
    return out.reshape(S.shape[:-2] + out.shape[-2:])


# --------------------------------------------------------------------------------------
# auditory banks (spafe 0.3.3 definitions)

_EAR_Q = 9.26449  # Glasberg & Moore ERB parameters (Slaney's auditory toolbox)
_MIN_BW = 24.7


def erb_center_frequencies(fmin: float, fmax: float, n_bands: int) -> np.ndarray:
    """Gammatone centre frequencies uniformly spaced on the ERB scale, ascending (Hz).

    Slaney's ``ERBSpace``: ``(fmax + c) exp(m/n (log(fmin + c) - log(fmax + c))) - c``,
    ``c = EarQ * minBW``, m = 1..n (so the top channel sits just below ``fmax``).
    """
    m = np.arange(1, n_bands + 1)
    c = _EAR_Q * _MIN_BW
    cf = (fmax + c) * np.exp((m / n_bands) * (np.log(fmin + c) - np.log(fmax + c))) - c
    return cf[::-1]


@functools.lru_cache(maxsize=32)
def _gammatone_cached(sr, n_fft, n_bands, fmin, fmax, order):
    T = 1.0 / sr
    u = np.exp(1j * 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)[None, :]
    fcs = erb_center_frequencies(fmin, fmax, n_bands)
    erb = ((fcs / _EAR_Q) ** order + _MIN_BW**order) ** (1 / order)
    B = 1.019 * 2 * np.pi * erb
    wT = 2 * fcs * np.pi * T
    pole = (np.exp(1j * wT) / np.exp(B * T))[:, None]
    K = np.exp(B * T)
    cos, sin = np.cos(wT), np.sin(wT)
    smax, smin = np.sqrt(3 + 2**1.5), np.sqrt(3 - 2**1.5)
    A = np.array([(cos + smax * sin) / K, (cos - smax * sin) / K,
                  (cos + smin * sin) / K, (cos - smin * sin) / K])  # zeros of the 4 stages
    zeros = np.abs((u - A[0][:, None]) * (u - A[1][:, None]) * (u - A[2][:, None])
                   * (u - A[3][:, None]))
    resp = zeros * np.abs((u - pole) * (u - pole.conj())) ** -4
    w = resp / resp.max(axis=1, keepdims=True)  # peak 1 (spafe's gain term cancels here)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


def gammatone_filterbank(
    *,
    sr: float = 16000,
    n_fft: int = 512,
    n_bands: int = 24,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """4th-order gammatone filter magnitude responses ``(n_bands, 1 + n_fft//2)`` float32.

    Reference: ``spafe.fbanks.gammatone_fbanks.gammatone_filter_banks`` (Slaney's
    ``MakeERBFilters`` all-pole/zero cascade evaluated on the FFT grid, each filter scaled
    to peak 1, centre frequencies on the ERB scale from :func:`erb_center_frequencies`).
    Rows are ordered from the highest centre frequency down, as spafe's.

    Examples
    --------
    >>> gammatone_filterbank(sr=16000, n_fft=512, n_bands=24).shape
    (24, 257)
    """
    fmax = sr / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"fmin/fmax: need 0 <= fmin < fmax <= sr/2, got {fmin}, {fmax}")
    return _gammatone_cached(float(sr), int(n_fft), int(n_bands), float(fmin), float(fmax), 4)


def hz_to_bark(f: np.ndarray | float) -> np.ndarray:
    """Hz to Bark, Wang et al.'s ``6 asinh(f / 600)`` (spafe's default)."""
    return 6.0 * np.arcsinh(np.asanyarray(f, dtype=np.float64) / 600.0)


def bark_to_hz(b: np.ndarray | float) -> np.ndarray:
    """Bark to Hz, ``600 sinh(b / 6)``."""
    return 600.0 * np.sinh(np.asanyarray(b, dtype=np.float64) / 6.0)


@functools.lru_cache(maxsize=32)
def _bark_cached(sr, n_fft, n_bands, fmin, fmax):
    centers = np.linspace(hz_to_bark(fmin), hz_to_bark(fmax), n_bands)
    bins = np.floor((n_fft + 1) * bark_to_hz(centers) / sr).astype(int)
    w = np.zeros((n_bands, n_fft // 2 + 1))
    i = np.arange(bins[0], bins[-1])
    fb = hz_to_bark(i * sr / (n_fft + 1))[None, :]
    d = fb - centers[:, None]
    w[:, i] = np.where(
        (d < -1.3) | (d > 2.5), 0.0,
        np.where(d <= -0.5, 10 ** (2.5 * (d + 0.5)), np.where(d < 0.5, 1.0, 10 ** (-(d - 0.5)))))
    w = w.astype(np.float32)
    w.setflags(write=False)
    centers.setflags(write=False)
    return w, centers


def bark_filterbank(
    *,
    sr: float = 16000,
    n_fft: int = 512,
    n_bands: int = 26,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Bark-scale critical-band filters ``(n_bands, 1 + n_fft//2)`` float32.

    Reference: ``spafe.fbanks.bark_fbanks.bark_filter_banks`` (Wang's Bark scale; the
    Zwicker-style spreading function ``10^(2.5 (d + 0.5))`` below, 1 within ±0.5 Bark,
    ``10^-(d - 0.5)`` above, zero outside [-1.3, 2.5] Bark; filled between the first and the
    last centre bin, with spafe's ``(n_fft + 1)`` bin spacing). Centres: :func:`bark_centers`.

    Examples
    --------
    >>> bark_filterbank(sr=16000, n_fft=512, n_bands=26).shape
    (26, 257)
    """
    fmax = sr / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"fmin/fmax: need 0 <= fmin < fmax <= sr/2, got {fmin}, {fmax}")
    return _bark_cached(float(sr), int(n_fft), int(n_bands), float(fmin), float(fmax))[0]


def bark_centers(*, sr: float = 16000, n_bands: int = 26, fmin: float = 0.0,
                 fmax: float | None = None) -> np.ndarray:
    """Centre frequencies (Hz) of :func:`bark_filterbank`'s bands."""
    fmax = sr / 2 if fmax is None else fmax
    return bark_to_hz(np.linspace(hz_to_bark(fmin), hz_to_bark(fmax), n_bands))


def banded_plan(bank: np.ndarray, group: int = 16) -> list[tuple[int, int, int, int, np.ndarray]]:
    """Split a (n_filters, freq) bank into groups of filters with their non-zero bin range.

    A mel bank has ~2% non-zeros: :func:`apply_banded` then does ~7% of the dense work,
    without a sparse format or a transpose of the spectrum. A dense bank stays one group.
    """
    n = bank.shape[0]
    nnz = np.count_nonzero(bank)
    if nnz > 0.3 * bank.size or n <= group:
        return [(0, n, 0, bank.shape[1], np.ascontiguousarray(bank.T))]
    plan = []
    for c0 in range(0, n, group):
        sub = bank[c0 : c0 + group]
        cols = np.flatnonzero(sub.any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 1)
        plan.append((c0, c0 + sub.shape[0], lo, hi, np.ascontiguousarray(sub[:, lo:hi].T)))
    return plan


def apply_banded(plan, S_fm: np.ndarray) -> np.ndarray:
    """``S_fm @ bank.T`` (k, n_filters) for a frame-major spectrum block ``S_fm`` (k, freq)."""
    n = plan[-1][1]
    out = np.empty((S_fm.shape[0], n), np.float32)
    for c0, c1, lo, hi, W in plan:
        np.matmul(S_fm[:, lo:hi], W, out=out[:, c0:c1])
    return out

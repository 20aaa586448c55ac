"""Cepstral features: MFCC (librosa); GFCC, BFCC, LPCC, PNCC (spafe / published
definitions) and the real cepstrum.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import WindowSpec, _frame_rows, as_audio, fft_window, power_to_db
from ._fast import run
from .filters import bark_centers, bark_filterbank, dct_matrix, gammatone_filterbank
from .lpc import autocorr_from_power, autocorrelation, levinson, lpc_to_cepstrum
from .pncc import pncc_from_power
from .spectral import melspectrogram

__all__ = ["mfcc", "gfcc", "bfcc", "lpc", "lpcc", "pncc", "real_cepstrum", "clip_db",
           "equal_loudness", "preemphasis_response"]


def clip_db(S_db: np.ndarray, top_db: float | None) -> np.ndarray:
    """Clip dB values at ``max - top_db`` per clip (max over the last two axes), in place."""
    if top_db is None:
        return S_db
    if top_db < 0:
        raise ValueError(f"top_db: must be >= 0, got {top_db}")
    m = S_db.max(axis=(-2, -1), keepdims=True)
    np.maximum(S_db, m - np.float32(top_db), out=S_db)
    return S_db


def mfcc(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_mfcc: int = 20,
    dct_type: int = 2,
    norm: str | None = "ortho",
    lifter: float = 0.0,
    top_db: float | None = 80.0,
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
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, float32 ``(..., n_mfcc, n_frames)``.

    Reference: ``librosa.feature.mfcc``: ``dct(power_to_db(melspectrogram(y)), type=2,
    norm="ortho")[:n_mfcc]`` with 128 Slaney mel bands of the power spectrogram, ``ref=1``,
    ``amin=1e-10`` (silence gives finite values) and ``top_db=80``. ``S``, when given, is a
    log-power mel spectrogram (as in librosa). ``lifter > 0`` applies librosa's sinusoidal
    liftering.

    Differs from librosa: ``top_db`` is exposed (librosa fixes it at 80). With batched input
    the ``top_db`` clipping uses each clip's own maximum (librosa uses the maximum over the
    whole batch), so a batch gives the same as one clip at a time. ``top_db=None`` makes
    every frame independent of the rest of the clip (what the pipeline recipe uses).

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> mfcc(y, sr=22050).shape
    (20, 44)
    """
    if S is None and dct_type == 2 and norm == "ortho" and 0 < n_mfcc <= n_mels:
        out = run("mfcc", {"n_mfcc": n_mfcc, "lifter": float(lifter), "n_mels": n_mels,
                           "fmin": float(fmin), "fmax": fmax, "htk": bool(htk),
                           "norm": "slaney", "power": float(power), "top_db": top_db,
                           "amin": 1e-10}, y, sr, n_fft, hop_length, win_length, window, center,
                  pad_mode)
        if out is not None:
            return out
    if S is None:
        if y is None:
            raise ValueError("either y or S must be given")
        S = melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                           win_length=win_length, window=window, center=center,
                           pad_mode=pad_mode, power=power, n_mels=n_mels, fmin=fmin, fmax=fmax,
                           htk=htk)
        S = clip_db(power_to_db(S, top_db=None), top_db)
    S = np.asarray(S, dtype=np.float32)
    if n_mfcc <= 0 or n_mfcc > S.shape[-2]:
        raise ValueError(f"n_mfcc: must be in 1..n_mels={S.shape[-2]}, got {n_mfcc}")
    if dct_type == 2 and norm == "ortho":
        return np.matmul(dct_matrix(n_mfcc, S.shape[-2], float(lifter)), S)
    M = scipy.fft.dct(S, axis=-2, type=dct_type, norm=norm)[..., :n_mfcc, :]
    if lifter > 0:
        li = np.sin(np.pi * np.arange(1, 1 + n_mfcc) / lifter)[:, None]
        M *= 1 + (lifter / 2) * li
    return M.astype(np.float32)


# --------------------------------------------------------------------------------------
# speech front end shared by GFCC / BFCC / LPC / LPCC / PNCC (spafe conventions)

def preemphasis_response(n_fft: int, coef: float) -> np.ndarray:
    """Power response ``|1 - coef e^{-jw}|^2`` of the pre-emphasis filter on the rfft grid."""
    w = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    return (1 + coef * coef - 2 * coef * np.cos(w)).astype(np.float32)


def _speech_frames(y, sr, win_length, hop_length, center):
    """Pre-emphasised signal framed as rows (..., n_frames, win_length) (spafe framing)."""
    win_length = int(0.025 * sr) if win_length is None else int(win_length)
    hop_length = int(0.010 * sr) if hop_length is None else int(hop_length)
    if center:
        pw = [(0, 0)] * (y.ndim - 1) + [(win_length // 2, win_length // 2)]
        y = np.pad(y, pw)
    if y.shape[-1] < win_length:
        raise ValueError(f"clip of {y.shape[-1]} samples is shorter than one frame "
                         f"(win_length={win_length}); use center=True for one padded frame")
    return _frame_rows(y, win_length, hop_length), win_length


def _preemph(y: np.ndarray, coef: float) -> np.ndarray:
    if not coef:
        return y
    out = y.copy()
    out[..., 1:] -= np.float32(coef) * y[..., :-1]
    return out


def _speech_window(window, win_length):
    if window is None:  # spafe: numpy's symmetric Hamming over the frame
        return np.hamming(win_length).astype(np.float32)
    return fft_window(window, win_length, win_length).astype(np.float32)


def speech_power(
    y: np.ndarray | None,
    sr: float,
    S: np.ndarray | None,
    n_fft: int,
    hop_length: int | None,
    win_length: int | None,
    window: WindowSpec | None,
    center: bool,
    pre_emphasis: float,
) -> np.ndarray:
    """``|FFT|^2 / n_fft`` of pre-emphasised, windowed frames, ``(..., 1 + n_fft//2, T)``.

    From ``y``: spafe's front end (pre-emphasis ``y[n] - c y[n-1]``, frames of
    ``win_length`` (25 ms) every ``hop_length`` (10 ms), symmetric Hamming, FFT zero-padded
    to ``n_fft``; the trailing partial frame is dropped unless ``center``). From ``S`` (an
    unscaled power spectrogram such as the extractor's shared STFT): pre-emphasis is applied
    as the filter's power response, which equals time-domain pre-emphasis up to the
    window's edge effects.
    """
    if S is not None:
        P = np.asarray(S, np.float32)
        n_fft = 2 * (P.shape[-2] - 1)
        if pre_emphasis:
            P = P * preemphasis_response(n_fft, pre_emphasis)[:, None]
        return P * np.float32(1.0 / n_fft)
    if y is None:
        raise ValueError("either y or S must be given")
    y = _preemph(as_audio(y), pre_emphasis)
    rows, wl = _speech_frames(y, sr, win_length, hop_length, center)
    if wl > n_fft:
        raise ValueError(f"win_length={wl} must be <= n_fft={n_fft}")
    X = scipy.fft.rfft(rows * _speech_window(window, wl), n=n_fft, axis=-1)
    P = X.real**2 + X.imag**2
    return np.swapaxes(P, -1, -2) * np.float32(1.0 / n_fft)


def _dct_rows(n_out: int, x: np.ndarray) -> np.ndarray:
    if n_out > x.shape[-2]:
        raise ValueError(f"number of coefficients ({n_out}) must be <= bands ({x.shape[-2]})")
    return np.matmul(dct_matrix(n_out, x.shape[-2]), x.astype(np.float32, copy=False))


def gfcc(
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_gfcc: int = 13,
    n_bands: int = 24,
    fmin: float = 0.0,
    fmax: float | None = None,
    n_fft: int = 512,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec | None = None,
    center: bool = False,
    pre_emphasis: float = 0.97,
) -> np.ndarray:
    """Gammatone frequency cepstral coefficients, float32 ``(..., n_gfcc, n_frames)``.

    Reference: ``spafe.features.gfcc.gfcc`` at its defaults (16 kHz, 24 ERB-spaced gammatone
    filters, 25 ms / 10 ms symmetric-Hamming frames, ``n_fft=512``, pre-emphasis 0.97,
    13 coefficients): DCT-II (ortho) of the **cube root** of the filter-bank energies of
    ``|FFT|^2 / n_fft`` (spafe and Shao & Wang use cube-root compression, not a log), so
    silence gives exact zeros. ``S``: an unscaled power spectrogram (see
    :func:`speech_power`). ``hop_length``/``win_length`` default to 10 ms / 25 ms.

    Examples
    --------
    >>> gfcc(np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y, sr, S, n_fft, hop_length, win_length, window, center, pre_emphasis)
    n_fft = 2 * (P.shape[-2] - 1)
    E = np.matmul(gammatone_filterbank(sr, n_fft, n_bands, fmin, fmax), P)
    return _dct_rows(n_gfcc, np.cbrt(E))


def equal_loudness(f: np.ndarray) -> np.ndarray:
    """Hermansky's (1990) equal-loudness weight ``E(w)`` at frequencies ``f`` (Hz), float64.

    ``E(w) = (w^2 + 56.8e6) w^4 / ((w^2 + 6.3e6)^2 (w^2 + 0.38e9))`` with ``w = 2 pi f``
    (J. Acoust. Soc. Am. 87(4), eq. 5), a function of *frequency*.
    """
    w2 = (2 * np.pi * np.asarray(f, np.float64)) ** 2
    return (w2 + 56.8e6) * w2**2 / ((w2 + 6.3e6) ** 2 * (w2 + 0.38e9))


def bfcc(
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_bfcc: int = 13,
    n_bands: int = 26,
    fmin: float = 0.0,
    fmax: float | None = None,
    n_fft: int = 512,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec | None = None,
    center: bool = False,
    pre_emphasis: float = 0.97,
    amin: float = 1e-10,
) -> np.ndarray:
    """Bark frequency cepstral coefficients, float32 ``(..., n_bfcc, n_frames)``.

    Front end and Bark filter bank as ``spafe.features.bfcc.bfcc`` (26 filters, 16 kHz
    defaults, same framing as :func:`gfcc`); then PLP's perceptual steps as published
    (Hermansky 1990): each band energy ``B_j`` is weighted by the equal-loudness curve at the
    band's **centre frequency** and compressed by the intensity-loudness power law,
    ``phi_j = (E(f_j) B_j)^(1/3)``; the result is ``DCT-II(log(max(phi, amin)))``.

    Differs from spafe, which evaluates its loudness polynomial at the filter *energies*
    instead of frequencies (so a gain change alters c1, c2, ...): here a gain change only
    moves c0. The lowest band (centred at 0 Hz, where ``E = 0``) sits at the ``amin`` floor.

    Examples
    --------
    >>> bfcc(np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y, sr, S, n_fft, hop_length, win_length, window, center, pre_emphasis)
    n_fft = 2 * (P.shape[-2] - 1)
    w = bark_filterbank(sr, n_fft, n_bands, fmin, fmax) * equal_loudness(
        bark_centers(sr, n_bands, fmin, fmax)).astype(np.float32)[:, None]
    phi = np.cbrt(np.matmul(w, P))
    return _dct_rows(n_bfcc, np.log(np.maximum(phi, np.float32(amin))))


def _lpc_from_power(P: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    n_fft = 2 * (P.shape[-2] - 1)
    R = np.matmul(autocorr_from_power(n_fft, order), P.astype(np.float64))  # (..., p+1, T)
    return levinson(np.swapaxes(R, -1, -2), order)


def lpc(
    y: np.ndarray,
    sr: float = 16000,
    order: int = 12,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec | None = None,
    center: bool = False,
    pre_emphasis: float = 0.97,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame LPC by the autocorrelation method: ``(a, E)``.

    ``a``: float32 ``(..., order + 1, n_frames)`` with ``a[0] = 1`` (``A(z) = sum a_k
    z^-k``); ``E``: prediction-error energy ``(..., 1, n_frames)``. Frames as spafe's LPC
    (pre-emphasis, 25 ms every 10 ms, 16 kHz; its ``order=13`` means 13 coefficients, i.e.
    ``order=12`` here) but **windowed** (symmetric Hamming) before the autocorrelation, as
    the autocorrelation method requires (spafe uses unwindowed frames); Levinson-Durbin
    instead of a matrix inverse (see :mod:`audiopipe.features.lpc`).

    Examples
    --------
    >>> a, E = lpc(np.random.default_rng(0).standard_normal(16000), sr=16000)
    >>> a.shape, E.shape
    ((13, 98), (1, 98))
    """
    y = _preemph(as_audio(y), pre_emphasis)
    rows, wl = _speech_frames(y, sr, win_length, hop_length, center)
    r = autocorrelation(rows * _speech_window(window, wl), order)
    a, E = levinson(r, order)
    return (np.swapaxes(a, -1, -2).astype(np.float32),
            E[..., None, :].astype(np.float32))


def lpcc(
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_lpcc: int = 13,
    order: int = 12,
    n_fft: int = 512,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec | None = None,
    center: bool = False,
    pre_emphasis: float = 0.97,
) -> np.ndarray:
    """Linear-prediction cepstral coefficients, float32 ``(..., n_lpcc, n_frames)``.

    The cepstrum of the LPC model ``sqrt(E) / A(z)`` (:func:`lpc`, order 12) by the standard
    recursion (Rabiner & Juang 1993, eq. 3.83): ``c_0 = ln sqrt(E)``, ``c_m = -a_m - sum
    (k/m) c_k a_{m-k}``. spafe's ``lpcc`` uses a different (incorrect) recursion, so the
    tests check this against the real cepstrum of the model spectrum instead.
    From ``S`` (power spectrogram) the autocorrelation is its inverse DFT (circular; equal
    to the linear one for frames tapered to zero at the ends, as Hann frames are); silence
    gives ``c_0 = ln sqrt(tiny)``, finite.

    Examples
    --------
    >>> lpcc(np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    if S is not None:
        a, E = _lpc_from_power(speech_power(None, sr, S, 0, None, None, None, False,
                                            pre_emphasis), order)
    else:
        a, E = lpc(y, sr=sr, order=order, hop_length=hop_length, win_length=win_length,
                   window=window, center=center, pre_emphasis=pre_emphasis)
        a, E = np.swapaxes(a, -1, -2).astype(np.float64), E[..., 0, :].astype(np.float64)
    return np.swapaxes(lpc_to_cepstrum(a, E, n_lpcc), -1, -2).astype(np.float32)


def real_cepstrum(
    y: np.ndarray | None = None,
    S: np.ndarray | None = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    n_ceps: int | None = None,
    amin: float = 1e-10,
) -> np.ndarray:
    """Real cepstrum per frame, ``Re(IFFT(log max(|FFT x|, amin)))``, float32.

    As MATLAB's ``rceps`` applied to each STFT frame (librosa framing), with an explicit
    floor ``amin`` on the magnitude so silence gives finite values. Returns quefrencies
    ``0 .. n_ceps - 1`` (default ``1 + n_fft // 2``, all distinct ones: the real cepstrum
    is even), shape ``(..., n_ceps, n_frames)``. ``S``: a magnitude spectrogram.
    A pulse train of period P samples has cepstral peaks at quefrency P.

    Examples
    --------
    >>> real_cepstrum(np.zeros(4096, np.float32), n_ceps=30).shape
    (30, 9)
    """
    from .spectral import spectrogram

    M = spectrogram(y=y, S=S, n_fft=n_fft, hop_length=hop_length, power=1.0,
                    win_length=win_length, window=window, center=center)
    n_fft = 2 * (M.shape[-2] - 1)
    n_ceps = n_fft // 2 + 1 if n_ceps is None else int(n_ceps)
    logm = np.log(np.maximum(M, np.float32(amin)))
    c = scipy.fft.irfft(logm, n=n_fft, axis=-2)[..., :n_ceps, :]
    return c.astype(np.float32, copy=False)


def pncc(
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_pncc: int = 13,
    n_bands: int = 40,
    fmin: float = 200.0,
    fmax: float | None = None,
    n_fft: int = 512,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec | None = None,
    center: bool = False,
    pre_emphasis: float = 0.97,
) -> np.ndarray:
    """Power-normalized cepstral coefficients, float32 ``(..., n_pncc, n_frames)``.

    Kim & Stern (2016) as described in :mod:`audiopipe.features.pncc`: 40 gammatone
    channels from 200 Hz to ``min(8 kHz, sr/2)`` (the paper's), on spafe's front end
    (:func:`speech_power`), medium-time noise suppression, temporal masking, weight
    smoothing, mean power normalisation, power law 1/15 and DCT-II (ortho). Finite on
    silence (spafe 0.3.3 returns NaN there), and invariant to the input gain.

    Examples
    --------
    >>> pncc(np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y, sr, S, n_fft, hop_length, win_length, window, center, pre_emphasis)
    n_fft = 2 * (P.shape[-2] - 1)
    fmax = min(8000.0, sr / 2) if fmax is None else fmax
    G = np.matmul(gammatone_filterbank(sr, n_fft, n_bands, fmin, fmax), P)
    return _dct_rows(n_pncc, pncc_from_power(G))

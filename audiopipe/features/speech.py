"""The speech front end (spafe's conventions) and the GFCC and BFCC built on it: functions
and recipe features. LPC/LPCC (:mod:`~audiopipe.features.lpc`) and PNCC
(:mod:`~audiopipe.features.pncc`) use the same front end.

:func:`speech_power` takes audio ``y`` (pre-emphasis, 25 ms symmetric-Hamming frames every
10 ms, FFT zero-padded to ``n_fft``: :class:`SpeechArgs`) or an unscaled power spectrogram
``S`` (the recipe's shared STFT, pre-emphasis applied as the filter's power response).
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import numpy as np
import scipy.fft

from ._core import WindowSpec, _frame_rows, as_audio, fft_window, keywords
from .extractor import Extractor
from .filters import bark_centers, bark_filterbank, dct_matrix, gammatone_filterbank
from .registry import Param, feature, nonneg_num, optional, pos_int, pos_num

__all__ = ["gfcc", "bfcc", "SpeechArgs", "speech_args", "speech_power", "speech_frames", "preemphasis",
           "speech_window", "preemphasis_response", "equal_loudness", "dct_rows",
           "SPEECH_PARAMS", "speech_weight", "speech_fmax", "n_le_bands"]


class SpeechArgs(TypedDict, total=False):
    """Keywords of the speech front end (``**speech`` of gfcc, bfcc, lpcc, pncc)."""

    n_fft: int  # 512
    hop_length: int | None  # None: 10 ms
    win_length: int | None  # None: 25 ms
    window: WindowSpec | None  # None: numpy's symmetric Hamming (spafe)
    center: bool  # False: the trailing partial frame is dropped
    pre_emphasis: float  # 0.97


SPEECH_DEFAULTS = {"n_fft": 512, "hop_length": None, "win_length": None, "window": None,
                   "center": False, "pre_emphasis": 0.97}


def speech_args(speech: dict, func: str) -> dict:
    """All front-end keywords: :data:`SPEECH_DEFAULTS` updated with ``speech``; unknown names
    raise ``TypeError`` naming ``func``."""
    return keywords(speech, SPEECH_DEFAULTS, func, "speech front end's")


def preemphasis_response(n_fft: int, coef: float) -> np.ndarray:
    """Power response ``|1 - coef e^{-jw}|^2`` of the pre-emphasis filter on the rfft grid."""
    w = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    return (1 + coef * coef - 2 * coef * np.cos(w)).astype(np.float32)


def speech_frames(y, sr, win_length, hop_length, center):
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


def preemphasis(y: np.ndarray, coef: float) -> np.ndarray:
    """``y[n] - coef y[n-1]`` (the first sample unchanged); ``y`` itself when ``coef`` is 0."""
    if not coef:
        return y
    out = y.copy()
    out[..., 1:] -= np.float32(coef) * y[..., :-1]
    return out


def speech_window(window, win_length):
    """The analysis window: spafe's symmetric Hamming for ``None``, else librosa's."""
    if window is None:  # spafe: numpy's symmetric Hamming over the frame
        return np.hamming(win_length).astype(np.float32)
    return fft_window(window, win_length, win_length).astype(np.float32)


def speech_power(*, y: np.ndarray | None, sr: float, S: np.ndarray | None,
                 speech: dict, func: str = "speech_power") -> np.ndarray:
    """``|FFT|^2 / n_fft`` of pre-emphasised, windowed frames, ``(..., 1 + n_fft//2, T)``.

    From ``y``: spafe's front end (pre-emphasis ``y[n] - c y[n-1]``, frames of
    ``win_length`` (25 ms) every ``hop_length`` (10 ms), symmetric Hamming, FFT zero-padded
    to ``n_fft``; the trailing partial frame is dropped unless ``center``). From ``S`` (an
    unscaled power spectrogram such as the extractor's shared STFT): pre-emphasis is applied
    as the filter's power response, which equals time-domain pre-emphasis up to the
    window's edge effects. ``speech``: :class:`SpeechArgs` (see :func:`speech_args`).
    """
    a = speech_args(speech, func)
    if S is not None:
        P = np.asarray(S, np.float32)
        n_fft = 2 * (P.shape[-2] - 1)
        if a["pre_emphasis"]:
            P = P * preemphasis_response(n_fft, a["pre_emphasis"])[:, None]
        return P * np.float32(1.0 / n_fft)
    if y is None:
        raise ValueError("either y or S must be given")
    n_fft = a["n_fft"]
    y = preemphasis(as_audio(y), a["pre_emphasis"])
    rows, wl = speech_frames(y, sr, a["win_length"], a["hop_length"], a["center"])
    if wl > n_fft:
        raise ValueError(f"win_length={wl} must be <= n_fft={n_fft}")
    X = scipy.fft.rfft(rows * speech_window(a["window"], wl), n=n_fft, axis=-1)
    P = X.real**2 + X.imag**2
    return np.swapaxes(P, -1, -2) * np.float32(1.0 / n_fft)


def dct_rows(n_out: int, x: np.ndarray) -> np.ndarray:
    """The first ``n_out`` orthonormal DCT-II coefficients of ``x`` along its rows, float32."""
    if n_out > x.shape[-2]:
        raise ValueError(f"number of coefficients ({n_out}) must be <= bands ({x.shape[-2]})")
    return np.matmul(dct_matrix(n_out, x.shape[-2]), x.astype(np.float32, copy=False))


# --------------------------------------------------------------------------------------
# the front end in recipes: the shared STFT's power, weighted

SPEECH_PARAMS = {
    "fmin": Param(0.0, nonneg_num, "lowest filter frequency, Hz"),
    "fmax": Param(None, optional(pos_num), "highest filter frequency, Hz (default sr/2)"),
    "pre_emphasis": Param(0.97, nonneg_num, "pre-emphasis coefficient (0 = none), applied "
                          "as the filter's power response on the shared STFT"),
}


def speech_weight(ex: Extractor, coef: float) -> np.ndarray:
    """Per-bin weight turning the shared power spectrum into :func:`speech_power`'s."""
    w = preemphasis_response(ex.n_fft, coef) if coef else np.ones(ex.n_fft // 2 + 1, np.float32)
    return w * np.float32(1.0 / ex.n_fft)


def speech_fmax(p: dict, ex: Extractor, default: float | None = None) -> float:
    """The recipe's ``fmax``, or ``default`` (``sr / 2`` when None)."""
    if p["fmax"] is not None:
        return float(p["fmax"])
    return float(default if default is not None else ex.sr / 2)


def n_le_bands(n_key: str):
    """A cross-check: coefficients ``n_key`` at most ``n_bands``."""
    def check(p: dict) -> str | None:
        if p[n_key] > p["n_bands"]:
            return f"{n_key}: {p[n_key]} is more than n_bands ({p['n_bands']})"
        return None
    return check


# --------------------------------------------------------------------------------------
# GFCC and BFCC

@feature("gfcc", dims="n_gfcc", cross_check=n_le_bands("n_gfcc"), params={
    "n_gfcc": Param(13, pos_int, "coefficients"),
    "n_bands": Param(24, pos_int, "gammatone filters"), **SPEECH_PARAMS},
    doc="Gammatone cepstral coefficients (spafe gfcc: cube-root compression, DCT-II ortho) "
        "from the shared power spectrum / n_fft.")
def _gfcc(p: dict, ex: Extractor):
    fmax = speech_fmax(p, ex)
    fb = gammatone_filterbank(sr=ex.sr, n_fft=ex.n_fft, n_bands=p["n_bands"], fmin=p["fmin"],
                              fmax=fmax)
    key = ex.register_bank(("gfcc", p["n_bands"], p["fmin"], fmax, p["pre_emphasis"]),
                           fb * speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_gfcc"], p["n_bands"])
    return lambda b: D @ np.cbrt(b.mel(key))


def gfcc(
    *,
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_gfcc: int = 13,
    n_bands: int = 24,
    fmin: float = 0.0,
    fmax: float | None = None,
    **speech: Unpack[SpeechArgs],
) -> np.ndarray:
    """Gammatone frequency cepstral coefficients, float32 ``(..., n_gfcc, n_frames)``.

    Reference: ``spafe.features.gfcc.gfcc`` at its defaults (16 kHz, 24 ERB-spaced gammatone
    filters, 25 ms / 10 ms symmetric-Hamming frames, ``n_fft=512``, pre-emphasis 0.97,
    13 coefficients): DCT-II (ortho) of the **cube root** of the filter-bank energies of
    ``|FFT|^2 / n_fft`` (spafe and Shao & Wang use cube-root compression, not a log), so
    silence gives exact zeros. ``S``: an unscaled power spectrogram (see
    :func:`speech_power`). ``**speech``: the front end's keywords (:class:`SpeechArgs`;
    ``hop_length``/``win_length`` default to 10 ms / 25 ms).

    Examples
    --------
    >>> gfcc(y=np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y=y, sr=sr, S=S, speech=speech, func="gfcc")
    n_fft = 2 * (P.shape[-2] - 1)
    E = np.matmul(gammatone_filterbank(sr=sr, n_fft=n_fft, n_bands=n_bands, fmin=fmin,
                                       fmax=fmax), P)
    return dct_rows(n_gfcc, np.cbrt(E))


def equal_loudness(f: np.ndarray) -> np.ndarray:
    """Hermansky's (1990) equal-loudness weight ``E(w)`` at frequencies ``f`` (Hz), float64.

    ``E(w) = (w^2 + 56.8e6) w^4 / ((w^2 + 6.3e6)^2 (w^2 + 0.38e9))`` with ``w = 2 pi f``
    (J. Acoust. Soc. Am. 87(4), eq. 5), a function of *frequency*.
    """
    w2 = (2 * np.pi * np.asarray(f, np.float64)) ** 2
    return (w2 + 56.8e6) * w2**2 / ((w2 + 6.3e6) ** 2 * (w2 + 0.38e9))


@feature("bfcc", dims="n_bfcc", cross_check=n_le_bands("n_bfcc"), params={
    "n_bfcc": Param(13, pos_int, "coefficients"),
    "n_bands": Param(26, pos_int, "Bark filters"),
    "amin": Param(1e-10, pos_num, "floor before the log"), **SPEECH_PARAMS},
    doc="Bark cepstral coefficients: spafe's Bark bank, PLP equal-loudness at band centres "
        "and cube-root power law (Hermansky 1990), log, DCT-II ortho.")
def _bfcc(p: dict, ex: Extractor):
    fmax = speech_fmax(p, ex)
    w = _bark_weights(ex.sr, ex.n_fft, p["n_bands"], p["fmin"], fmax)
    key = ex.register_bank(("bfcc", p["n_bands"], p["fmin"], fmax, p["pre_emphasis"]),
                           w * speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_bfcc"], p["n_bands"])
    amin = np.float32(p["amin"])
    return lambda b: D @ np.log(np.maximum(np.cbrt(b.mel(key)), amin))


def _bark_weights(sr: float, n_fft: int, n_bands: int, fmin: float, fmax: float | None
                  ) -> np.ndarray:
    """spafe's Bark bank, each band weighted by the equal-loudness curve at its centre."""
    fb = bark_filterbank(sr=sr, n_fft=n_fft, n_bands=n_bands, fmin=fmin, fmax=fmax)
    centers = bark_centers(sr=sr, n_bands=n_bands, fmin=fmin, fmax=fmax)
    return fb * equal_loudness(centers).astype(np.float32)[:, None]


def bfcc(
    *,
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_bfcc: int = 13,
    n_bands: int = 26,
    fmin: float = 0.0,
    fmax: float | None = None,
    amin: float = 1e-10,
    **speech: Unpack[SpeechArgs],
) -> np.ndarray:
    """Bark frequency cepstral coefficients, float32 ``(..., n_bfcc, n_frames)``.

    Front end and Bark filter bank as ``spafe.features.bfcc.bfcc`` (26 filters, 16 kHz
    defaults, same front end and keywords as :func:`gfcc`); then PLP's perceptual steps as published
    (Hermansky 1990): each band energy ``B_j`` is weighted by the equal-loudness curve at the
    band's **centre frequency** and compressed by the intensity-loudness power law,
    ``phi_j = (E(f_j) B_j)^(1/3)``; the result is ``DCT-II(log(max(phi, amin)))``.

    Differs from spafe, which evaluates its loudness polynomial at the filter *energies*
    instead of frequencies (so a gain change alters c1, c2, ...): here a gain change only
    moves c0. The lowest band (centred at 0 Hz, where ``E = 0``) sits at the ``amin`` floor.

    Examples
    --------
    >>> bfcc(y=np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y=y, sr=sr, S=S, speech=speech, func="bfcc")
    w = _bark_weights(sr, 2 * (P.shape[-2] - 1), n_bands, fmin, fmax)
    phi = np.cbrt(np.matmul(w, P))
    return dct_rows(n_bfcc, np.log(np.maximum(phi, np.float32(amin))))

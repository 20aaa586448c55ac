"""Linear prediction: autocorrelation, Levinson-Durbin and the LPC -> cepstrum recursion.

Textbook definitions (Rabiner & Schafer, *Digital Processing of Speech Signals*, 1978,
ch. 8; Rabiner & Juang 1993, sec. 3.3): the autocorrelation method on *windowed* frames,
Levinson-Durbin for ``A(z) = 1 + a_1 z^-1 + ... + a_p z^-p`` and prediction-error energy
``E``, and the cepstrum of the all-pole model ``H(z) = G / A(z)`` with ``G = sqrt(E)``::

    c_0 = ln G
    c_m = -a_m - sum_{k=1}^{m-1} (k/m) c_k a_{m-k}        1 <= m <= p
    c_m =      - sum_{k=m-p}^{m-1} (k/m) c_k a_{m-k}      m > p

spafe 0.3.3 differs (its LPC uses unwindowed frames and inverts the Toeplitz matrix; its
prediction error is read from the wrong lags and its cepstrum recursion multiplies by
``c_m`` instead of ``c_k``), so these are tested against the model spectrum instead.
Everything is vectorised over frames: the loops run over the order ``p`` only. The public
:func:`lpc` / :func:`lpcc` and their recipe features use the speech front end
(:mod:`audiopipe.features.speech`).
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import scipy.fft

from ._core import WindowSpec, as_audio
from .block import Block
from .extractor import Extractor
from .registry import Param, feature, pos_int
from .speech import (
    SPEECH_PARAMS,
    SpeechArgs,
    preemphasis,
    speech_args,
    speech_frames,
    speech_power,
    speech_weight,
    speech_window,
)

__all__ = ["lpc", "lpcc", "autocorrelation", "levinson", "lpc_to_cepstrum",
           "autocorr_from_power"]


def autocorrelation(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """Linear autocorrelation ``r_k = sum_n x_n x_{n+k}``, k = 0..max_lag, of frame rows.

    ``frames`` is ``(..., n_frames, frame_length)``; returns ``(..., n_frames, max_lag + 1)``
    float64 (via a zero-padded FFT, so no circular wrap-around).
    """
    L = frames.shape[-1]
    n = scipy.fft.next_fast_len(L + max_lag, real=True)
    X = scipy.fft.rfft(frames.astype(np.float64), n=n, axis=-1)
    return scipy.fft.irfft(X.real**2 + X.imag**2, n=n, axis=-1)[..., : max_lag + 1]


def autocorr_from_power(n_fft: int, max_lag: int) -> np.ndarray:
    """Matrix ``(max_lag + 1, 1 + n_fft//2)`` mapping a power spectrum to its (circular)
    autocorrelation lags 0..max_lag: the inverse real DFT of ``|X|^2`` restricted to those lags.

    For frames shorter than ``n_fft - max_lag`` (or tapered to ~0 at the ends, as Hann
    frames are) the circular and linear autocorrelations agree.
    """
    F = n_fft // 2 + 1
    f = np.arange(F)
    w = np.full(F, 2.0)
    w[0] = 1.0
    if n_fft % 2 == 0:
        w[-1] = 1.0
    k = np.arange(max_lag + 1)[:, None]
    return (w * np.cos(2 * np.pi * k * f / n_fft) / n_fft).astype(np.float64)


def levinson(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Levinson-Durbin recursion on autocorrelations ``r`` ``(..., order + 1)``.

    Returns ``a`` ``(..., order + 1)`` with ``a[..., 0] = 1`` and the prediction-error
    energy ``E`` ``(...)``. Frames with ``r_0`` at or below float64 ``tiny`` (silence) give
    ``a = [1, 0, ..., 0]`` and ``E = tiny`` instead of dividing by zero; each step's error is
    kept positive so the filter stays minimum phase.

    Examples
    --------
    >>> a, E = levinson(np.array([1.0, 0.9, 0.81]), 2)   # AR(1) with pole 0.9
    >>> np.round(a, 6) + 0.0, round(float(E), 6)
    (array([ 1. , -0.9,  0. ]), 0.19)
    """
    r = np.asarray(r, dtype=np.float64)
    lead = r.shape[:-1]
    tiny = np.finfo(np.float64).tiny
    silent = r[..., 0] <= tiny * 1e3
    r = np.where(silent[..., None], np.eye(1, order + 1)[0] * tiny * 1e3, r)
    a = np.zeros(lead + (order + 1,))
    a[..., 0] = 1.0
    E = r[..., 0].copy()
    for i in range(1, order + 1):
        acc = r[..., i] + np.einsum("...j,...j->...", a[..., 1:i], r[..., i - 1 : 0 : -1])
        k = -acc / E
        a_prev = a[..., 1:i].copy()
        a[..., 1:i] = a_prev + k[..., None] * a_prev[..., ::-1]
        a[..., i] = k
        E = np.maximum(E * (1.0 - k * k), E * 1e-12)
    return a, E


def lpc_to_cepstrum(a: np.ndarray, E: np.ndarray, n_ceps: int) -> np.ndarray:
    """Cepstrum ``(..., n_ceps)`` of ``sqrt(E) / A(z)`` by the standard recursion (see module)."""
    a = np.asarray(a, dtype=np.float64)
    p = a.shape[-1] - 1
    c = np.zeros(a.shape[:-1] + (n_ceps,))
    c[..., 0] = 0.5 * np.log(np.maximum(E, np.finfo(np.float64).tiny))
    for m in range(1, n_ceps):
        acc = -a[..., m] if m <= p else np.zeros(a.shape[:-1])
        for k in range(max(1, m - p), m):
            acc = acc - (k / m) * c[..., k] * a[..., m - k]
        c[..., m] = acc
    return c


def _lpc_from_power(P: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    n_fft = 2 * (P.shape[-2] - 1)
    R = np.matmul(autocorr_from_power(n_fft, order), P.astype(np.float64))  # (..., p+1, T)
    return levinson(np.swapaxes(R, -1, -2), order)


def lpc(
    y: np.ndarray,
    *,
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
    y = preemphasis(as_audio(y), pre_emphasis)
    rows, wl = speech_frames(y, sr, win_length, hop_length, center)
    r = autocorrelation(rows * speech_window(window, wl), order)
    a, E = levinson(r, order)
    return (np.swapaxes(a, -1, -2).astype(np.float32),
            E[..., None, :].astype(np.float32))


def lpcc(
    *,
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_lpcc: int = 13,
    order: int = 12,
    **speech: Unpack[SpeechArgs],
) -> np.ndarray:
    """Linear-prediction cepstral coefficients, float32 ``(..., n_lpcc, n_frames)``.

    The cepstrum of the LPC model ``sqrt(E) / A(z)`` (:func:`lpc`, order 12) by the standard
    recursion (Rabiner & Juang 1993, eq. 3.83): ``c_0 = ln sqrt(E)``, ``c_m = -a_m - sum
    (k/m) c_k a_{m-k}``. spafe's ``lpcc`` uses a different (incorrect) recursion, so the
    tests check this against the real cepstrum of the model spectrum instead.
    From ``S`` (power spectrogram) the autocorrelation is its inverse DFT (circular; equal
    to the linear one for frames tapered to zero at the ends, as Hann frames are); silence
    gives ``c_0 = ln sqrt(tiny)``, finite. ``**speech``: the front end's keywords
    (:class:`~audiopipe.features.speech.SpeechArgs`; ``n_fft`` only matters for ``S``).

    Examples
    --------
    >>> lpcc(y=np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    a = speech_args(speech, "lpcc")
    if S is not None:
        A, E = _lpc_from_power(speech_power(y=None, sr=sr, S=S, speech={
            "pre_emphasis": a["pre_emphasis"]}), order)
    else:
        if y is None:
            raise ValueError("either y or S must be given")
        A, E = lpc(y, sr=sr, order=order, hop_length=a["hop_length"],
                   win_length=a["win_length"], window=a["window"], center=a["center"],
                   pre_emphasis=a["pre_emphasis"])
        A, E = np.swapaxes(A, -1, -2).astype(np.float64), E[..., 0, :].astype(np.float64)
    return np.swapaxes(lpc_to_cepstrum(A, E, n_lpcc), -1, -2).astype(np.float32)


# --------------------------------------------------------------------------------------
# recipe features: LPC of the shared STFT's power (its inverse DFT is the autocorrelation)

LPC_PARAMS = {
    "order": Param(12, pos_int, "prediction order p"),
    "pre_emphasis": SPEECH_PARAMS["pre_emphasis"],
}


def _lpc_of(ex: Extractor, p: dict):
    """``block -> (a, E)``, computed once per block for lpc and lpcc with the same params."""
    order = p["order"]
    R = autocorr_from_power(ex.n_fft, order) * speech_weight(ex, p["pre_emphasis"])[None, :]

    def lpc_of(b: Block):
        return b.get(("lpc", order, p["pre_emphasis"]),
                     lambda: levinson((R @ b.power.astype(np.float64)).T, order))

    return lpc_of


@feature("lpc", dims=lambda p, sr, n_fft: p["order"] + 1, params=dict(LPC_PARAMS),
         doc="LPC polynomial [1, a_1..a_p] per frame: Levinson-Durbin on the autocorrelation "
             "of the windowed shared frames (inverse DFT of the power spectrum).")
def _lpc(p: dict, ex: Extractor):
    lpc_of = _lpc_of(ex, p)
    return lambda b: lpc_of(b)[0].T.astype(np.float32)


@feature("lpcc", dims="n_lpcc",
         params={"n_lpcc": Param(13, pos_int, "coefficients c_0..c_{n-1}"), **LPC_PARAMS},
         doc="LPC cepstrum by the standard recursion (Rabiner & Juang), c_0 = ln sqrt(E).")
def _lpcc(p: dict, ex: Extractor):
    lpc_of, n = _lpc_of(ex, p), p["n_lpcc"]
    return lambda b: lpc_to_cepstrum(*lpc_of(b), n).T.astype(np.float32)

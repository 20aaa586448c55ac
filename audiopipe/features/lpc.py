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
Everything is vectorised over frames: the loops run over the order ``p`` only.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["autocorrelation", "levinson", "lpc_to_cepstrum", "autocorr_from_power"]


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

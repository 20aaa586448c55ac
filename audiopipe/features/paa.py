"""pyAudioAnalysis' spectral features on its short-term framing: spectral entropy and
spectral flux (functions, kernels and recipe features).

pyAudioAnalysis frames the signal in 50 ms rectangular frames every 25 ms, uncentred, and
takes ``|FFT| / (n_fft / 2)`` without the Nyquist bin; the functions default to that
framing, the recipe features use the recipe's shared STFT.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import numpy as np

from ._core import WindowSpec, keywords
from .block import Computer
from .extractor import Extractor
from .frontend import spectrogram_of
from .registry import Param, feature, pos_int

__all__ = ["spectral_entropy", "spectral_flux", "PaaArgs", "paa_spectrum", "entropy_of_subbands",
           "flux_from_mag"]


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


class PaaArgs(TypedDict, total=False):
    """pyAudioAnalysis' short-term framing (``**frames`` of the functions here)."""

    n_fft: int | None  # None: 50 ms at sr
    hop_length: int | None  # None: 25 ms at sr
    window: WindowSpec  # "boxcar" (rectangular)
    center: bool  # False


PAA_DEFAULTS = {"n_fft": None, "hop_length": None, "window": "boxcar", "center": False}


def paa_spectrum(*, y: np.ndarray | None, sr: float, S: np.ndarray | None, frames: dict,
                 func: str) -> np.ndarray:
    """pyAudioAnalysis' ``|FFT| / (n_fft / 2)`` without the Nyquist bin,
    ``(..., n_fft//2, T)``, from ``y`` on its framing (:class:`PaaArgs`; unknown names raise
    ``TypeError`` naming ``func``) or from a magnitude spectrogram ``S``."""
    a = keywords(frames, PAA_DEFAULTS, func, "framing")
    if S is not None:
        M = np.asarray(S, np.float32)
        n = 2 * (M.shape[-2] - 1)
        return M[..., : n // 2, :] * np.float32(2.0 / n)
    n_fft = int(0.050 * sr) if a["n_fft"] is None else int(a["n_fft"])
    hop_length = int(0.025 * sr) if a["hop_length"] is None else int(a["hop_length"])
    M, _ = spectrogram_of(y=y, S=None, power=1.0, stft={
        "n_fft": n_fft, "hop_length": hop_length, "window": a["window"], "center": a["center"]})
    return M[..., : n_fft // 2, :] * np.float32(1.0 / (n_fft // 2))


def _shared_spectrum(ex: Extractor):
    """The recipe's shared |X| in pyAudioAnalysis' scaling, (n_fft//2, k) per block."""
    half, scale = ex.n_fft // 2, np.float32(2.0 / ex.n_fft)
    return lambda b: b.mag[:half] * scale


@feature("spectral_entropy", dims=1,
         params={"n_short_blocks": Param(10, pos_int, "sub-bands")},
         doc="Spectral entropy of n_short_blocks sub-bands (pyAudioAnalysis), on the shared "
             "STFT.")
def _entropy(p: dict, ex: Extractor):
    nb, spec = p["n_short_blocks"], _shared_spectrum(ex)

    def fn(b):
        M = spec(b)
        return entropy_of_subbands(M * M, nb)

    return fn


def spectral_entropy(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_short_blocks: int = 10,
    **frames: Unpack[PaaArgs],
) -> np.ndarray:
    """Spectral entropy, ``(..., 1, n_frames)``; pyAudioAnalysis ``spectral_entropy``.

    The magnitude spectrum (bins below Nyquist, ``|FFT| / (n_fft/2)``) is split into
    ``n_short_blocks`` equal sub-bands; with ``s_j`` = sub-band energy (sum of squared
    magnitudes) over the frame's total, the entropy is ``-sum s_j log2(s_j + eps)``,
    ``eps = 1e-8``. Defaults are pyAudioAnalysis' short-term framing: rectangular frames of
    50 ms every 25 ms (``n_fft``/``hop_length`` default to those at ``sr``), uncentred
    (``**frames``: :class:`PaaArgs`).
    Range ``[0, log2(n_short_blocks)]``: 0 for a pure tone, high for noise; silence gives 0.
    pyAudioAnalysis also normalises the whole file (mean removed, divided by its maximum)
    before framing; that cancels here (the entropy is scale-free) except for a DC offset.

    Examples
    --------
    >>> e = spectral_entropy(y=np.random.default_rng(0).standard_normal(22050), sr=22050)
    >>> bool(e.mean() > 3.0)
    True
    """
    M = paa_spectrum(y=y, sr=sr, S=S, frames=frames, func="spectral_entropy")
    E = M * M
    return entropy_of_subbands(E, n_short_blocks)


@feature("spectral_flux", dims=1,
         doc="Spectral flux of unit-sum magnitude spectra (pyAudioAnalysis); 0 on the first "
             "frame.")
def _flux(p: dict, ex: Extractor) -> Computer:
    spec = _shared_spectrum(ex)

    def step(b, st: dict, g) -> dict:
        f, st["prev"] = flux_from_mag(spec(b), st.get("prev"))
        return {"spectral_flux": f}

    return Computer(step)


def spectral_flux(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    **frames: Unpack[PaaArgs],
) -> np.ndarray:
    """Spectral flux, ``(..., 1, n_frames)``; pyAudioAnalysis ``spectral_flux``.

    ``sum_f (X_t(f)/sum X_t - X_{t-1}(f)/sum X_{t-1})^2`` of consecutive magnitude spectra,
    each normalised to unit sum (``sum(X + eps)``, ``eps = 1e-8``); the first frame's flux
    is 0 (pyAudioAnalysis compares it with itself). Framing and spectrum as
    :func:`spectral_entropy` (50 ms rectangular frames every 25 ms). librosa has no spectral
    flux; its ``onset_strength`` is a log-mel flux (:func:`audiopipe.features.onset_strength`).

    Examples
    --------
    >>> float(spectral_flux(y=np.zeros(22050, np.float32), sr=22050).max())
    0.0
    """
    M = paa_spectrum(y=y, sr=sr, S=S, frames=frames, func="spectral_flux")
    return flux_from_mag(M, None)[0]

"""The one spectrogram front end of the spectral feature functions (librosa's ``_spectrogram``).

A spectral feature function takes audio ``y`` or a precomputed spectrogram ``S``, and the
STFT parameters as keywords (:class:`StftArgs`: ``n_fft``, ``hop_length``, ``win_length``,
``window``, ``center``, ``pad_mode``, librosa's names and defaults, defined here only).

:func:`spectral` is the whole dispatch: from ``y``, a call the recipe extractor can express
(string window, zero padding, integer ``sr``) is computed by a cached
:class:`~audiopipe.features.extractor.Extractor` for that one-feature recipe (block-wise
window → FFT → power → banded banks, what the pipeline pays); anything else (a precomputed
``S``, a custom ``freq`` axis, a window array, other padding) goes through
:func:`spectrogram_of` (``S`` as given, or ``|stft(y)|**power``) and the feature's direct
kernel. Cached extractors are shared by all threads; they keep no per-call state.
"""

from __future__ import annotations

import functools
import json
import numbers
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
import scipy.fft

from ._core import BLOCK_FRAMES, WindowSpec, _frame_rows, as_audio, keywords, stft_input
from .extractor import Extractor

__all__ = ["StftArgs", "STFT_DEFAULTS", "stft_args", "spectrogram_of", "magnitude_T",
           "via_recipe", "spectral", "norm_name", "NOT_A_RECIPE_NORM"]


class StftArgs(TypedDict, total=False):
    """The STFT keywords every spectral feature function accepts (``**stft``)."""

    n_fft: int
    hop_length: int | None
    win_length: int | None
    window: WindowSpec
    center: bool
    pad_mode: str


#: librosa's defaults for the feature functions' STFT
STFT_DEFAULTS: dict[str, Any] = {"n_fft": 2048, "hop_length": 512, "win_length": None,
                                 "window": "hann", "center": True, "pad_mode": "constant"}


def stft_args(stft: dict[str, Any], func: str = "spectrogram") -> dict[str, Any]:
    """All STFT parameters: :data:`STFT_DEFAULTS` updated with ``stft``; unknown names raise
    ``TypeError`` naming ``func`` (a misspelt keyword is an error, not ignored)."""
    return keywords(stft, STFT_DEFAULTS, func, "STFT")


def spectrogram_of(*, y: np.ndarray | None, S: np.ndarray | None, power: float,
                   stft: dict[str, Any], func: str = "spectrogram") -> tuple[np.ndarray, int]:
    """``(S, n_fft)``: ``S`` as float32 when given (``n_fft = 2 (bins - 1)``), else
    ``|stft(y)| ** power`` with the given ``n_fft`` (librosa's ``_spectrogram``)."""
    a = stft_args(stft, func)
    if S is not None:
        S = np.asarray(S, dtype=np.float32)
        return S, 2 * (S.shape[-2] - 1)
    if y is None:
        raise ValueError("either y or S must be given")
    M = magnitude_T(y, **a)
    if power == 1:
        return M, int(a["n_fft"])
    if power == 2:
        return np.square(M, out=M), int(a["n_fft"])
    return np.power(M, np.float32(power), out=M), int(a["n_fft"])


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
    spectrogram or whole-array transpose is ever materialised.
    """
    yp, win, n_fft, hop_length = stft_input(y, n_fft, hop_length, win_length, window, center,
                                            pad_mode)
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


@functools.lru_cache(maxsize=32)
def _extractor(recipe_json: str, sr: int) -> Extractor:
    return Extractor(json.loads(recipe_json), sr)


def via_recipe(name: str, params: dict[str, Any], *, y: Any, sr: Any,
               stft: dict[str, Any]) -> np.ndarray | None:
    """``Extractor({name: params})(y)[name]`` with a cached extractor, or ``None`` when the
    call is not expressible as a recipe (the caller then computes it directly)."""
    a = stft_args(stft, name)
    if y is None or a["pad_mode"] != "constant" or not isinstance(a["window"], str):
        return None
    if not isinstance(sr, numbers.Real) or isinstance(sr, bool) or float(sr) != int(sr) \
            or int(sr) <= 0:
        return None
    n_fft, hop, win_length = a["n_fft"], a["hop_length"], a["win_length"]
    if hop is None:
        hop = (win_length or n_fft) // 4
    recipe = {"n_fft": int(n_fft), "hop_length": int(hop),
              "win_length": None if win_length is None else int(win_length),
              "window": a["window"], "center": bool(a["center"]), "sr": int(sr),
              "compute": {name: params}}
    try:
        ex = _extractor(json.dumps(recipe, sort_keys=True), int(sr))
    except (TypeError, ValueError):
        return None  # let the direct implementation report the problem
    y = as_audio(y)
    if not a["center"] and y.shape[-1] < n_fft:
        return None
    return ex(y)[name]


def spectral(
    name: str,
    params: dict[str, Any] | None,
    direct: Callable[[np.ndarray, int], np.ndarray],
    *,
    y: np.ndarray | None,
    sr: Any,
    S: np.ndarray | None,
    power: float,
    stft: dict[str, Any],
) -> np.ndarray:
    """A spectral feature from ``y`` or ``S``: the recipe feature ``name`` with ``params``
    when expressible (``params=None``: never), else ``direct(spectrogram, n_fft)`` on
    :func:`spectrogram_of` ``(y, S, power)``."""
    a = stft_args(stft, name)
    if S is None and params is not None:
        out = via_recipe(name, params, y=y, sr=sr, stft=a)
        if out is not None:
            return out
    M, n_fft = spectrogram_of(y=y, S=S, power=power, stft=a, func=name)
    return direct(M, n_fft)


#: what :func:`norm_name` returns for a norm no recipe accepts
NOT_A_RECIPE_NORM = object()


def norm_name(norm: Any) -> Any:
    """A librosa-style norm (np.inf, 1, 2, None, 'slaney') as a recipe value, or
    :data:`NOT_A_RECIPE_NORM`."""
    if norm is None or norm == "slaney":
        return norm
    if norm == np.inf:
        return "inf"
    if norm in (1, 2):
        return int(norm)
    return NOT_A_RECIPE_NORM

"""Route functional calls on audio through a cached :class:`Extractor` (the fast path).

The functional API and the recipe extractor then share one implementation (block-wise
window → FFT → power → banded filter banks), and ``F.mfcc(y, sr)`` costs what the pipeline
pays. Calls the extractor cannot express (a precomputed ``S``, a custom ``freq`` axis, a
window array, non-integer ``sr``, other padding) return ``None`` and the caller falls back to
its direct implementation.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np


@functools.lru_cache(maxsize=32)
def _extractor(recipe_json: str, sr: int):
    from .extractor import Extractor

    return Extractor(json.loads(recipe_json), sr)


def run(name: str, params: dict[str, Any], y: Any, sr: Any, n_fft: int, hop_length: int | None,
        win_length: int | None, window: Any, center: bool, pad_mode: str = "constant"
        ) -> np.ndarray | None:
    """``Extractor({name: params})(y)[name]``, or None when the call is not expressible."""
    if y is None or pad_mode != "constant" or not isinstance(window, str):
        return None
    if isinstance(sr, bool) or float(sr) != int(sr) or int(sr) <= 0:
        return None
    if hop_length is None:
        hop_length = (win_length or n_fft) // 4
    recipe = {"n_fft": int(n_fft), "hop_length": int(hop_length),
              "win_length": None if win_length is None else int(win_length),
              "window": window, "center": bool(center), "sr": int(sr),
              "compute": {name: params}}
    try:
        key = json.dumps(recipe, sort_keys=True)
        ex = _extractor(key, int(sr))
    except (TypeError, ValueError):
        return None  # let the direct implementation report the problem
    from ._core import as_audio

    y = as_audio(y)
    if not center and y.shape[-1] < n_fft:
        return None
    return ex(y)[name]


def norm_name(norm: Any) -> Any:
    """A librosa-style norm (np.inf, 1, 2, None, 'slaney') as a recipe value, or a sentinel."""
    if norm is None or norm == "slaney":
        return norm
    if norm == np.inf:
        return "inf"
    if norm in (1, 2):
        return int(norm)
    return _NOPE


_NOPE = object()

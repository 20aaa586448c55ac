"""The recipe feature registry (:func:`feature`), recipe validation and hashing.

A *recipe* is what users write under ``features:`` in ``datasets.yaml``::

    n_fft: 2048          # shared STFT parameters (librosa names)
    hop_length: 512
    sr: 22050
    compute:
      mfcc: {n_mfcc: 20, deltas: 2}
      melspectrogram: {n_mels: 64, log: true}

:func:`check_recipe` validates it (naming the key path of any problem) and fills defaults;
:func:`recipe_hash` is a stable content hash of the normalised recipe plus
:data:`FEATURES_VERSION` (bump it whenever a feature's numbers change) for cache keys.
Each feature declares itself with :func:`feature` next to its implementation; the block
machinery that computes a recipe is :mod:`audiopipe.features.extractor`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FEATURES_VERSION",
    "FEATURES",
    "DEFAULT_RECIPE",
    "FeatureSpec",
    "Param",
    "feature",
    "check_recipe",
    "recipe_hash",
    "MIN_N_FFT",
    "MAX_N_FFT",
    "MAX_BANDS",
]

#: bump when any feature's output changes for the same recipe (part of :func:`recipe_hash`)
FEATURES_VERSION = "1"

# --------------------------------------------------------------------------------------
# parameter checks: each returns None when the value is fine, else the problem


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def pos_int(v: Any) -> str | None:
    if not _is_int(v):
        return f"must be an integer, got {v!r}"
    return None if v > 0 else f"must be > 0, got {v}"


def nonneg_int(v: Any) -> str | None:
    if not _is_int(v):
        return f"must be an integer, got {v!r}"
    return None if v >= 0 else f"must be >= 0, got {v}"


def odd_int_ge3(v: Any) -> str | None:
    if not _is_int(v) or v < 3 or v % 2 == 0:
        return f"must be an odd integer >= 3, got {v!r}"
    return None


def pos_num(v: Any) -> str | None:
    if not _is_num(v):
        return f"must be a number, got {v!r}"
    return None if v > 0 else f"must be > 0, got {v}"


def nonneg_num(v: Any) -> str | None:
    if not _is_num(v):
        return f"must be a number, got {v!r}"
    return None if v >= 0 else f"must be >= 0, got {v}"


def open_unit(v: Any) -> str | None:
    if not _is_num(v):
        return f"must be a number, got {v!r}"
    return None if 0 < v < 1 else f"must be in (0, 1), got {v}"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def one_of(*choices: Any) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {list(choices)}, got {v!r}"

    return check


def optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def opt(v: Any) -> str | None:
        return None if v is None else check(v)

    return opt


def in_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return f"must be an integer, got {v!r}"
        return None if lo <= v <= hi else f"must be in {lo}..{hi}, got {v}"

    return check


#: the smallest and largest ``n_fft`` a recipe may ask for. Below 16 samples a frame holds
#: too few bins for any band or shape feature; above 2**16 (1.5 s at 44.1 kHz) a "frame" is
#: no longer a frame, and the extractor's scratch (a block of frames x n_fft) would be
#: allocated before the first file is read (n_fft 1e8 asks for ~95 GiB). The FFT takes any
#: size in between (scipy.fft), powers of two are simply the fastest.
MIN_N_FFT = 16
MAX_N_FFT = 1 << 16
#: the most bands or coefficients (n_mels, n_mfcc, n_bands, order, ...) a feature may ask for
MAX_BANDS = 1024
#: parameters that count bands or coefficients (capped at :data:`MAX_BANDS`)
_COUNTS = ("n_mels", "n_mfcc", "n_bands", "n_gfcc", "n_bfcc", "n_pncc", "n_lpcc", "n_ceps",
           "n_chroma", "order")


def fft_size(v: Any) -> str | None:
    if not _is_int(v):
        return f"must be an integer, got {v!r}"
    if not MIN_N_FFT <= v <= MAX_N_FFT:
        return f"must be from {MIN_N_FFT} to {MAX_N_FFT} samples, got {v}"
    return None


def window_spec(v: Any) -> str | None:
    ok = isinstance(v, str) or (isinstance(v, list | tuple) and v and isinstance(v[0], str))
    return None if ok else f"must be a window name such as 'hann' or ['kaiser', 8], got {v!r}"


@dataclass(frozen=True)
class Param:
    """One recipe parameter: default value, check, and a line of documentation."""

    default: Any
    check: Callable[[Any], str | None]
    doc: str = ""


@dataclass(frozen=True)
class FeatureSpec:
    """A feature available in recipes (made by the :func:`feature` decorator).

    Attributes
    ----------
    name : str
        Key under ``compute:``; also the (base) output name.
    params : dict[str, Param]
        Accepted parameters with defaults and checks (plus :data:`COMMON`).
    doc : str
        What it computes and its reference.
    dims : callable
        ``dims(params, sr, n_fft) -> int``, rows of the (base) output.
    make : callable
        ``make(params, extractor)`` -> a :class:`~audiopipe.features.block.Computer`, or
        a function ``block -> (dims, k) array`` for a feature computed frame by frame.
    cross_check : callable or None
        ``cross_check(params) -> problem or None`` for constraints between parameters.
    """

    name: str
    params: dict[str, Param]
    doc: str
    dims: Callable[[dict, int, int], int]
    make: Callable[..., Any] = field(repr=False)
    cross_check: Callable[[dict], str | None] | None = field(repr=False, default=None)

    @property
    def defaults(self) -> dict[str, Any]:
        """Default parameter values (a fresh dict)."""
        return {k: copy.deepcopy(p.default) for k, p in self.params.items()}

    def n_dims(self, params: dict | None = None, sr: int = 22050, n_fft: int = 2048) -> int:
        """Rows of the base output for ``params`` (defaults filled in): lhotse's
        ``feature_dim``."""
        full = self.defaults
        full.update(params or {})
        return int(self.dims(full, sr, n_fft))

    def output_names(self, params: dict | None = None) -> list[str]:
        """``[name]`` plus ``name_delta`` / ``name_delta2`` when ``deltas`` asks for them."""
        full = self.defaults
        full.update(params or {})
        d = full.get("deltas", 0)
        return [self.name] + [f"{self.name}_delta"] * (d >= 1) + [f"{self.name}_delta2"] * (d >= 2)


#: every recipe feature by name, filled by :func:`feature` where each feature is defined
FEATURES: dict[str, FeatureSpec] = {}

#: parameters every frame feature accepts
COMMON = {
    "deltas": Param(0, in_range(0, 2), "0, 1 or 2: also output name_delta (and name_delta2)"),
    "delta_width": Param(9, odd_int_ge3, "frames in the Savitzky-Golay delta window (librosa)"),
}

#: shared (top-level) recipe parameters
SHARED: dict[str, Param] = {
    "n_fft": Param(2048, fft_size, f"FFT size of the shared STFT ({MIN_N_FFT}..{MAX_N_FFT})"),
    "hop_length": Param(512, pos_int, "samples between frames"),
    "win_length": Param(None, optional(pos_int), "window length (default n_fft)"),
    "window": Param("hann", window_spec, "analysis window (scipy.signal.get_window name)"),
    "center": Param(True, boolean, "centre frames (pad n_fft//2 zeros each side)"),
    "sr": Param(22050, pos_int, "sample rate the pipeline resamples to"),
}


def feature(
    name: str,
    *,
    dims: int | str | Callable[[dict, int, int], int],
    doc: str,
    params: dict[str, Param] | None = None,
    cross_check: Callable[[dict], str | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated computer factory as the recipe feature ``name``.

    One declaration per feature, next to its implementation (lhotse's extractor registry):
    ``params`` (the common delta parameters are added), ``doc``, ``dims`` (an int, the name
    of the parameter giving the row count, or ``dims(params, sr, n_fft)``) and the factory
    ``make(params, extractor)``, which returns a
    :class:`~audiopipe.features.block.Computer` or, for a feature computed frame by
    frame, a function ``block -> (dims, k) array``.

    Examples
    --------
    >>> @feature("peak_power", dims=1, doc="Largest bin of the power spectrum (an example)")
    ... def _peak_power(p, ex):
    ...     return lambda block: block.power.max(axis=0, keepdims=True)
    >>> FEATURES["peak_power"].n_dims(), sorted(FEATURES["peak_power"].params)
    (1, ['delta_width', 'deltas'])
    >>> del FEATURES["peak_power"]
    """
    if isinstance(dims, int):
        n = dims

        def dims_fn(p: dict, sr: int, n_fft: int) -> int:
            return n
    elif isinstance(dims, str):
        key = dims

        def dims_fn(p: dict, sr: int, n_fft: int) -> int:
            return p[key]
    else:
        dims_fn = dims

    def register(make: Callable[..., Any]) -> Callable[..., Any]:
        old = FEATURES.get(name)
        if old is not None and (old.make.__module__, old.make.__qualname__) != (
                make.__module__, make.__qualname__):
            raise ValueError(f"feature {name!r} is already defined by {old.make.__module__}")
        FEATURES[name] = FeatureSpec(name, {**(params or {}), **{
            k: p for k, p in COMMON.items() if k not in (params or {})}}, doc, dims_fn, make,
            cross_check)
        return make

    return register


#: the pipeline's baseline recipe: log-mel, MFCC + deltas, centroid, rolloff, ZCR, RMS.
#: ``top_db`` is left at its recipe default (None): frame-local dB, so streaming equals
#: whole-clip extraction (see ``Extractor.stream``).
DEFAULT_RECIPE: dict[str, Any] = {
    "n_fft": 2048,
    "hop_length": 512,
    "sr": 22050,
    "compute": {
        "mfcc": {"n_mfcc": 20, "deltas": 2},
        "melspectrogram": {"n_mels": 64, "log": True},
        "spectral_centroid": {},
        "spectral_rolloff": {"roll_percent": 0.85},
        "zero_crossing_rate": {},
        "rms": {},
    },
}


def _at(path: str, problem: str, params: Any) -> str:
    """``path: problem``, or ``path.key: rest`` when the problem starts with ``key: ``."""
    key, sep, rest = problem.partition(": ")
    if sep and key in params:
        return f"{path}.{key}: {rest}"
    return f"{path}: {problem}"


def _semantics(params: dict, sr: int, n_fft: int) -> list[tuple[str, str]]:
    """``(key, problem)`` for a feature's parameters that are each valid but cannot work
    together with the shared STFT: too many bands, bands past the Nyquist frequency."""
    out = []
    for k in _COUNTS:
        if _is_int(params.get(k)) and params[k] > MAX_BANDS:
            out.append((k, f"{params[k]} is more than the largest allowed, {MAX_BANDS}"))
    bins = n_fft // 2 + 1
    if _is_int(params.get("n_mels")) and params["n_mels"] > bins:
        out.append(("n_mels", f"{params['n_mels']} is more than the {bins} frequency bins of "
                              f"n_fft={n_fft} (raise n_fft or lower n_mels)"))
    nyquist = sr / 2
    fmin, fmax = params.get("fmin"), params.get("fmax")
    if "fmax" in params and fmax is not None and fmax > nyquist:
        out.append(("fmax", f"{fmax:g} Hz is above the Nyquist frequency ({nyquist:g} Hz, sr/2 "
                            f"at sr={sr})"))
    elif "fmin" in params and fmin is not None:
        top, what = (fmax, "fmax") if fmax is not None else (nyquist, f"sr/2 = {nyquist:g} Hz")
        if fmin >= top:
            out.append(("fmin", f"{fmin:g} Hz is not below {what}"
                                + (f" ({fmax:g} Hz)" if fmax is not None else "")))
    return out


def check_recipe(recipe: dict | None) -> dict:
    """Validate a feature recipe and return it normalised, with every default filled in.

    Each parameter is checked on its own (type, range: ``n_fft`` from :data:`MIN_N_FFT` to
    :data:`MAX_N_FFT`, counts up to :data:`MAX_BANDS`), then against the others
    (``hop_length`` and ``win_length`` at most ``n_fft``, ``n_mfcc`` at most ``n_mels``,
    ``n_mels`` at most the FFT's bins, ``fmin`` below ``fmax``, ``fmax`` at most ``sr/2``).

    Parameters
    ----------
    recipe : dict
        The mapping under ``features:``: shared STFT keys (``n_fft``, ``hop_length``,
        ``win_length``, ``window``, ``center``, ``sr``) and ``compute``, a mapping from
        feature name (a key of :data:`FEATURES`) to its parameters (``{}`` or null for the
        defaults). Without ``compute`` the default recipe's set is used.

    Returns
    -------
    dict
        A new dict; ``compute`` keeps the user's order.

    Raises
    ------
    ValueError
        naming the key path and the problem, one line per problem (all of them), e.g.
        ``features.compute.mfcc.n_mfcc: must be > 0, got -1``.

    Examples
    --------
    >>> r = check_recipe({"compute": {"rms": {}}})
    >>> r["n_fft"], r["compute"]["rms"]["deltas"]
    (2048, 0)
    >>> check_recipe({"n_fft": 7, "compute": {"mfcc": {"n_mfcc": 60, "n_mels": 40}}})
    Traceback (most recent call last):
    ...
    ValueError: features.n_fft: must be from 16 to 65536 samples, got 7
    features.compute.mfcc.n_mfcc: 60 is more than n_mels (40)
    """
    problems: list[str] = []
    out = _check_recipe(recipe, problems)
    if problems:
        raise ValueError("\n".join(problems))
    return out


def _check_recipe(recipe: Any, problems: list[str]) -> dict:
    """:func:`check_recipe`'s work: the normalised recipe, every problem added to ``problems``."""
    if recipe is None:
        recipe = {}
    if not isinstance(recipe, dict):
        problems.append(f"features: must be a mapping, got {type(recipe).__name__}")
        return {}
    out: dict[str, Any] = {}
    for key in recipe:
        if key not in SHARED and key != "compute":
            problems.append(f"features.{key}: unknown key; expected one of "
                            f"{sorted([*SHARED, 'compute'])}")
    bad = set()
    for key, p in SHARED.items():
        v = recipe.get(key, copy.deepcopy(p.default))
        problem = p.check(v)
        if problem:
            problems.append(f"features.{key}: {problem}")
            bad.add(key)
            v = copy.deepcopy(p.default)
        out[key] = list(v) if isinstance(v, tuple) else v
    n_fft = out["n_fft"]
    if "n_fft" not in bad:
        for key in ("win_length", "hop_length"):
            v = out[key]
            if key not in bad and v is not None and v > n_fft:
                why = " (frames would skip samples)" if key == "hop_length" else ""
                problems.append(f"features.{key}: {v} is more than n_fft ({n_fft}){why}")
    compute = recipe.get("compute", DEFAULT_RECIPE["compute"])
    if not isinstance(compute, dict) or not compute:
        problems.append("features.compute: must be a non-empty mapping of feature name -> "
                        f"parameters, got {compute!r}")
        return out
    out_compute: dict[str, dict] = {}
    for name, params in compute.items():
        path = f"features.compute.{name}"
        if name not in FEATURES:
            problems.append(f"{path}: unknown feature; available: {sorted(FEATURES)}")
            continue
        spec = FEATURES[name]
        if params is None:
            params = {}
        if not isinstance(params, dict):
            problems.append(f"{path}: parameters must be a mapping, got {params!r}")
            continue
        full = spec.defaults
        n_before = len(problems)
        for k, v in params.items():
            if k not in spec.params:
                problems.append(f"{path}.{k}: unknown parameter; {name} accepts "
                                f"{sorted(spec.params)}")
                continue
            problem = spec.params[k].check(v)
            if problem:
                problems.append(f"{path}.{k}: {problem}")
                continue
            full[k] = list(v) if isinstance(v, tuple) else v
        out_compute[name] = full
        if len(problems) > n_before:
            continue  # the parameters are not all valid: relations between them are moot
        if spec.cross_check is not None:
            problem = spec.cross_check(full)
            if problem:
                problems.append(_at(path, problem, spec.params))
        if not bad & {"n_fft", "sr"}:
            problems += [f"{path}.{k}: {why}" for k, why in _semantics(full, out["sr"], n_fft)]
    out["compute"] = out_compute
    names = [n for name, p in out_compute.items() for n in FEATURES[name].output_names(p)]
    if len(set(names)) != len(names):
        problems.append(f"features.compute: output names collide: {names}")
    return out


def recipe_hash(recipe: dict) -> str:
    """Stable hash (16 hex digits) of the normalised recipe and :data:`FEATURES_VERSION`.

    Equal for recipes that differ only in key order or in spelling out defaults.

    Examples
    --------
    >>> recipe_hash({"compute": {"rms": {}}}) == recipe_hash({"compute": {"rms": {"deltas": 0}}})
    True
    """
    norm = check_recipe(recipe)
    payload = json.dumps({"features_version": FEATURES_VERSION, "recipe": norm},
                         sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

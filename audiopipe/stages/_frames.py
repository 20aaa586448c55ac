"""Frame-level helpers shared by the learning stages: reading frames of many clips, pooling,
trimming, time normalisation.

Examples
--------
>>> import numpy as np
>>> segment_pool(np.arange(12, dtype=np.float32).reshape(6, 2), 3)
array([ 1.,  2.,  5.,  6.,  9., 10.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "segment_pool",
    "read_frames_many",
    "map_frames",
    "frames_recipe",
    "trim_bounds",
    "time_normalize",
]


def segment_pool(frames: np.ndarray, n_segments: int) -> np.ndarray:
    """Means of ``frames`` (n_frames, n_dims) over ``n_segments`` equal time segments.

    Keeps temporal order (segment 0 first). Clips shorter than ``n_segments``
    frames reuse their frames; an empty clip gives zeros.
    """
    frames = np.asarray(frames, dtype=np.float32)
    n, d = frames.shape
    if n == 0:
        return np.zeros(n_segments * d, np.float32)
    edges = np.linspace(0, n, n_segments + 1)
    out = []
    for i in range(n_segments):
        a = min(int(np.floor(edges[i])), n - 1)
        b = min(max(int(np.ceil(edges[i + 1])), a + 1), n)
        out.append(frames[a:b].mean(axis=0))
    return np.concatenate(out).astype(np.float32)


def _locations(ds: Dataset, clip_ids: list[str]) -> dict[str, tuple[str, int, int]]:
    """Each clip's (part, start, stop) in the frame store; KeyError naming clips without frames."""
    t = ds.table("frames_index", ["clip_id", "part", "start", "stop"]).to_pydict()
    where = {
        c: (p, s, e)
        for c, p, s, e in zip(t["clip_id"], t["part"], t["start"], t["stop"], strict=True)
    }
    missing = [c for c in clip_ids if c not in where]
    if missing:
        raise KeyError(f"dataset {ds.name!r} has no frames for clips {missing[:3]}")
    return where


def read_frames_many(ds: Dataset, clip_ids: list[str], feature: str) -> list[np.ndarray]:
    """Frames ``(n_frames, n_dims)`` of ``feature`` for many clips, reading each part once."""
    from audiopipe.store.frames import open_part

    where = _locations(ds, clip_ids)
    cache: dict[str, np.ndarray] = {}
    out = []
    for c in clip_ids:
        part, s, e = where[c]
        if part not in cache:
            g = open_part(ds.location.frames_uri(part), ds.location.fsspec_options)
            if feature not in g:
                raise KeyError(f"dataset {ds.name!r} has no frame feature {feature!r}")
            cache[part] = np.asarray(g[feature][:], dtype=np.float32)
        out.append(cache[part][s:e])
    return out


def map_frames(
    ds: Dataset, clip_ids: list[str], feature: str, fn: Callable[[np.ndarray], Any]
) -> tuple[list[Any], int]:
    """``fn(frames)`` of each clip (in ``clip_ids`` order) and the feature's width, reading
    the frame store one part at a time: memory holds one part's rows of one feature, not
    every clip's frames (what :func:`read_frames_many` returns), so clip-level reductions
    (segment pooling) of a dataset of any size fit in one process."""
    from collections import defaultdict

    from audiopipe.store.frames import open_part

    where = _locations(ds, clip_ids)
    by_part: dict[str, list[int]] = defaultdict(list)
    for j, c in enumerate(clip_ids):
        by_part[where[c][0]].append(j)
    out: list[Any] = [None] * len(clip_ids)
    width = 0
    for part, js in by_part.items():
        g = open_part(ds.location.frames_uri(part), ds.location.fsspec_options)
        if feature not in g:
            raise KeyError(f"dataset {ds.name!r} has no frame feature {feature!r}")
        arr = g[feature]
        width = int(arr.shape[1])
        lo = min(where[clip_ids[j]][1] for j in js)
        hi = max(where[clip_ids[j]][2] for j in js)
        block = np.asarray(arr[lo:hi], dtype=np.float32)
        for j in js:
            _, s0, e0 = where[clip_ids[j]]
            out[j] = fn(block[s0 - lo : e0 - lo])
        del block
    return out, width


def frames_recipe(ds: Dataset) -> dict[str, Any]:
    """The feature recipe the dataset's frames were computed with (``{}`` if unknown)."""
    from audiopipe.store.frames import open_part

    t = ds.table("frames_index", ["part"])
    if t.num_rows == 0:
        return {}
    g = open_part(ds.location.frames_uri(t.column("part")[0].as_py()), ds.location.fsspec_options)
    rec = dict(g.attrs).get("recipe") or {}
    return dict(rec)


def trim_bounds(rms: np.ndarray, top_db: float = 30.0) -> tuple[int, int]:
    """``(start, stop)`` frames between the first and last frame within ``top_db`` of the loudest.

    Leading/trailing silence removal by an RMS threshold; clips with fewer than two
    loud frames (or silent ones) are kept whole.

    Examples
    --------
    >>> trim_bounds(np.array([0.0, 0.001, 1.0, 0.5, 0.0001]))
    (2, 4)
    """
    r = np.asarray(rms, dtype=np.float64).ravel()
    if r.size == 0:
        return 0, 0
    db = 20 * np.log10(np.maximum(r, 1e-10))
    keep = np.flatnonzero(db > db.max() - abs(top_db))
    if len(keep) < 2:
        return 0, r.size
    return int(keep[0]), int(keep[-1]) + 1


def time_normalize(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Resample a ``(n, d)`` frame sequence to ``(n_frames, d)`` by linear interpolation.

    An empty sequence gives zeros; a single frame is repeated.

    Examples
    --------
    >>> time_normalize(np.array([[0.0], [2.0]]), 3).ravel().tolist()
    [0.0, 1.0, 2.0]
    """
    a = np.asarray(frames, dtype=np.float64)
    n, d = a.shape
    if n == 0:
        return np.zeros((n_frames, d))
    if n == 1:
        return np.repeat(a, n_frames, axis=0)
    t = np.linspace(0, n - 1, n_frames)
    i = np.minimum(np.floor(t).astype(int), n - 2)
    w = (t - i)[:, None]
    return a[i] * (1 - w) + a[i + 1] * w

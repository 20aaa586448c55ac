"""The exact cosine index of ``retrieve`` (:class:`EmbeddingIndex`): standardized,
L2-normalised embeddings searched with one matrix product; an approximate HNSW graph
(:mod:`audiopipe.stages._ann`) can be attached to it.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((50, 8))
>>> idx = EmbeddingIndex().fit(X, [f"c{i}" for i in range(50)])
>>> [r["clip_id"] for r in idx.query(X[7], k=2)][0]
'c7'
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from audiopipe.stages._ann import HNSWIndex

__all__ = ["EmbeddingIndex"]


#: a column whose spread over the indexed clips is within this fraction of its feature's
#: magnitude is constant: float32 rounding (~1.2e-7 relative, summed over frames) is not a
#: difference between clips (set a priori from float32 precision, not tuned)
CONSTANT_RTOL = 1e-5


class EmbeddingIndex:
    """Exact cosine search over standardized, L2-normalised embeddings.

    Columns are centred on the indexed clips' mean and divided by their standard deviation.
    A column whose standard deviation is within ``rtol`` of its feature's magnitude (the
    largest absolute value among the columns of the same group: a feature's coefficients
    mix in rounding from all of them, its standard deviations from its means) is constant:
    it gets an infinite scale, so it weighs nothing. Scaled to unit variance, float32
    rounding noise weighed as much as a real feature (six silent clips scored 0.996 to
    -0.98 against each other). A constant column cannot rank the indexed clips anyway: a
    query's value in it changes every score by the same factor.

    Parameters
    ----------
    standardize : bool
        Centre and scale each column with the indexed clips' mean and std first.
    rtol : float
        Relative spread under which a column is constant (:data:`CONSTANT_RTOL`).

    Examples
    --------
    >>> idx = EmbeddingIndex().fit(np.eye(3), ["a", "b", "c"])
    >>> idx.query(np.array([0.0, 1.0, 0.1]), k=1)[0]["clip_id"]
    'b'
    """

    def __init__(self, standardize: bool = True, rtol: float = CONSTANT_RTOL) -> None:
        self.standardize = standardize
        self.rtol = rtol
        #: an approximate index over :attr:`embeddings_` (:class:`HNSWIndex`), or None: exact
        self.ann_: HNSWIndex | None = None

    def fit(
        self, X: np.ndarray, clip_ids: list[str], groups: list[str] | None = None
    ) -> EmbeddingIndex:
        """Index the rows of ``X`` (one per clip id).

        ``groups`` names each column's feature (e.g. ``mfcc`` for every MFCC mean and std):
        the columns of a group share one magnitude for the constant-column test (default:
        each column its own). An index without spread - one clip, or clips that differ in
        no column - cannot be standardised: it keeps the raw features (plain cosine: a clip
        scores 1 against itself and its copies), with a warning.
        """
        import warnings

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != len(clip_ids):
            raise ValueError(f"X must be (n_clips, n_dims) with one row per clip id, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinity")
        if groups is not None and len(groups) != X.shape[1]:
            raise ValueError(f"groups names {len(groups)} columns, X has {X.shape[1]}")
        self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        #: why the index is not standardised (the warning's text), or None
        self.note_: str | None = None
        if self.standardize and X.shape[0]:
            sd, mag = X.std(axis=0), np.abs(X).max(axis=0)
            if groups is not None:
                for g in set(groups):
                    cols = [i for i, n in enumerate(groups) if n == g]
                    mag[cols] = mag[cols].max()
            const = sd <= self.rtol * mag
            if const.all():
                self.note_ = (f"an index of {X.shape[0]} clip(s) that differ in no feature "
                              "(beyond rounding) cannot be standardised: its scores are "
                              "cosines of the raw features")
                warnings.warn(self.note_, UserWarning, stacklevel=2)
            else:
                self.mean_, self.scale_ = X.mean(axis=0), np.where(const, np.inf, sd)
        self.embeddings_ = self.transform(X)
        self.clip_ids_ = list(clip_ids)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardize and L2-normalise rows (float32); a zero row stays zero (constant
        columns have an infinite scale: they are 0)."""
        Z = (np.atleast_2d(np.asarray(X, np.float64)) - self.mean_) / self.scale_
        n = np.linalg.norm(Z, axis=1, keepdims=True)
        return (Z / np.where(n > 0, n, 1.0)).astype(np.float32)

    def scores(self, q: np.ndarray) -> np.ndarray:
        """Cosine similarity of raw feature vector(s) ``q`` to every indexed clip."""
        return self.transform(q) @ self.embeddings_.T

    def query(self, q: np.ndarray, k: int = 10, exclude: str | None = None) -> list[dict[str, Any]]:
        """The ``k`` nearest clips to raw feature vector ``q`` (ties broken by index order);
        approximate (the HNSW graph) when the index has one."""
        if self.ann_ is not None:
            return _ann_hits(self, self.transform(q)[0], k, exclude)
        s = self.scores(q)[0]
        if exclude is not None and exclude in self.clip_ids_:
            s[self.clip_ids_.index(exclude)] = -np.inf
        k = min(k, int(np.isfinite(s).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-s, k - 1)[:k] if k < s.size else np.arange(s.size)
        top = top[np.lexsort((top, -s[top]))]
        return [
            {"rank": i + 1, "clip_id": self.clip_ids_[j], "score": float(s[j])}
            for i, j in enumerate(top)
        ]

    # --- persistence (plain arrays, no pickle) -------------------------------------------
    def to_bytes(self, names: list[str] | None = None) -> bytes:
        """The index as an ``.npz`` file's bytes (no pickle)."""
        buf = io.BytesIO()
        np.savez(buf, embeddings=self.embeddings_, mean=self.mean_, scale=self.scale_,
                 clip_ids=np.asarray(self.clip_ids_, dtype=str),
                 names=np.asarray(names or [], dtype=str))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[EmbeddingIndex, list[str]]:
        """An index and its feature names from :meth:`to_bytes` output."""
        z = np.load(io.BytesIO(data), allow_pickle=False)
        self = cls()
        self.embeddings_ = z["embeddings"]
        self.mean_, self.scale_ = z["mean"], z["scale"]
        self.clip_ids_ = z["clip_ids"].tolist()
        return self, z["names"].tolist()


def _ann_hits(
    idx: EmbeddingIndex, e: np.ndarray, k: int, exclude: str | None
) -> list[dict[str, Any]]:
    """Top ``k`` from the approximate index (one more asked for when a clip is excluded)."""
    assert idx.ann_ is not None
    s, i = idx.ann_.search(e, k + (exclude is not None))
    hits = [(float(a), int(b)) for a, b in zip(s[0], i[0], strict=True) if b >= 0]
    hits = [h for h in hits if idx.clip_ids_[h[1]] != exclude][:k]
    return [{"rank": r + 1, "clip_id": idx.clip_ids_[j], "score": sc}
            for r, (sc, j) in enumerate(hits)]

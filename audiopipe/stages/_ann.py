"""Approximate nearest neighbours for ``retrieve`` past ~10⁵ clips: a FAISS HNSW graph.

``retrieve`` searches exactly (one matrix product) by default; from
:data:`ANN_MIN_CLIPS` clips on (``index: auto``), or when asked (``index: hnsw``), it also
builds an HNSW graph (Malkov & Yashunin 2018) over the same L2-normalised embeddings with
inner product as the metric, so its scores are the same cosines. Why FAISS
(``faiss-cpu``, MIT): wheels for CPython 3.11 on manylinux x86-64/aarch64 and macOS, kept
by Meta, one library for HNSW, IVF and exact search; its indexes serialise to plain bytes
(no pickle). hnswlib's last release (0.8.0, 2023) ships no wheels (a C++ build on
install); usearch (Apache-2.0) has wheels too and is smaller, but FAISS is the reference
the field measures against. ``benchmarks/stages_scale.py`` measures recall@10 against
exact search and the query time at 10⁶ vectors.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> E = rng.standard_normal((2000, 16)).astype(np.float32)
>>> E /= np.linalg.norm(E, axis=1, keepdims=True)
>>> ann = HNSWIndex().fit(E)
>>> s, i = ann.search(E[:5], k=1)
>>> i[:, 0].tolist()
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["HNSWIndex", "ANN_MIN_CLIPS", "exact_top_k", "recall_at_k", "scaling_benchmark"]

#: ``index: auto`` builds the HNSW graph from this many clips on (exact search takes
#: ~20 ms per query at 10⁵ × 96 on one core, and grows linearly)
ANN_MIN_CLIPS = 100_000


class HNSWIndex:
    """HNSW graph over L2-normalised float32 rows, inner product (= cosine) as the metric.

    Parameters
    ----------
    M : int
        Neighbours per node (memory ~ ``n * (4 d + 8 M)`` bytes).
    ef_construction : int
        Candidate list while building (build time against recall).
    ef_search : int
        Candidate list per query (query time against recall); at least ``k``.
    """

    def __init__(self, M: int = 32, ef_construction: int = 80, ef_search: int = 64) -> None:
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.index_: Any = None

    def fit(self, E: np.ndarray) -> HNSWIndex:
        import faiss

        E = np.ascontiguousarray(E, dtype=np.float32)
        if E.ndim != 2 or not np.all(np.isfinite(E)):
            raise ValueError("embeddings must be a finite 2-D array")
        index = faiss.IndexHNSWFlat(E.shape[1], self.M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.add(E)
        self.index_ = index
        return self

    @property
    def n(self) -> int:
        return 0 if self.index_ is None else int(self.index_.ntotal)

    def search(self, Q: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row numbers ``(n_queries, k)`` of the approximate top ``k``, best first
        (row -1 and score -inf where fewer than ``k`` were found)."""
        import faiss

        Q = np.ascontiguousarray(np.atleast_2d(Q), dtype=np.float32)
        k = max(1, min(k, self.n))
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        s, i = self.index_.search(Q, k, params=params)
        s = np.where(i >= 0, s, -np.inf)
        return s, i

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index_).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, ef_search: int = 64) -> HNSWIndex:
        import faiss

        self = cls(ef_search=ef_search)
        self.index_ = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return self


def exact_top_k(
    E: np.ndarray, Q: np.ndarray, k: int = 10, block: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` inner products of each row of ``Q`` over ``E`` (blocks of queries),
    ties by row number: the reference an approximate index is scored against."""
    Q = np.atleast_2d(Q)
    k = min(k, E.shape[0])
    S_out = np.empty((Q.shape[0], k), np.float32)
    I_out = np.empty((Q.shape[0], k), np.int64)
    for a in range(0, Q.shape[0], block):
        S = Q[a : a + block] @ E.T
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        sc = np.take_along_axis(S, top, axis=1)
        order = np.lexsort((top, -sc), axis=1)
        I_out[a : a + block] = np.take_along_axis(top, order, axis=1)
        S_out[a : a + block] = np.take_along_axis(sc, order, axis=1)
    return S_out, I_out


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k rows found in its approximate top-k."""
    hits = [len(set(a.tolist()) & set(e.tolist())) / max(1, len(e)) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def scaling_benchmark(
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000),
    n_dims: int = 96,
    n_queries: int = 20,
    k: int = 10,
    random_state: int = 0,
) -> list[dict[str, float]]:
    """Measured time per exact top-k query vs index size N (random unit embeddings)."""
    rng = np.random.default_rng(random_state)
    out = []
    for n in sizes:
        E = rng.standard_normal((n, n_dims), dtype=np.float32)
        E /= np.linalg.norm(E, axis=1, keepdims=True)
        Q = E[rng.integers(0, n, n_queries)]
        t0 = time.perf_counter()
        for q in Q:
            s = E @ q
            top = np.argpartition(-s, k)[:k]
            top[np.argsort(-s[top])]
        dt = (time.perf_counter() - t0) / n_queries
        out.append({"n": n, "ms_per_query": dt * 1000, "index_mb": E.nbytes / 2**20})
        del E
    return out

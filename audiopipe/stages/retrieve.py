"""Query-by-example retrieval: nearest clips by standardized feature embeddings (cosine).

Two views of a clip:

- ``timbre``: clip statistics (mean, std over frames) of frame features from the dataset's
  ``features`` table (default: MFCC), as written by ingestion.
- ``tonal``: chroma mean/std (12 + 12, ``audiopipe.features.chroma_stft(tuning=0)``) plus
  tempo (log2 of BPM/120, from the autocorrelation of ``audiopipe.features.onset_strength`` with a log-normal tempo
  prior centred at 120 BPM, as ``librosa.beat.tempo``) and pulse clarity (autocorrelation
  peak height). Computed from audio, since the default recipe stores no chroma.

:class:`EmbeddingIndex` standardizes columns (mean/std of the indexed clips; a column constant
up to float32 rounding, relative to its feature's magnitude, weighs nothing; one clip, or
clips that differ in nothing, keep their raw features, with a warning), L2-normalises rows
and searches exactly with a matrix product (``X @ q``, then ``argpartition``).
Exact search costs O(N·d) per query and N·d·4 bytes of memory. Measured on this 2-core
machine (d=96, one query, top-10, ``benchmarks/fingerprint.py``): 0.03 ms at 10^3 clips,
~5 ms at 10^4, 19 ms at 10^5 (37 MB), 73 ms at 10^6 (366 MB). From 10^5 clips on
(parameter ``index``, default ``auto``) the stage also builds an approximate HNSW graph
(FAISS, :mod:`audiopipe.stages._ann`) and queries go through it; below that exact search
stays the default.

The stage :class:`Retrieve` builds the index of each view and saves it in its run folder as
``index/retrieve_<view>.npz`` (embeddings, clip ids, standardization stats, feature names;
plain arrays, no pickle), listed in the table ``retrieval_indexes`` (view, uri, n_clips,
n_dims, ann_uri, run_id, recipe_hash: the dataset's feature recipe when it was built).
:func:`similar` answers a clip id or an audio file, :func:`similar_many` many of them with
one index. A timbre index built under another recipe than the dataset has now (``audiopipe
rebuild`` since) is refused, naming the command that rebuilds it: a file's query vector,
computed with the recipe of now, would be compared with the old recipe's embeddings. An
index stored before the recipe was recorded is checked against the recipe its ``retrieve``
run recorded (used with a warning when that run is not known). The tonal view is computed
from audio with fixed settings: no recipe is checked for it.

Examples
--------
The tonal view of one second of A4: its chroma mean peaks at pitch class A (C = 0).

>>> t = np.arange(22050) / 22050
>>> v = tonal_features(np.sin(2 * np.pi * 440 * t).astype(np.float32), 22050)
>>> v.shape, int(np.argmax(v[:12]))
((26,), 9)
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.stages._ann import ANN_MIN_CLIPS, HNSWIndex, scaling_benchmark
from audiopipe.stages._common import StageInputError
from audiopipe.stages._embedding import EmbeddingIndex, _ann_hits
from audiopipe.stages.base import Stage, StageContext, StageOutput
from audiopipe.stages.params import Param

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "VIEWS", "EmbeddingIndex", "tonal_features", "tempo", "ranking_metrics", "Retrieve",
    "similar", "similar_many", "evaluate", "scaling_benchmark",
]

VIEWS = ("timbre", "tonal")
TONAL_SR = 22050
_TONAL_NAMES = [f"chroma_{s}[{i}]" for s in ("mean", "std") for i in range(12)] + [
    "log2_tempo_over_120", "pulse_clarity"]


# ----------------------------------------------------------------------- tonal features


def tempo(
    onset_env: np.ndarray, sr: int, hop_length: int = 512, start_bpm: float = 120.0
) -> tuple[float, float]:
    """(tempo in BPM, pulse clarity) of an onset envelope.

    The tempo is :func:`audiopipe.stages.beats.tempo_estimate` (autocorrelation tempogram with a
    log-normal prior at ``start_bpm``, as ``librosa.beat.tempo``); pulse clarity is the
    envelope's autocorrelation at that beat period over lag 0 (0 for silence).

    Examples
    --------
    >>> env = np.zeros(430); env[::22] = 1.0         # an onset every 22 frames = 117.5 BPM
    >>> round(tempo(env, 22050)[0])
    117
    """
    from audiopipe.stages._mir import tempo_estimate

    env = np.asarray(onset_env, np.float64)
    env = env - env.mean()
    if env.size < 8 or not np.any(env):
        return start_bpm, 0.0
    bpm = float(tempo_estimate(onset_env, sr=sr, hop_length=hop_length, start_bpm=start_bpm)[0])
    n = 1 << int(np.ceil(np.log2(2 * env.size)))
    ac = np.fft.irfft(np.abs(np.fft.rfft(env, n)) ** 2, n)[: env.size]
    lag = int(round(60.0 * sr / hop_length / bpm))
    clarity = float(max(0.0, ac[lag] / ac[0])) if 0 < lag < ac.size and ac[0] > 0 else 0.0
    return bpm, clarity


def tonal_features(y: np.ndarray, sr: int) -> np.ndarray:
    """Tonal/rhythm view of a clip: chroma mean (12), chroma std (12), log2(tempo/120), clarity.

    Silence or a clip shorter than one frame gives zero chroma and the prior tempo.

    Examples
    --------
    >>> tonal_features(np.zeros(100, np.float32), 22050).shape
    (26,)
    """
    import audiopipe.features as F
    from audiopipe.audio import to_mono

    y = to_mono(y)
    if sr != TONAL_SR and y.size:
        from audiopipe.audio import resample

        y = resample(y, sr, TONAL_SR)
        sr = TONAL_SR
    if y.size == 0:
        y = np.zeros(1, np.float32)
    C = F.chroma_stft(y=y, sr=sr, n_fft=2048, hop_length=512, tuning=0.0)
    bpm, clarity = tempo(F.onset_strength(y=y, sr=sr, hop_length=512, n_mels=64), sr)
    return np.concatenate([C.mean(axis=1), C.std(axis=1), [np.log2(bpm / 120.0), clarity]]).astype(
        np.float32
    )


# ----------------------------------------------------------------------- stage


def _view_matrix(ctx: StageContext, view: str) -> tuple[np.ndarray, list[str], list[str]]:
    from audiopipe.stages._common import feature_matrix

    if view == "timbre":
        return feature_matrix(ctx.ds, list(ctx.params["features"]), stats=("mean", "std"))
    ids = ctx.clip_ids()
    if not ids:
        raise StageInputError(f"dataset {ctx.ds.name!r} has no clips: ingest it first")
    X = np.stack([tonal_features(*ctx.ds.load_audio(c, sr=TONAL_SR)) for c in ids])
    return X, ids, list(_TONAL_NAMES)


def _feature_groups(names: list[str]) -> list[str]:
    """The feature of each column (``mfcc_mean[3]``, ``mfcc_std[0]`` -> ``mfcc``): columns of
    one feature share a magnitude in :meth:`EmbeddingIndex.fit`'s constant-column test."""
    import re

    return [re.sub(r"_(mean|std)$", "", n.split("[", 1)[0]) for n in names]


class Retrieve(Stage):
    """Build the retrieval index of each view (and score it against a label, if given)."""

    name = "retrieve"
    summary = (
        "Cosine search over standardised timbre (MFCC statistics) or tonal (chroma + tempo) "
        "embeddings; index files in the run folder, table `retrieval_indexes`; "
        "`audiopipe similar FILE...` queries it."
    )
    params = (
        Param("views", "list", VIEWS, "views to index", choices=VIEWS),
        Param("features", "list", ("mfcc",), "frame features of the timbre view"),
        Param("label", "str", None,
              "label column: score each index by leave-one-out P@k and mAP (same label = relevant)"),
        Param("k", "int", 10, "cut-off of P@k", low=1),
        Param("index", "str", "auto",
              "search: exact, hnsw (approximate, FAISS), or auto (hnsw from 100,000 clips)",
              choices=("auto", "exact", "hnsw")),
    )
    tables = ("retrieval_indexes",)
    # 2: P@k divided by k when fewer than k other clips (was by their number); 3: columns
    # constant up to rounding relative to their feature's magnitude weigh nothing (they were
    # scaled to unit variance), an index without spread keeps the raw features; 4:
    # retrieval_indexes.recipe_hash (similar refuses a timbre index of an older recipe)
    version = "4"

    def run(self, ctx: StageContext) -> StageOutput:
        import pyarrow as pa

        from audiopipe.stages._common import label_column, metric_rows

        rows, report, metrics = [], {}, []
        labels = None
        if ctx.params["label"]:
            ids = ctx.clip_ids()
            labels = dict(zip(ids, label_column(ctx.ds, ctx.params["label"]), strict=True))
        for view in ctx.params["views"]:
            t0 = time.perf_counter()
            X, ids, names = _view_matrix(ctx, view)
            idx = EmbeddingIndex().fit(X, ids, groups=_feature_groups(names))
            uri = ctx.write_bytes(idx.to_bytes(names), "index", f"retrieve_{view}.npz")
            ann_uri = None
            kind = ctx.params["index"]
            if kind == "hnsw" or (kind == "auto" and len(ids) >= ANN_MIN_CLIPS):
                idx.ann_ = HNSWIndex().fit(idx.embeddings_)
                ann_uri = ctx.write_bytes(idx.ann_.to_bytes(), "index", f"retrieve_{view}.faiss")
            rows.append({"view": view, "uri": uri, "n_clips": len(ids), "n_dims": X.shape[1],
                         "ann_uri": ann_uri, "run_id": ctx.run_id,
                         "recipe_hash": (ctx.ds.run or {}).get("recipe_hash")})
            report[view] = {"n_clips": len(ids), "n_dims": int(X.shape[1]),
                            "seconds": round(time.perf_counter() - t0, 3),
                            "warnings": [idx.note_] if idx.note_ else []}
            if labels is not None:
                lab = np.array([labels[c] for c in ids], dtype=object)
                keep = np.array([v not in (None, "") for v in lab])
                m = ranking_metrics(idx.embeddings_[keep], lab[keep].astype(str), k=ctx.params["k"])
                # (catch_warnings swaps process-wide state: not safe beside other threads)
                if w := _ceiling_note(int(keep.sum()), ctx.params["k"]):
                    report[view]["warnings"].append(w)
                metrics += metric_rows(
                    "retrieve", f"retrieve-{view}",
                    {f"precision_at_{ctx.params['k']}": m["precision_at_k"], "map": m["map"]},
                    evaluation="reference", split=view, run_id=ctx.run_id,
                )
        schema = pa.schema([("view", pa.string()), ("uri", pa.string()), ("n_clips", pa.int64()),
                            ("n_dims", pa.int64()), ("ann_uri", pa.string()), ("run_id", pa.string()),
                            ("recipe_hash", pa.string())])
        return StageOutput(
            tables={"retrieval_indexes": pa.Table.from_pylist(rows, schema=schema)},
            metrics=metrics,
            model_id="retrieve-" + "+".join(ctx.params["views"]),
            report={"views": report},
            n_clips=max((r["n_clips"] for r in rows), default=0),
        )


#: the last index loaded (one: they can be large), shared by threads under its lock
_INDEX_CACHE: dict[tuple[str, str], tuple[EmbeddingIndex, list[str]]] = {}
_INDEX_LOCK = threading.Lock()


def _load(ds: Dataset, view: str) -> tuple[EmbeddingIndex, list[str]]:
    from audiopipe.stages._common import read_bytes

    hint = f"run `audiopipe stage retrieve {ds.name}`"
    if "retrieval_indexes" not in ds.table_names():
        raise StageInputError(f"dataset {ds.name!r} has no retrieval index: {hint}")
    t = ds.table("retrieval_indexes").to_pydict()  # as the pinned runs left it
    at = {v: i for i, v in enumerate(t["view"])}
    if view not in at:
        raise StageInputError(f"dataset {ds.name!r} has no {view} retrieval index: {hint}")
    uri = t["uri"][at[view]]
    ann_uri = (t.get("ann_uri") or [None] * len(at))[at[view]]
    if view == "timbre":  # its file queries are computed with the dataset's recipe of now
        from audiopipe.stages._common import check_recipe

        check_recipe(ds, (t.get("recipe_hash") or [None] * len(at))[at[view]],
                     f"the timbre retrieval index of dataset {ds.name!r}",
                     f"rebuild the index: {hint}",
                     stage="retrieve", run_id=t["run_id"][at[view]])
    key = (ds.location.base, uri)
    with _INDEX_LOCK:
        hit = _INDEX_CACHE.get(key)
    if hit is None:  # loaded outside the lock; what this call put is what it returns
        idx, names = EmbeddingIndex.from_bytes(read_bytes(ds, uri))
        if ann_uri:
            idx.ann_ = HNSWIndex.from_bytes(read_bytes(ds, ann_uri))
        with _INDEX_LOCK:
            _INDEX_CACHE.clear()
            hit = _INDEX_CACHE[key] = (idx, names)
    return hit


def _recipe(ds: Dataset) -> tuple[dict[str, Any], int]:
    from audiopipe.store.frames import open_part

    t = ds.table("frames_index", ["part", "sr"])
    if t.num_rows == 0:
        raise StageInputError(f"dataset {ds.name!r} has no frames: ingest it first")
    part = t.column("part")[0].as_py()
    attrs = open_part(ds.location.frames_uri(part), ds.location.fsspec_options).attrs
    return dict(attrs["recipe"]), int(t.column("sr")[0].as_py())


def _file_vector(ds: Dataset, path: str, view: str, names: list[str]) -> np.ndarray:
    from audiopipe.audio import load

    if view == "tonal":
        return tonal_features(*load(path, TONAL_SR))
    import audiopipe.features as F

    recipe, sr = _recipe(ds)
    y, sr = load(path, sr)
    out = F.Extractor(recipe, sr)(y)
    cols: dict[str, float] = {}
    for feat, v in out.items():
        v = np.asarray(v, np.float64)
        for stat, s in (("mean", v.mean(axis=1)), ("std", v.std(axis=1))):
            if v.shape[0] == 1:
                cols[f"{feat}_{stat}"] = float(s[0])
            for i, x in enumerate(s):
                cols[f"{feat}_{stat}[{i}]"] = float(x)
    missing = [n for n in names if n not in cols]
    if missing:
        raise StageInputError(f"features {missing[:3]} of the index are not in the dataset recipe")
    return np.array([cols[n] for n in names])


def similar(ds: Dataset, query: str, k: int = 10, view: str = "timbre") -> list[dict[str, Any]]:
    """The ``k`` clips nearest to ``query`` (a clip id of ``ds`` or an audio file path).

    A clip id is answered from the index (the clip itself excluded); a file is decoded and
    its features computed with the dataset's recipe (timbre) or from audio (tonal).
    Returns ``[{rank, clip_id, uri, score}]`` with cosine scores, best first.

    Examples
    --------
    >>> similar(ds, "song.wav", k=3, view="tonal")  # doctest: +SKIP
    [{'rank': 1, 'clip_id': '…', 'uri': '…', 'score': 0.91}, ...]
    """
    out = similar_many(ds, [query], k=k, view=view)[0]
    if out["error"]:
        raise StageInputError(out["error"])
    return out["hits"]


def similar_many(
    ds: Dataset, queries: Iterable[str], k: int = 10, view: str = "timbre"
) -> list[dict[str, Any]]:
    """:func:`similar` for many queries with one index: ``[{query, hits, error}]``.

    A query that is neither a clip id nor a readable audio file gets ``hits = []`` and an
    ``error`` message; the others are answered.
    """
    from audiopipe.audio import AudioError

    if view not in VIEWS:
        raise StageInputError(f"unknown retrieval view {view!r} (known: {', '.join(VIEWS)})")
    idx, names = _load(ds, view)
    pos = {c: i for i, c in enumerate(idx.clip_ids_)}
    out = []
    for q in queries:
        q = str(q)
        try:
            if q in pos:
                hits = _query_embedded(idx, idx.embeddings_[pos[q]], k, exclude=q)
            elif os.path.exists(q) or "://" in q:
                hits = idx.query(_file_vector(ds, q, view, names), k=k)
            else:
                raise StageInputError(f"{q!r} is neither a clip id of {ds.name!r} nor a file")
        except (AudioError, StageInputError, OSError) as err:
            out.append({"query": q, "hits": [], "error": str(err)})
            continue
        hits = [{**h, "uri": ds.clip_uri(h["clip_id"])} for h in hits]
        out.append({"query": q, "hits": hits, "error": None})
    return out


def _query_embedded(
    idx: EmbeddingIndex, e: np.ndarray, k: int, exclude: str | None
) -> list[dict[str, Any]]:
    if idx.ann_ is not None:
        return _ann_hits(idx, e, k, exclude)
    s = idx.embeddings_ @ e
    if exclude is not None:
        s[idx.clip_ids_.index(exclude)] = -np.inf
    order = np.lexsort((np.arange(s.size), -s))[: min(k, s.size - (exclude is not None))]
    return [
        {"rank": i + 1, "clip_id": idx.clip_ids_[j], "score": float(s[j])}
        for i, j in enumerate(order)
    ]


# ------------------------------------------------------------------------------ metrics


def ranking_metrics(E: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """Precision@k and mean average precision of leave-one-out queries over embeddings.

    Every row of ``E`` (L2-normalised) queries all the others; relevant = same label.
    Queries without any other relevant item are skipped. P@k is the standard one: relevant
    items among the first ``k`` divided by ``k``. With fewer than ``k`` other items (``k >=
    len(E)``) the missing ranks count as misses, so P@k is at most ``(len(E) - 1) / k``: a
    warning says so.

    Examples
    --------
    >>> E = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], float)
    >>> E /= np.linalg.norm(E, axis=1, keepdims=True)
    >>> ranking_metrics(E, np.array(["a", "a", "b", "b"]), k=1)
    {'precision_at_k': 1.0, 'map': 1.0, 'n_queries': 4}
    """
    E = np.asarray(E, np.float32)
    labels = np.asarray(labels)
    n = E.shape[0]
    if note := _ceiling_note(n, k):
        warnings.warn(note, stacklevel=2)
    p_at_k, aps = [], []
    for a in range(0, n, 512):
        S = E[a : a + 512] @ E.T
        for r in range(S.shape[0]):
            i = a + r
            s = S[r].copy()
            s[i] = -np.inf
            order = np.lexsort((np.arange(n), -s))[: n - 1]
            rel = labels[order] == labels[i]
            n_rel = int(rel.sum())
            if n_rel == 0:
                continue
            p_at_k.append(rel[:k].sum() / k)
            hits = np.cumsum(rel)
            aps.append(float((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / n_rel))
    return {
        "precision_at_k": float(np.mean(p_at_k)) if p_at_k else float("nan"),
        "map": float(np.mean(aps)) if aps else float("nan"),
        "n_queries": len(aps),
    }


def evaluate(ds: Dataset, label: str, view: str = "timbre", k: int = 10) -> dict[str, float]:
    """P@k and mAP of the stored ``view`` index with ``label`` as relevance (query excluded)."""
    from audiopipe.stages._common import label_column

    labels = label_column(ds, label)
    ids = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    by_id = dict(zip(ids, labels, strict=True))
    idx, _ = _load(ds, view)
    lab = np.array([by_id[c] for c in idx.clip_ids_], dtype=object)
    keep = np.array([v not in (None, "") for v in lab])
    m = ranking_metrics(idx.embeddings_[keep], lab[keep].astype(str), k=k)
    return {f"precision_at_{k}": m["precision_at_k"], "map": m["map"], "n_queries": m["n_queries"]}


def _ceiling_note(n: int, k: int) -> str | None:
    """What P@k can reach with ``n`` items (None: all of 0..1)."""
    if 1 < n <= k:
        return (f"precision at k={k} with {n - 1} other items per query: at most "
                f"{(n - 1) / k:.3g} even if all are relevant (missing ranks are misses)")
    return None

"""Query-by-example retrieval: exact cosine index, tonal view, dataset stage, fsdd digits."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

import audiopipe
import audiopipe.features as F
from audiopipe.config import ConfigError, parse_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.stages import retrieve as rt
from audiopipe.stages import run_stage
from audiopipe.stages._common import StageInputError

from ._ingest import write_csv

SR = 22050


def ingest(folder: Path, out: Path, name: str, labels: Path) -> audiopipe.Dataset:
    cfg = parse_config(
        {
            "storage": str(out),
            "datasets": {
                name: {
                    "source": str(folder),
                    "labels": {"path": str(labels), "on": "path"},
                    "sample_rate": SR,
                }
            },
        }
    )
    plan = plan_ingest(cfg, name)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(out), name)


def test_index_finds_same_cluster_and_metrics_match_hand_computation():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 6)) * 5
    X = np.repeat(centres, 10, axis=0) + rng.standard_normal((30, 6)) * 0.3
    labels = np.repeat(["a", "b", "c"], 10)
    idx = rt.EmbeddingIndex().fit(X, [f"c{i}" for i in range(30)])
    hits = idx.query(X[12], k=9, exclude="c12")
    assert [h["rank"] for h in hits] == list(range(1, 10))
    assert all(10 <= int(h["clip_id"][1:]) < 20 for h in hits) and "c12" not in [
        h["clip_id"] for h in hits
    ]
    assert hits[0]["score"] >= hits[-1]["score"]
    m = rt.ranking_metrics(idx.embeddings_, labels, k=9)
    assert m["precision_at_k"] == 1.0 and m["map"] == 1.0 and m["n_queries"] == 30
    # ranked by hand (cosines): q0 -> 1,3,2 (AP 1/3), q1 -> 0,3,2 (1/2), q2 -> 3,1,0 (1/3),
    # q3 -> 2,1,0 (1/2)
    E = np.array([[1, 0], [0.9, 0.1], [0.6, 0.8], [0.7, 0.7]])
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    m = rt.ranking_metrics(E, np.array(["q", "x", "q", "x"]), k=2)
    assert m["map"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    # shuffled labels give chance-level precision
    m = rt.ranking_metrics(idx.embeddings_, rng.permutation(labels), k=9)
    assert m["precision_at_k"] < 0.6


def test_precision_at_k_divides_by_k_and_warns_when_fewer_candidates():
    # 4 clips, 2 labels, perfectly separated: each query has 3 others, 1 relevant
    E = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]])
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    labels = np.array(["a", "a", "b", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # k below the candidates: no warning
        assert rt.ranking_metrics(E, labels, k=2)["precision_at_k"] == pytest.approx(1 / 2)
    assert rt.ranking_metrics(E, labels, k=3)["precision_at_k"] == pytest.approx(1 / 3)
    with pytest.warns(UserWarning, match="k=10 with 3 other items"):
        m = rt.ranking_metrics(E, labels, k=10)
    assert m["precision_at_k"] == pytest.approx(1 / 10)  # was 1/3: P@3 under P@10's name
    assert m["map"] == 1.0


def click_track(bpm: float, dur: float = 8.0, sr: int = SR) -> np.ndarray:
    y = np.zeros(int(dur * sr), np.float32)
    period = 60.0 / bpm
    for t in np.arange(0.1, dur, period):
        i = int(t * sr)
        y[i : i + 200] += np.hanning(200).astype(np.float32) * np.sin(np.arange(200) * 0.9)
    return y


def test_tempo_and_chroma_of_known_signals():
    for bpm in (90.0, 120.0, 150.0):
        got, clarity = rt.tempo(F.onset_strength(y=click_track(bpm), sr=SR, n_mels=64), SR)
        assert abs(got - bpm) / bpm < 0.03, (bpm, got)
        assert clarity > 0.3
    t = np.arange(3 * SR) / SR
    triad = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32)
    v = rt.tonal_features(triad, SR)
    assert v.shape == (26,)
    assert set(np.argsort(v[:12])[-3:]) == {0, 4, 7}  # C, E, G


def test_tonal_silence_short_stereo_deterministic():
    for y in (np.zeros(SR, np.float32), np.zeros(50, np.float32), np.zeros(0, np.float32)):
        v = rt.tonal_features(y, SR)
        assert v.shape == (26,) and np.all(np.isfinite(v)) and not np.any(v[:24])
    y = click_track(100, 3) + 0.1 * np.sin(np.arange(3 * SR) * 0.1).astype(np.float32)
    mono = rt.tonal_features(y, SR)
    assert np.allclose(rt.tonal_features(np.stack([y, y], 1), SR), mono, atol=1e-6)
    assert np.allclose(rt.tonal_features(np.stack([y, y]), SR), mono, atol=1e-6)
    assert np.array_equal(rt.tonal_features(y, SR), mono)
    with pytest.raises(ValueError, match="NaN"):
        rt.EmbeddingIndex().fit(np.full((2, 2), np.nan), ["a", "b"])


def test_run_similar_evaluate_on_demo_corpus(tmp_path):
    from audiopipe.demo import make_demo_corpus

    src = make_demo_corpus(tmp_path / "demo", n_per_class=4, seed=0)
    ds = ingest(src, tmp_path / "out", "demo", src / "labels.csv")
    with pytest.raises(StageInputError, match="no retrieval index"):
        rt.similar(ds, "x", k=3)
    rep = run_stage(ds, "retrieve", {"label": "label", "k": 3})
    assert set(rep["views"]) == {"timbre", "tonal"} and rep["views"]["timbre"]["n_clips"] == 24
    assert rep["views"]["timbre"]["warnings"] == []
    idx = ds.table("retrieval_indexes").to_pandas().set_index("view")
    assert all(rep["run_id"] in u for u in idx.uri)  # index files are in the run's folder
    clips = ds.table("clips").to_pylist()
    cid = clips[0]["clip_id"]
    for view in rt.VIEWS:
        hits = rt.similar(ds, cid, k=5, view=view)
        assert len(hits) == 5 and cid not in [h["clip_id"] for h in hits]
        assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and all(h["uri"] for h in hits)
        assert hits == rt.similar(ds, cid, k=5, view=view)  # deterministic
        # a file of the dataset finds itself first
        path = clips[3]["uri"].removeprefix("file://")
        top = rt.similar(ds, path, k=1, view=view)[0]
        assert top["clip_id"] == clips[3]["clip_id"] and top["score"] > 0.99
        m = rt.evaluate(ds, "label", view=view, k=3)
        assert m["precision_at_3"] > 1 / 6 and 0 < m["map"] <= 1
        # the stage scored the same index the same way (metrics rows, evaluation reference)
        mt = ds.table("metrics").to_pandas()
        row = mt[(mt.run_id == rep["run_id"]) & (mt.split == view)].set_index("metric")
        assert row.loc["precision_at_3", "value"] == pytest.approx(m["precision_at_3"])
        assert set(row.evaluation) == {"reference"}
    assert rt.evaluate(ds, "label", view="timbre", k=3)["precision_at_3"] > 0.6
    # many queries in one call: clip ids and files, a bad one answered with its error
    path = clips[3]["uri"].removeprefix("file://")
    many = rt.similar_many(ds, [cid, "no-such-clip", path], k=2)
    assert [a["query"] for a in many] == [cid, "no-such-clip", path]
    assert len(many[0]["hits"]) == 2 and many[1]["error"] and not many[1]["hits"]
    assert many[2]["hits"][0]["clip_id"] == clips[3]["clip_id"]
    with pytest.raises(StageInputError, match="neither a clip id"):
        rt.similar(ds, "no-such-clip", k=3)
    with pytest.raises(ConfigError, match=r"retrieve\.views: must be one of timbre, tonal"):
        run_stage(ds, "retrieve", {"views": ["colour"]})
    # exact by default at this size; the HNSW graph when asked, answering the same here
    assert idx.ann_uri.isna().all()
    exact = rt.similar(ds, cid, k=5)
    rep = run_stage(ds, "retrieve", {"views": ["timbre"], "index": "hnsw"})
    ann_uri = ds.table("retrieval_indexes").to_pandas().ann_uri[0]
    assert ann_uri.endswith("retrieve_timbre.faiss") and rep["run_id"] in ann_uri
    assert rt._load(ds, "timbre")[0].ann_ is not None
    approx = rt.similar(ds, cid, k=5)
    assert [h["clip_id"] for h in approx] == [h["clip_id"] for h in exact]
    assert [h["score"] for h in approx] == pytest.approx([h["score"] for h in exact], abs=1e-5)
    with pytest.warns(UserWarning, match="k=30 with 23 other items"):
        big = run_stage(ds, "retrieve", {"label": "label", "k": 30, "views": ["timbre"]})
    assert "at most 0.767" in big["views"]["timbre"]["warnings"][0]  # the report says it too


def test_fsdd_digits_precision(corpora, tmp_path):
    src = tmp_path / "fsdd"
    (src / "recordings").mkdir(parents=True)
    rows = list(csv.DictReader(open(corpora / "fsdd" / "labels.csv")))
    rows = [r for r in rows if r["speaker"] == "jackson"][::2]  # 250 clips, 10 digits
    for r in rows:
        (src / r["path"]).symlink_to(corpora / "fsdd" / r["path"])
    write_csv(src / "labels.csv", rows)
    ds = ingest(src, tmp_path / "out", "fsdd", src / "labels.csv")
    run_stage(ds, "retrieve", {"views": ["timbre"]})
    m = rt.evaluate(ds, "digit", view="timbre", k=10)
    assert m["n_queries"] == 250
    assert m["precision_at_10"] > 0.5 and m["map"] > 0.3  # chance is 0.1


def test_hnsw_recall_against_exact_search():
    from audiopipe.stages._ann import HNSWIndex, exact_top_k, recall_at_k

    rng = np.random.default_rng(0)
    # 20 clusters in 32 dimensions, as clip embeddings of a few kinds of sound
    centres = rng.standard_normal((20, 32)) * 2
    E = (centres[rng.integers(0, 20, 6000)] + rng.standard_normal((6000, 32))).astype(np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    Q = E[rng.choice(6000, 200, replace=False)] + 0.05 * rng.standard_normal((200, 32)).astype(
        np.float32
    )
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    _, exact = exact_top_k(E, Q, k=10)
    ann = HNSWIndex(M=16, ef_construction=40, ef_search=64).fit(E)
    s, approx = ann.search(Q, k=10)
    assert recall_at_k(approx, exact) > 0.9
    assert (np.diff(s, axis=1) <= 1e-6).all()  # best first
    # its scores are the cosines
    np.testing.assert_allclose(s[:, 0], np.einsum("ij,ij->i", Q, E[approx[:, 0]]), atol=1e-5)
    # a tiny ef_search finds less: the recall is measured, not assumed
    ann.ef_search = 1
    assert recall_at_k(ann.search(Q, k=10)[1], exact) < recall_at_k(approx, exact)
    # round trip through bytes
    back = HNSWIndex.from_bytes(HNSWIndex(M=16).fit(E[:500]).to_bytes())
    assert back.n == 500 and back.search(E[:3], k=1)[1][:, 0].tolist() == [0, 1, 2]


class _FakeDataset:
    """Just what ``_load`` reads: a name, a location and a ``retrieval_indexes`` table."""

    name = "fake"
    location = type("Loc", (), {"base": "mem://fake"})()

    rows: dict = {}

    def table_names(self):
        return ["retrieval_indexes"]

    def table(self, name):
        import pyarrow as pa

        return pa.table(self.rows)


@pytest.fixture()
def fake_indexes(monkeypatch):
    """Five views whose "index" is the view's uri (no files): ``_load`` runs without I/O."""
    import audiopipe.stages._common as common

    views = [f"v{i}" for i in range(5)]
    table = {"view": views, "uri": [f"mem://{v}.npz" for v in views], "ann_uri": [None] * 5}
    monkeypatch.setattr(_FakeDataset, "rows", table)
    monkeypatch.setattr(common, "read_bytes", lambda ds, uri: uri.encode())
    monkeypatch.setattr(rt.EmbeddingIndex, "from_bytes",
                        classmethod(lambda cls, data: (object(), [data.decode()])))
    monkeypatch.setattr(rt, "_INDEX_CACHE", {})
    return views


def test_load_returns_what_it_cached_when_another_thread_empties_the_cache(
    fake_indexes, monkeypatch
):
    # _load emptied the shared cache, stored its index and read it back unlocked: another
    # thread's clear() between the store and the read gave a KeyError
    class ClearedRightAfterStore(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            self.clear()  # what a concurrent load of another index does at the worst moment

    monkeypatch.setattr(rt, "_INDEX_CACHE", ClearedRightAfterStore())
    assert rt._load(_FakeDataset(), "v1")[1] == ["mem://v1.npz"]


def test_load_from_many_threads_gives_each_its_own_index(fake_indexes):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(8)

    def work(t):
        start.wait()
        rng = np.random.default_rng(t)
        return [(v, rt._load(_FakeDataset(), v)[1]) for v in rng.choice(fake_indexes, 200)]

    with ThreadPoolExecutor(8) as pool:
        got = [pair for res in pool.map(work, range(8)) for pair in res]
    assert len(got) == 1600 and all(names == [f"mem://{v}.npz"] for v, names in got)


def test_silent_clips_are_alike_and_an_index_without_spread_says_so(tmp_path):
    """Review 3 finding 5: six silent clips scored 0.996 to -0.98 against each other (their
    float32 rounding, scaled to unit variance, was the whole embedding)."""
    import soundfile as sf

    src = tmp_path / "src"
    src.mkdir()
    silent = [f"s{i}.wav" for i in range(4)]
    for i, name in enumerate(silent):
        sf.write(src / name, np.zeros(SR * (i + 1) // 2, np.float32), SR)
    labels = write_csv(src / "labels.csv", [{"path": n, "label": "x"} for n in silent])
    ds = ingest(src, tmp_path / "out", "d", labels)
    with pytest.warns(UserWarning, match="differ in no feature"):
        rep = run_stage(ds, "retrieve", {"views": ["timbre"]})
    assert "cannot be standardised" in rep["views"]["timbre"]["warnings"][0]
    hits = rt.similar(ds, str(src / "s0.wav"), k=4)
    assert len(hits) == 4 and min(h["score"] for h in hits) > 0.999
    # among clips that differ the silent ones find each other first, and score as alike
    sf.write(src / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR), SR)
    sf.write(src / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(SR), SR)
    labels = write_csv(src / "labels.csv", [{"path": n, "label": "x"} for n in
                                            [*silent, "tone.wav", "noise.wav"]])
    ds = ingest(src, tmp_path / "out", "d", labels)
    rep = run_stage(ds, "retrieve", {"views": ["timbre"]})
    assert rep["views"]["timbre"]["warnings"] == []
    hits = rt.similar(ds, str(src / "s1.wav"), k=6)
    assert {h["uri"].rsplit("/", 1)[-1] for h in hits[:4]} == set(silent)
    assert min(h["score"] for h in hits[:4]) > 0.999


def test_similar_refuses_a_timbre_index_built_before_a_rebuild_with_another_recipe(tmp_path):
    """Review 3 finding 2: after `rebuild` the index held the old recipe's embeddings and a
    file's query was computed with the new one (noise0 -> tone0 first)."""
    import pyarrow as pa
    import soundfile as sf

    from . import _ingest

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for i in range(4):
        sf.write(src / f"tone{i}.wav", 0.5 * np.sin(2 * np.pi * 220 * (1 + i % 3) * t), SR)
        sf.write(src / f"noise{i}.wav", 0.1 * rng.standard_normal(SR), SR)
    labels = write_csv(src / "labels.csv", [{"path": p.name, "label": p.stem[:4]}
                                            for p in sorted(src.glob("*.wav"))])
    out = tmp_path / "out"
    ds = _ingest.ingest(out, "d", str(src), labels)
    built = run_stage(ds, "retrieve")
    q = str(src / "noise0.wav")
    assert rt.similar(ds, q, k=1)[0]["uri"].endswith("noise0.wav")
    recipe = {**F.DEFAULT_RECIPE, "n_fft": 512, "hop_length": 128}
    recipe.pop("sr")
    ds = _ingest.ingest(out, "d", str(src), labels, features=recipe, kind="rebuild")
    stale = r"recorded with it.*rebuilt since.*rebuild the index: run `audiopipe stage retrieve d`"
    for query in (q, ds.table("clips").column("clip_id")[0].as_py()):
        with pytest.raises(StageInputError, match=stale):
            rt.similar(ds, query, k=1)
    assert rt.similar(ds, q, k=1, view="tonal")[0]["uri"].endswith("noise0.wav")  # no recipe
    # an index listed before indexes recorded their recipe: its retrieve run's is checked ...
    old = ds.table("retrieval_indexes").drop_columns(["recipe_hash"])
    ds.write_table("retrieval_indexes", old)
    with pytest.raises(StageInputError, match=f"by run {built['run_id']} that wrote it"):
        rt.similar(ds, q, k=1)
    # ... and one whose run is not known is used, with a warning
    ds.write_table("retrieval_indexes", old.set_column(
        old.schema.get_field_index("run_id"), "run_id", pa.array(["gone"] * old.num_rows)))
    with pytest.warns(UserWarning, match="records no feature recipe"):
        rt.similar(ds, q, k=1)
    run_stage(ds, "retrieve")  # rebuilt under the new recipe: answered
    assert rt.similar(ds, q, k=1)[0]["uri"].endswith("noise0.wav")


def test_similar_reads_the_indexes_its_dataset_is_pinned_to(tmp_path):
    """Review 6 item 2: similar read ``retrieval_indexes`` at its latest version: the rows of
    a retrieve run killed after its commit were served, and a dataset opened at an older run
    was answered from today's indexes."""
    import pyarrow as pa
    import soundfile as sf
    from deltalake import write_deltalake

    from . import _ingest

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for i in range(3):
        sf.write(src / f"tone{i}.wav", 0.5 * np.sin(2 * np.pi * 220 * (1 + i) * t), SR)
        sf.write(src / f"noise{i}.wav", 0.1 * rng.standard_normal(SR), SR)
    labels = write_csv(src / "labels.csv", [{"path": p.name, "label": p.stem[:4]}
                                            for p in sorted(src.glob("*.wav"))])
    out = tmp_path / "out"
    ds = _ingest.ingest(out, "d", str(src), labels)
    first = run_stage(ds, "retrieve", {"views": ["timbre"]})
    run_stage(ds, "retrieve", {"views": ["timbre", "tonal"]})
    q = str(src / "noise0.wav")
    at_first = audiopipe.open_dataset(str(out), "d", run_id=first["run_id"])
    assert rt.similar(at_first, q, k=1)[0]["uri"].endswith("noise0.wav")
    with pytest.raises(StageInputError, match="has no tonal retrieval index"):
        rt.similar(at_first, q, k=1, view="tonal")
    # a retrieve run killed after its commit: indexes whose files it never wrote
    loc = ds.location
    t = audiopipe.open_dataset(str(out), "d").table("retrieval_indexes")
    uri = t.schema.get_field_index("uri")
    ghost = t.set_column(uri, "uri", pa.array(
        [f"{loc.base}/ghost-{i}.idx" for i in range(t.num_rows)], pa.string()))
    write_deltalake(loc.table_uri("retrieval_indexes"), ghost, mode="overwrite")
    now = audiopipe.open_dataset(str(out), "d")
    for view in ("timbre", "tonal"):
        assert rt.similar(now, q, k=1, view=view)[0]["uri"].endswith("noise0.wav")


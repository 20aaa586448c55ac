"""recommend: ALS on known structure, ranking metrics, cold start on simulated listens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiopipe.stages import recommend
from audiopipe.stages._common import StageInputError

from ._ingest import ESC_RECIPE, ingest


def test_als_recovers_taste_blocks():
    rng = np.random.default_rng(0)
    R = np.kron(np.eye(3), np.ones((10, 8))) * rng.integers(1, 4, (30, 24))
    R[rng.random(R.shape) < 0.3] = 0  # hide some plays
    U, V = recommend.implicit_als(R, n_factors=3, iterations=10)
    S = U @ V.T
    block = np.kron(np.eye(3), np.ones((10, 8))).astype(bool)
    assert S[block].mean() > 0.5 and S[~block].mean() < 0.1
    # hidden in-block items still score above out-of-block items for every user
    hidden = block & (R == 0)
    for u in range(30):
        if hidden[u].any():
            assert S[u, hidden[u]].min() > S[u, ~block[u]].max()


def test_ranking_metrics_known_values():
    rel = np.array([1, 0, 1, 0, 0], bool)
    r, n = recommend.ranking_metrics(np.array([5, 4, 3, 2, 1.0]), rel, k=2)
    assert r == pytest.approx(0.5) and n == pytest.approx(1 / (1 + 1 / np.log2(3)))
    r, n = recommend.ranking_metrics(np.array([5, 1, 4, 2, 0.0]), rel, k=2)
    assert r == 1 and n == pytest.approx(1)
    assert np.isnan(recommend.ranking_metrics(np.ones(5), np.zeros(5, bool))[0])


def test_simulated_tastes_follow_classes_and_content_model_beats_random():
    rng = np.random.default_rng(1)
    classes = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), 30)
    X = np.repeat(np.eye(4) * 3, 30, axis=0) + rng.normal(0, 1, (120, 4))
    L1 = recommend.simulate_listens(classes, n_users=80, random_state=3)
    assert L1.equals(recommend.simulate_listens(classes, n_users=80, random_state=3))
    R = np.zeros((80, 120))
    np.add.at(R, (L1.user.str[4:].astype(int), L1.item), L1.plays)
    ev = recommend.evaluate_cold_start(R, X, recommend.ContentRecommender(n_factors=8))
    assert ev["model"]["ndcg@10"] > ev["random"]["ndcg@10"] + 0.15
    assert ev["model"]["ndcg@10"] > ev["popularity"]["ndcg@10"]


def test_run_on_demo_is_repeatable_and_writes_outputs(demo_ds):
    p = {"simulate": "label", "n_users": 60, "k": 5}
    r1 = recommend.run(demo_ds, p, run_id="a")
    r2 = recommend.run(demo_ds, p, run_id="b")
    assert r1["metrics"] == r2["metrics"] and r1["simulated"]
    assert r1["metrics"]["model"]["ndcg@5"] > r1["metrics"]["random"]["ndcg@5"]
    rec = demo_ds.table("recommendations").to_pandas()
    assert rec.groupby("user")["rank"].max().max() == 5 and rec.user.nunique() == 60
    sim = demo_ds.table("listens_simulated").to_pandas()
    played = set(zip(sim.user, sim.clip_id, strict=True))
    assert not any((u, c) in played for u, c in zip(rec.user, rec.clip_id, strict=True))
    m = demo_ds.table("metrics").to_pandas()
    assert {"popularity-baseline", "random-baseline"} <= set(m[m.stage == "recommend"].model_id)


def test_listens_file_by_path_and_errors(demo_ds, fresh_ds, tmp_path):
    uris = demo_ds.table("clips", ["uri"]).column("uri").to_pylist()
    names = ["/".join(u.split("/")[-2:]) for u in uris]  # e.g. tone/tone_000.wav
    rows = [(f"u{i % 7}", names[(i * 5) % len(names)], 1 + i % 3) for i in range(120)]
    f = tmp_path / "listens.csv"
    pd.DataFrame(rows, columns=["user", "clip", "plays"]).to_csv(f, index=False)
    r = recommend.run(demo_ds, {"listens": str(f), "k": 3}, run_id="l")
    assert r["n_users"] == 7 and not r["simulated"]
    with pytest.raises(StageInputError, match="'listens'"):
        recommend.run(fresh_ds, {}, run_id="x")
    pd.DataFrame({"who": ["a"], "clip": [names[0]]}).to_csv(f, index=False)
    with pytest.raises(StageInputError, match="'user'"):
        recommend.run(fresh_ds, {"listens": str(f)}, run_id="x")
    with pytest.raises(StageInputError, match="'nope'"):
        recommend.run(fresh_ds, {"simulate": "nope"}, run_id="x")
    assert "recommendations" not in fresh_ds.table_names()


def test_esc10_cold_start_simulated(corpora, tmp_path):
    esc = corpora / "esc10"
    ds = ingest(
        tmp_path,
        "esc",
        str(esc / "audio" / "[12]-*.ogg"),
        esc / "esc10.csv",
        16000,
        ESC_RECIPE,
        on="filename",
        root=esc / "audio",
    )
    r = recommend.run(ds, {"simulate": "category"}, run_id="esc")
    print("ESC-10 folds 1-2 (160 clips), SIMULATED listens, cold-start:", r["metrics"])
    m = r["metrics"]
    assert m["model"]["ndcg@10"] > m["random"]["ndcg@10"] + 0.1
    assert m["model"]["recall@10"] > m["random"]["recall@10"] + 0.1

"""recommend: ALS on known structure, ranking metrics, cold start on simulated listens."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from audiopipe.config import ConfigError
from audiopipe.stages import recommend, run_stage
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


def test_popularity_baseline_never_reads_held_out_plays():
    rng = np.random.default_rng(5)
    n_users, n_items = 60, 40
    X = rng.normal(0, 1, (n_items, 6))  # audio that says nothing about who plays what
    R = (rng.random((n_users, n_items)) < 0.08).astype(float)
    cold = np.sort(np.random.default_rng(0).permutation(n_items)[:8])  # evaluate_cold_start's
    R[:, cold] = 0
    R[:, cold[3]] = 1  # one held-out clip played by everybody: a leaky baseline ranks it first
    R[::7, cold[5]] = 1
    s = recommend.cold_start_popularity(R, X, cold)
    R2 = R.copy()
    R2[:, cold] = R[:, cold][:, ::-1]  # move the held-out plays around: nothing may change
    assert np.array_equal(s, recommend.cold_start_popularity(R2, X, cold))
    # the popularity the warm clips' audio predicts, not cold[3]'s plays, decides the ranking
    warm_only = R.copy()
    warm_only[:, cold] = 0
    assert np.array_equal(s, recommend.cold_start_popularity(warm_only, X, cold))
    ev = recommend.evaluate_cold_start(R, X, recommend.ContentRecommender(n_factors=4), 0.2, k=1)
    # ranking by held-out plays would put cold[3] first, a hit for every user: recall@1 = 1
    assert int(np.argmax(s)) not in (3, 5) and ev["popularity"]["recall@1"] == 0.0


def test_cold_start_popularity_from_audio():
    # popularity that follows the audio is learnt from the visible clips alone
    rng = np.random.default_rng(2)
    X = rng.normal(0, 1, (50, 3))
    p = 1 / (1 + np.exp(-2 * X[:, 0]))
    R = (rng.random((80, 50)) < p[None, :] * 0.5).astype(float)
    cold = np.arange(40, 50)
    s = recommend.cold_start_popularity(R, X, cold, ridge_alpha=1.0)
    assert np.corrcoef(s, X[cold, 0])[0, 1] > 0.9


def test_run_on_demo_is_repeatable_and_writes_outputs(demo_ds):
    p = {"simulate": "label", "n_users": 60, "k": 5}
    r1 = run_stage(demo_ds, "recommend", p, force=True)
    r2 = run_stage(demo_ds, "recommend", p, force=True)
    assert r1["evaluation"] == r2["evaluation"] and r1["simulated"]
    assert r1["evaluation"]["model"]["ndcg@5"] > r1["evaluation"]["random"]["ndcg@5"]
    assert r1["metrics"]["random.ndcg@5"] == r1["evaluation"]["random"]["ndcg@5"]
    ev = r1["evaluation"]
    assert r1["metrics"]["ndcg_gain_over_popularity@5"] == pytest.approx(
        ev["model"]["ndcg@5"] - ev["popularity"]["ndcg@5"], abs=2e-4
    )
    beats = ev["model"]["ndcg@5"] > ev["popularity"]["ndcg@5"]
    assert r1["note"].startswith("content model beats" if beats else "content model does NOT")
    rec = demo_ds.table("recommendations").to_pandas()
    assert rec.groupby("user")["rank"].max().max() == 5 and rec.user.nunique() == 60
    sim = demo_ds.table("listens_simulated").to_pandas()
    played = set(zip(sim.user, sim.clip_id, strict=True))
    assert not any((u, c) in played for u, c in zip(rec.user, rec.clip_id, strict=True))
    m = demo_ds.table("metrics").to_pandas()
    assert {"popularity-baseline", "random-baseline"} <= set(m[m.stage == "recommend"].model_id)
    assert set(m[m.stage == "recommend"].evaluation) == {"holdout"}


def test_listens_file_by_path_and_errors(demo_ds, fresh_ds, tmp_path):
    uris = demo_ds.table("clips", ["uri"]).column("uri").to_pylist()
    names = ["/".join(u.split("/")[-2:]) for u in uris]  # e.g. tone/tone_000.wav
    rows = [(f"u{i % 7}", names[(i * 5) % len(names)], 1 + i % 3) for i in range(120)]
    f = tmp_path / "listens.csv"
    pd.DataFrame(rows, columns=["user", "clip", "plays"]).to_csv(f, index=False)
    r = run_stage(demo_ds, "recommend", {"listens": str(f), "k": 3})
    assert r["n_users"] == 7 and not r["simulated"]
    # the listens file is an input: changed content, the stage runs again
    assert run_stage(demo_ds, "recommend", {"listens": str(f), "k": 3})["skipped"]
    pd.DataFrame(rows[:60], columns=["user", "clip", "plays"]).to_csv(f, index=False)
    assert run_stage(demo_ds, "recommend", {"listens": str(f), "k": 3})["skipped"] is None
    # a relative path is relative to the folder of datasets.yaml (base_dir)
    rel = run_stage(demo_ds, "recommend", {"listens": "listens.csv", "k": 3}, base_dir=str(tmp_path))
    assert rel["skipped"] and rel["run_id"] != r["run_id"]
    with pytest.raises(ConfigError, match="'listens'"):
        run_stage(fresh_ds, "recommend", {})
    pd.DataFrame({"who": ["a"], "clip": [names[0]]}).to_csv(f, index=False)
    with pytest.raises(StageInputError, match="'user'"):
        run_stage(fresh_ds, "recommend", {"listens": str(f)})
    with pytest.raises(StageInputError, match="'nope'"):
        run_stage(fresh_ds, "recommend", {"simulate": "nope"})
    assert "recommendations" not in fresh_ds.table_names()


def test_listens_rows_naming_no_clip_warned_and_bad_plays_refused(demo_ds, fresh_ds, tmp_path):
    uris = demo_ds.table("clips", ["uri"]).column("uri").to_pylist()
    names = ["/".join(u.split("/")[-2:]) for u in uris]
    rows = [(f"u{i % 6}", names[(i * 5) % len(names)], 1 + i % 3) for i in range(90)]
    rows += [("u6", "nope/typo.wav", 2), ("u0", "nope/typo.wav", 1), ("u1", "x/y.wav", 1)]
    f = tmp_path / "listens.csv"
    pd.DataFrame(rows, columns=["user", "clip", "plays"]).to_csv(f, index=False)
    with pytest.warns(UserWarning) as rec:
        r = run_stage(demo_ds, "recommend", {"listens": str(f), "k": 3})
    said = " | ".join(str(w.message) for w in rec)
    assert re.search(r"3 of 93 rows of listens file .*2 distinct", said) and "1 of 7 users" in said
    assert r["n_users"] == 6
    for user, plays, needle in (("u9", float("nan"), "no number of plays"),
                                ("u9", -2, "negative plays"), (None, 3, "have no user")):
        bad = [*rows[:4], (user, names[0], plays)]
        pd.DataFrame(bad, columns=["user", "clip", "plays"]).to_csv(f, index=False)
        with pytest.raises(StageInputError, match=needle) as err:
            run_stage(fresh_ds, "recommend", {"listens": str(f)})
        assert "listens.csv" in str(err.value) and "row 5 (user=" in str(err.value)
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
    r = run_stage(ds, "recommend", {"simulate": "category"})
    print("ESC-10 folds 1-2 (160 clips), SIMULATED listens, cold-start:", r["evaluation"])
    m = r["evaluation"]
    assert m["model"]["ndcg@10"] > m["random"]["ndcg@10"] + 0.1
    assert m["model"]["ndcg@10"] > m["popularity"]["ndcg@10"] + 0.1, r["note"]
    assert m["model"]["recall@10"] > m["random"]["recall@10"] + 0.1


def _dense_als(plays, n_factors=16, regularization=0.1, alpha=5.0, iterations=15, random_state=0):
    """The dense implementation this module had before the sparse one (the reference)."""
    R = np.asarray(plays, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    n_u, n_i = R.shape
    U = rng.normal(0, 0.01, (n_u, n_factors))
    V = rng.normal(0, 0.01, (n_i, n_factors))
    P = (R > 0).astype(np.float64)
    C = 1.0 + alpha * np.log1p(R)
    eye = regularization * np.eye(n_factors)

    def solve(Y, Cm, Pm):
        YtY = Y.T @ Y
        out = np.empty((Cm.shape[0], Y.shape[1]))
        for u in range(Cm.shape[0]):
            nz = np.flatnonzero(Cm[u] != 1.0)
            Yn, cn = Y[nz], Cm[u, nz]
            out[u] = np.linalg.solve(YtY + (Yn.T * (cn - 1.0)) @ Yn + eye, (Yn.T * cn) @ Pm[u, nz])
        return out

    for _ in range(iterations):
        U = solve(V, C, P)
        V = solve(U, C.T, P.T)
    return U, V


def test_sparse_als_and_top_k_equal_the_dense_computation(monkeypatch):
    import scipy.sparse as sp

    from audiopipe.stages.recommend import model

    rng = np.random.default_rng(4)
    R = rng.poisson(0.4, (70, 55)).astype(float) * (rng.random((70, 55)) < 0.3)
    R[5] = 0  # a user with no plays, an item nobody played
    R[:, 9] = 0
    U0, V0 = _dense_als(R, n_factors=6, iterations=6)
    monkeypatch.setattr(model, "ROW_BLOCK", 16)  # several blocks of rows
    for plays in (R, sp.csr_array(R), sp.coo_array(R)):
        U, V = recommend.implicit_als(plays, n_factors=6, iterations=6)
        np.testing.assert_allclose(U, U0, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(V, V0, rtol=1e-7, atol=1e-9)
    # top k unplayed per user, in blocks of users, against the dense ranking
    S = U0 @ V0.T
    S[R > 0] = -np.inf
    want = []
    for u in range(R.shape[0]):
        top = np.argsort(-S[u], kind="stable")[:7]
        want += [(u, int(i), r + 1) for r, i in enumerate(top) if np.isfinite(S[u, i])]
    got_u, got_i, got_s, got_r = recommend.top_k_unplayed(U0, V0, sp.csr_array(R), 7, block_bytes=8 * 55 * 9)
    assert list(zip(got_u.tolist(), got_i.tolist(), got_r.tolist(), strict=True)) == want
    np.testing.assert_allclose(got_s, [S[u, i] for u, i, _ in want])
    with pytest.raises(ValueError, match="non-negative"):
        recommend.implicit_als(-R)


def test_zero_regularization_is_refused():
    # with 8 items and 16 factors YᵀY has rank 8: the users' solve was a LinAlgError (and
    # with more items the factors' scale drifts); the stage refuses it before any work
    from audiopipe.stages.runner import check_params

    (problem,) = check_params("recommend", {"simulate": "label", "regularization": 0}, where="r")
    assert "regularization: must be > 0" in problem
    assert check_params("recommend", {"simulate": "label", "regularization": 1e-6}, where="r") == []
    plays = (np.random.default_rng(0).random((50, 8)) < 0.3).astype(float)
    with pytest.raises(ValueError, match="regularization"):
        recommend.implicit_als(plays, n_factors=16, regularization=0.0)
    U, V = recommend.implicit_als(plays, n_factors=16, regularization=0.1, iterations=2)
    assert np.isfinite(U).all() and np.isfinite(V).all()

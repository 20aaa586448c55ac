"""classify: a test group read at its most confident frequency warp (``test_warps``:
maximum-likelihood VTLN at test time, chosen on the FSDD tuning speakers,
``benchmarks/tune_classify_gate.py``)."""

from __future__ import annotations

import numpy as np

import audiopipe
from audiopipe.stages import classify, run_stage
from audiopipe.stages.classify.model import most_confident_view, oof_proba_views

from .test_classify import chirp_ds  # noqa: F401  (the module-scoped chirp dataset)


def test_each_held_out_group_gets_the_view_that_undoes_its_shift():
    """Three speakers; the third reads every class 2.5 higher (its "b" sits on the
    boundary with "c"). Models fitted on the unshifted ones predict the two others in three
    readings; the most confident reading of the shifted speaker is the one that undoes the
    shift, the unshifted one keeps his own, and the shifted speaker's accuracy rises."""
    rng = np.random.default_rng(0)
    y = np.tile(np.repeat(["a", "b", "c"], 15), 3)
    g = np.repeat(["s0", "s1", "s2"], 45)
    X = np.array([{"a": -4.0, "b": 0.0, "c": 4.0}[v] for v in y])[:, None]
    X = X + rng.normal(0, 0.6, X.shape) + np.where(g == "s2", 2.5, 0.0)[:, None]
    idx = {s: np.flatnonzero(g == s) for s in ("s0", "s1", "s2")}
    splits = [(idx["s0"], idx["s1"]), (np.r_[idx["s0"], idx["s1"]], idx["s2"])]
    views = {1.25: X - 2.5, 0.75: X + 2.5}
    P = oof_proba_views(classify.ClipClassifier(), X, y, splits, np.unique(y), views=views)
    assert set(P) == {1.0, 1.25, 0.75}
    te = g != "s0"  # (s0 is never held out here)
    P = {k: v[te] for k, v in P.items()}
    Q, chosen = most_confident_view(P, g[te])
    assert chosen == {"s1": 1.0, "s2": 1.25}
    s2, yt, classes = g[te] == "s2", y[te], np.unique(y)
    before = np.mean(classes[P[1.0][s2].argmax(1)] == yt[s2])
    after = np.mean(classes[Q[s2].argmax(1)] == yt[s2])
    assert after > before + 0.2 and after > 0.9
    assert np.array_equal(Q[~s2], P[1.0][~s2])
    # without groups (per-clip features) there is nothing to choose per group
    assert most_confident_view(P, None)[0] is P[1.0]


def test_stage_and_predict_read_each_group_at_its_most_confident_warp(chirp_ds):  # noqa: F811
    from audiopipe.stages._common import load_model
    from audiopipe.stages.classify.select import _member_probs, predict_bundle

    p = {"target": "label", "groups": "group", "candidates": ["stats"], "features": ["mfcc"],
         "group_norm": True}
    default = audiopipe.stages.params.resolve(classify.Classify.params, p)["test_warps"]
    assert 1.0 not in default and min(default) < 1.0 < max(default)
    r = run_stage(chirp_ds, "classify", p)
    m = r["metrics"]
    warps = {k: v for k, v in m.items() if k.startswith("test_warp[")}
    assert set(warps) == {"test_warp[g0]", "test_warp[g1]", "test_warp[g2]"}
    assert set(warps.values()) <= {1.0, *default} and "frequency warp" in r["why"]
    off = run_stage(chirp_ds, "classify", {**p, "test_warps": []})["metrics"]
    assert not any(k.startswith("test_warp[") for k in off)
    bundle = load_model(chirp_ds, r["model"], trusted=classify.TRUSTED)
    assert bundle["test_warps"] == sorted(default)
    ids = chirp_ds.table("clips").column("clip_id").to_pylist()
    g = np.array(chirp_ds.table("clips").column("group").to_pylist(), dtype=object)
    _, prob, _, _ = predict_bundle(bundle, chirp_ds, ids, g)
    # each group's probabilities are those of the warp its clips are most confident at
    frames = classify.candidates.Frames(chirp_ds, ids)
    col = {c: i for i, c in enumerate(bundle["classes"])}
    rows = list(range(len(ids)))
    per = {a: _member_probs(bundle["estimator"], frames, g, bundle["params"], rows, col,
                            len(col), 2.0, warp=a) for a in [1.0, *default]}
    assert not np.allclose(per[1.0], per[max(default)])  # the warp reaches the features
    for grp in np.unique(g):
        k = g == grp
        conf = {a: np.mean(np.log(P[k].max(1) + 1e-9)) for a, P in per.items()}
        best = max(conf, key=conf.get)
        assert np.allclose(prob[k], per[best][k].max(1))
    plain = predict_bundle({**bundle, "test_warps": []}, chirp_ds, ids, g)[1]
    assert np.allclose(plain, per[1.0].max(1))

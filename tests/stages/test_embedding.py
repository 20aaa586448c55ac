"""The exact cosine index of retrieve: columns constant up to rounding weigh nothing, an index
without spread keeps the raw features (review 3 finding 5)."""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.stages._embedding import EmbeddingIndex


def test_a_column_constant_up_to_rounding_weighs_nothing():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((6, 2))
    X = np.hstack([real, 440 + 1e-6 * rng.standard_normal((6, 1))])
    idx = EmbeddingIndex().fit(X, list("abcdef"))
    q = X[0].copy()
    q[2] = 440 + 3e-6  # the same clip, a rounding-level change in the constant column
    s = idx.scores(q)[0]
    # scaled to unit variance the rounding noise weighed as much as a real feature (0.3)
    assert s[0] > 0.999
    # and the ranking is the one of the real columns alone
    alone = EmbeddingIndex().fit(real, list("abcdef")).scores(real[0])[0]
    assert np.array_equal(np.argsort(-s), np.argsort(-alone))
    assert np.allclose(s, alone, atol=1e-5)


def test_a_features_coefficients_share_its_magnitude():
    """Silent clips: the first MFCC is -1131 give or take float32 rounding, the others are
    rounding around 0 (their own magnitude is the noise); a real feature tells clips apart."""
    rng = np.random.default_rng(1)
    n = 8
    c0 = -1131.37 + 1e-4 * rng.standard_normal(n)
    c_rest = 5e-6 * rng.standard_normal((n, 3))
    zcr = np.repeat([0.1, 0.3], n // 2) + 1e-3 * rng.standard_normal(n)
    X = np.column_stack([c0, c_rest, zcr])
    groups = ["mfcc"] * 4 + ["zcr"]
    idx = EmbeddingIndex().fit(X, [str(i) for i in range(n)], groups=groups)
    S = idx.scores(X)
    same = np.equal.outer(zcr > 0.2, zcr > 0.2)
    assert S[same].min() > 0.99 and S[~same].max() < -0.99
    # each column its own magnitude: the rounding of c1..c3 counts as features
    S_alone = EmbeddingIndex().fit(X, [str(i) for i in range(n)]).scores(X)
    assert S_alone[same].min() < 0.9
    with pytest.raises(ValueError, match="groups names 2 columns"):
        EmbeddingIndex().fit(X, [str(i) for i in range(n)], groups=["a", "b"])


def test_an_index_without_spread_keeps_the_raw_features_and_says_so():
    # one clip: standardised, its own features scored 0 against it
    with pytest.warns(UserWarning, match="1 clip.*cannot be standardised"):
        idx = EmbeddingIndex().fit(np.array([[1.0, 2.0, 3.0]]), ["a"])
    assert idx.query(np.array([1.0, 2.0, 3.0]), k=1)[0]["score"] == pytest.approx(1.0)
    assert idx.note_ and "raw features" in idx.note_
    # identical clips up to rounding (silent clips of other lengths): they scored -1 to 1
    X = np.tile(np.array([[-1131.37, 5.0, 2.0]]), (4, 1))
    X[:, 0] += np.array([0, 2e-5, 1.2e-4, 1.7e-4])
    with pytest.warns(UserWarning, match="4 clip.*differ in no feature"):
        idx = EmbeddingIndex().fit(X, list("abcd"))
    assert idx.scores(X[0])[0] == pytest.approx(np.ones(4), abs=1e-6)
    # clips that differ: standardised, no note
    assert EmbeddingIndex().fit(np.eye(3), list("abc")).note_ is None

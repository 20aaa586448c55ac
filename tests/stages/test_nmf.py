"""The one NMF, against a known answer; the callers use it."""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.stages._nmf import kl_divergence, nmf


def test_fixed_dictionary_recovers_the_known_activations():
    # V = W0 H0 exactly, W0 of full column rank: the KL optimum over H is H0 (divergence 0)
    rng = np.random.default_rng(0)
    W0 = rng.uniform(0.05, 1, (30, 4))
    H0 = rng.uniform(0.05, 1, (4, 50))
    _, H = nmf(W0 @ H0, W=W0, max_iter=4000)
    assert np.abs(H - H0).max() < 0.02
    assert kl_divergence(W0 @ H0, W0 @ H) < 1e-3


@pytest.mark.parametrize("loss", ["kullback-leibler", "frobenius"])
def test_learned_factorisation_fits_and_only_improves_with_iterations(loss):
    rng = np.random.default_rng(1)
    V = rng.uniform(0.1, 1, (20, 3)) @ rng.uniform(0.1, 1, (3, 40))

    def err(W, H):
        return kl_divergence(V, W @ H) if loss == "kullback-leibler" else float(((V - W @ H) ** 2).sum())

    errs = [err(*nmf(V, 3, beta_loss=loss, max_iter=n)) for n in (5, 20, 100, 500)]
    assert all(b <= a * (1 + 1e-5) for a, b in zip(errs, errs[1:], strict=False))
    assert errs[-1] < 0.01 * errs[0]
    W, H = nmf(V, 3, beta_loss=loss, max_iter=50)
    assert np.allclose(W.sum(axis=0), 1.0, atol=1e-5) and (W >= 0).all() and (H >= 0).all()
    assert np.array_equal(W, nmf(V, 3, beta_loss=loss, max_iter=50)[0])  # deterministic


def test_l1_penalty_shrinks_the_activations_and_bad_input_is_refused():
    rng = np.random.default_rng(2)
    W = rng.uniform(0, 1, (25, 6))
    V = W[:, :2] @ rng.uniform(0, 1, (2, 30))
    sums = [nmf(V, W=W, max_iter=300, l1_H=a)[1].sum() for a in (0.0, 1.0, 3.0)]
    assert sums[0] > sums[1] > sums[2]  # the penalty is on sum(H)
    with pytest.raises(ValueError, match="non-negative"):
        nmf(-np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="beta_loss"):
        nmf(np.ones((3, 3)), 2, beta_loss="itakura")


def test_both_callers_use_it():
    import inspect

    from audiopipe.stages import separate
    from audiopipe.stages.transcribe import poly

    for mod in (separate, poly):
        src = inspect.getsource(mod)
        assert "audiopipe.stages._nmf import nmf" in src
        assert "W.T @ R" not in src  # no multiplicative update loop of their own

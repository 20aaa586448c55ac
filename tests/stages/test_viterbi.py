"""The one Viterbi decoder, tested against brute force, and the models built on it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from audiopipe.stages._viterbi import Predecessors, dense_predecessors, viterbi
from audiopipe.stages.segment.periodic import decode_sounds


def _brute(E: np.ndarray, logA: np.ndarray, init: np.ndarray) -> tuple[float, tuple]:
    T, K = E.shape
    best = (-np.inf, ())
    for path in itertools.product(range(K), repeat=T):
        s = init[path[0]] + E[0, path[0]]
        for t in range(1, T):
            s += logA[path[t - 1], path[t]] + E[t, path[t]]
        if s > best[0] + 1e-12:
            best = (s, path)
    return best


def _score(E, logA, init, path):
    return init[path[0]] + E[0, path[0]] + sum(
        logA[path[t - 1], path[t]] + E[t, path[t]] for t in range(1, len(path))
    )


@pytest.mark.parametrize("seed", range(6))
def test_dense_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    T, K = 6, 3
    E = np.log(rng.dirichlet(np.ones(K), T))
    A = rng.dirichlet(np.ones(K), K)
    A[0, 2] = 0.0  # a forbidden move
    init = np.log(rng.dirichlet(np.ones(K)))
    with np.errstate(divide="ignore"):
        logA = np.log(A)
    best, path = _brute(E, logA, init)
    got = viterbi(E, logA, log_init=init)
    assert _score(E, logA, init, got) == pytest.approx(best)
    assert tuple(got) == path


def test_sparse_and_time_varying_forms_agree_with_dense():
    rng = np.random.default_rng(7)
    T, K = 40, 5
    E = np.log(rng.dirichlet(np.ones(K), T))
    logA = np.log(rng.dirichlet(np.ones(K), K))
    dense = viterbi(E, logA)
    pred = dense_predecessors(logA)
    assert np.array_equal(viterbi(E, pred), dense)
    varying = Predecessors(pred.src, np.broadcast_to(pred.logw, (T, K, K)).copy())
    assert np.array_equal(viterbi(E, varying), dense)
    # a banded model (moves of at most one state) equals the dense one with -inf elsewhere
    band = np.full((K, K), -np.inf)
    for i in range(K):
        for j in (i - 1, i, i + 1):
            if 0 <= j < K:
                band[i, j] = np.log(1 / 3)
    src = np.array([[max(j - 1, 0), j, min(j + 1, K - 1)] for j in range(K)])
    w = np.array([[band[s, j] if s != j or d == 1 else -np.inf for d, s in enumerate(row)]
                  for j, row in enumerate(src)])
    assert np.array_equal(viterbi(E, Predecessors(src, w)), viterbi(E, band))
    # a final weight forces the last state
    final = np.full(K, -np.inf)
    final[3] = 0.0
    assert viterbi(E, logA, log_final=final)[-1] == 3


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="n_frames, n_states"):
        viterbi(np.zeros(3), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="do not match"):
        viterbi(np.zeros((4, 3)), np.zeros((2, 2)))


def _direct_dp(t, amp, expect, window):
    """The periodic model's recursion written directly (the reference for decode_sounds)."""
    n = len(t)
    best = np.full((n, 2), -np.inf)
    back = np.full((n, 2), -1)
    for j in range(n):
        for s in (0, 1):
            best[j, s] = amp[j]
            prev = 1 - s
            for i in range(j - 1, -1, -1):
                d = t[j] - t[i]
                if d > window:
                    break
                T = expect[prev]
                v = best[i, prev] + amp[j] - ((d - T) / (0.15 * T + 0.03)) ** 2
                if v > best[j, s]:
                    best[j, s], back[j, s] = v, i
    j, s = np.unravel_index(int(np.argmax(best)), best.shape)
    chosen = []
    while j >= 0:
        chosen.append((float(t[j]), int(s)))
        j, s = back[j, s], 1 - s
    return chosen[::-1], float(best.max())


@pytest.mark.parametrize("seed", range(8))
def test_periodic_decoder_equals_the_direct_recursion(seed):
    rng = np.random.default_rng(seed)
    period = rng.uniform(0.6, 1.2)
    systole = rng.uniform(0.25, 0.4) * period
    true = np.sort(np.r_[np.arange(0.2, 12, period), np.arange(0.2, 12, period) + systole])
    t = np.sort(np.r_[true + rng.normal(0, 0.02, true.size), rng.uniform(0, 12, 8)])
    t = t[np.r_[True, np.diff(t) > 0.12]]  # peaks at least 0.12 s apart, as find_peaks gives
    amp = rng.uniform(0.2, 3.0, t.size)
    expect = (systole, period - systole)
    ref, ref_score = _direct_dp(t, amp, expect, 1.6 * period)
    got = decode_sounds(t, amp, expect, 1.6 * period)
    assert got == ref, (ref_score, seed)

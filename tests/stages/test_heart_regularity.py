"""Beat-to-beat regularity as an S1/S2 identity cue (round 9 of issue 12 §2): systole is
steady from beat to beat while diastole absorbs the heart rate's variation, which tells S1
from S2 where their pitch, width and loudness do not and systole ~ diastole (120 bpm)."""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.stages.heart import HeartSegmenter, points_to_intervals, sound_centres, sound_scores
from audiopipe.stages.heart.hsmm import path_to_runs
from audiopipe.stages.heart.identity import (
    identity_evidence,
    regularity_cue,
    sound_times,
    swap_states,
)

FR = 50.0
SR = 2000
SYSTOLE = 0.24  # S1 to S2 (s)
DIASTOLE = 0.25  # S2 to the next S1, on average: 122 bpm, the two nearly equal


def _burst(n: int, f: float = 70.0) -> np.ndarray:
    t = np.arange(n) / SR
    return np.sin(2 * np.pi * f * t) * np.sin(np.pi * t / (n / SR)) ** 2


def _pcg(seed: int, a1: float = 1.0, a2: float = 1.0, jitter: float = 0.04, dur: float = 12.0):
    """S1 and S2 the same 80 ms burst (``a1``, ``a2``: their levels), systole constant,
    diastole ``DIASTOLE`` +- ``jitter`` (uniform) from beat to beat."""
    rng = np.random.default_rng(seed)
    y = 0.02 * rng.standard_normal(int(dur * SR))
    n = int(0.08 * SR)
    s1, s2 = [], []
    t = float(rng.uniform(0.1, 0.3))
    while t + SYSTOLE + 0.2 < dur:
        for when, a, lst in ((t, a1, s1), (t + SYSTOLE, a2, s2)):
            i = int(when * SR)
            y[i : i + n] += a * _burst(n)
            lst.append(when + 0.04)
        t += SYSTOLE + DIASTOLE + float(rng.uniform(-jitter, jitter))
    return y, np.array(s1), np.array(s2)


def _path(s1: np.ndarray, s2: np.ndarray, n_frames: int) -> np.ndarray:
    """The reference path at ``FR``: 80 ms sounds centred on the times, systole and
    diastole between."""
    path = np.full(n_frames, 3)
    for t in s1:
        a = int(round((t - 0.04) * FR))
        path[a : a + 4] = 0
        path[a + 4 : int(round((t + SYSTOLE - 0.04) * FR))] = 1
    for t in s2:
        a = int(round((t - 0.04) * FR))
        path[a : a + 4] = 2
    return path


def test_regularity_cue_tells_steady_systole_from_variable_diastole():
    y, s1, s2 = _pcg(0)
    path = _path(s1, s2, int(len(y) / SR * FR))
    ok = regularity_cue(path, y, SR, FR)
    assert ok > 1.0
    assert regularity_cue(swap_states(path), y, SR, FR) == pytest.approx(-ok)
    # the sound times are the bursts' peaks, closer than the frame grid
    t, k = sound_times(path, FR)
    assert np.all(np.diff(t) > 0) and set(k.tolist()) == {0, 2}
    # a heart beating like a clock: nothing to tell
    y0, a, b = _pcg(0, jitter=0.0)
    assert abs(regularity_cue(_path(a, b, int(len(y0) / SR * FR)), y0, SR, FR)) < 0.3
    # too few cycles: 0
    assert regularity_cue(path[:40], y[: int(40 / FR * SR)], SR, FR) == 0.0


def _decides_swap(est: HeartSegmenter, path: np.ndarray, y: np.ndarray) -> bool:
    """The sign rule of the estimator's identity check on a decoded ``path``."""
    ident = est._identity(path, y, SR)
    return est._regularity_decides(-ident["regularity"], ident["evidence"] < -est.identity_margin)


def test_regularity_is_the_estimators_default_cue_where_the_others_are_silent():
    """Same pitch, width and level for S1 and S2, systole ~ diastole: without the
    regularity cue the evidence against a swapped path is within the default margin (the
    check would keep it); with the estimator's defaults the cue is decisive and swaps it."""
    y, s1, s2 = _pcg(1)
    path = _path(s1, s2, int(len(y) / SR * FR))
    est = HeartSegmenter()
    assert est.identity_regularity_margin is not None
    without = identity_evidence(swap_states(path), y, SR, FR)
    assert without["evidence"] > -est.identity_margin
    assert not _decides_swap(HeartSegmenter(identity_regularity_margin=None), swap_states(path), y)
    assert _decides_swap(est, swap_states(path), y)
    assert not _decides_swap(est, path, y)
    assert est._identity(path, y, SR)["regularity"] > est.identity_regularity_margin


@pytest.mark.parametrize("compare", [False, True])
def test_identity_check_undoes_a_reversed_loudness_cue_at_120_bpm(compare):
    """Trained where S1 is the louder sound, tested where S2 is, the two otherwise alike:
    the decoded names come out swapped; the default check (regularity) puts them back, and
    without the cue it does not."""
    train = [_pcg(s, 1.0, 0.4) for s in (2, 3)]
    refs = [points_to_intervals(np.r_[a, b], ["S1"] * len(a) + ["S2"] * len(b))
            for _, a, b in train]
    kw = dict(features=("homomorphic", "hilbert"), bands=False, select="harmonic",
              rate_from="posterior", identity_compare=compare)
    seg = HeartSegmenter(**kw).fit([(y, SR) for y, _, _ in train], refs)
    y, s1, s2 = _pcg(4, 0.4, 1.0)
    a = seg.analyse(y, SR)
    got = sound_scores({"S1": s1, "S2": s2}, sound_centres(a["segments"]), window=0.1)
    assert a["identity"]["swapped"] and got["f_S1"] > 0.9 and got["f_S2"] > 0.9
    off = seg.set_params(identity_regularity_margin=None).analyse(y, SR)
    got = sound_scores({"S1": s1, "S2": s2}, sound_centres(off["segments"]), window=0.1)
    assert not off["identity"]["swapped"] and got["f_S1"] < 0.5


def test_decisive_regularity_margin_overrides_the_evidence_only_beyond_it():
    y, s1, s2 = _pcg(5)
    path = _path(s1, s2, int(len(y) / SR * FR))
    reg = regularity_cue(path, y, SR, FR)
    est = HeartSegmenter(identity_regularity_margin=reg / 2)
    assert est._regularity_decides(reg, otherwise=False)
    assert not est._regularity_decides(-reg, otherwise=True)
    assert est._regularity_decides(reg / 4, otherwise=True)  # within the margin: unchanged
    none = HeartSegmenter(identity_regularity_margin=None)
    assert not none._regularity_decides(10.0, otherwise=False)  # None: never decides
    # weighed into the evidence instead (weight 1): the evidence moves by the cue
    w = HeartSegmenter(identity_regularity_weight=1.0, identity_regularity_margin=None)
    assert w._identity(path, y, SR)["evidence"] == pytest.approx(
        identity_evidence(path, y, SR, FR)["evidence"] + reg)
    with pytest.raises(ValueError, match="identity_regularity_margin"):
        HeartSegmenter(identity_regularity_margin=-1.0)._check_rate_options()
    assert [k for *_, k in path_to_runs(path)][:4] in ([0, 1, 2, 3], [3, 0, 1, 2])

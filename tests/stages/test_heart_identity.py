"""S1/S2 identity cues that do not rest on pitch (round 8 of issue 12 §2): the high-band
spread and the width of the sounds, and the check that judges the path decoded with S1
and S2 exchanged by its own cues (``identity_compare``)."""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.stages.heart import HeartSegmenter, points_to_intervals, sound_centres, sound_scores
from audiopipe.stages.heart.identity import (
    identity_evidence,
    spread_cue,
    swap_states,
    width_cue,
)

FR = 50.0
SR = 2000


def _path(cycles: int = 8) -> np.ndarray:
    """S1 6 frames, systole 7, S2 4 frames, diastole 8 (about 120 bpm, systole ~ diastole)."""
    return np.array(([0] * 6 + [1] * 7 + [2] * 4 + [3] * 8) * cycles)


def _sounds(path: np.ndarray, s1, s2, seed: int = 0) -> np.ndarray:
    """Audio with one burst per decoded sound run: ``s1(n)`` / ``s2(n)`` give the burst of
    ``n`` samples; a little noise everywhere."""
    rng = np.random.default_rng(seed)
    y = 0.01 * rng.standard_normal(int(len(path) / FR * SR))
    from audiopipe.stages.heart.hsmm import path_to_runs

    for s, e, k in path_to_runs(path):
        if k in (0, 2):
            i, n = int(s / FR * SR), int((e - s) / FR * SR)
            y[i : i + n] += (s1 if k == 0 else s2)(n)
    return y


def _burst(freqs, seconds=None):
    def make(n):
        m = int(seconds * SR) if seconds else n
        t = np.arange(m) / SR
        b = sum(np.sin(2 * np.pi * f * t) for f in freqs) * np.sin(np.pi * t / (m / SR)) ** 2
        return np.pad(b, (0, max(n - m, 0)))[:n]

    return make


def test_spread_cue_sees_s2_high_band_whatever_the_centroid_of_its_low_part():
    """S2 with a component above 150 Hz (its split, A2/P2) has the larger high-band share:
    the cue is positive in place, changes sign under the swap, and needs no pitch cue."""
    path = _path()
    y = _sounds(path, _burst([60.0]), _burst([60.0, 250.0]))
    ok = spread_cue(path, y, SR, FR)
    assert ok > 0.5
    assert spread_cue(swap_states(path), y, SR, FR) == pytest.approx(-ok)
    # the same 80 ms sound under both labels: nothing to tell
    same = _sounds(path, _burst([60.0], 0.08), _burst([60.0], 0.08))
    assert abs(spread_cue(path, same, SR, FR)) < 0.1


def test_width_cue_sees_the_longer_s1():
    """S1 120 ms against S2 60 ms of the same pitch: the pitch cue is ~0, the width cue
    positive, and both evidence and cue change sign under the swap."""
    path = _path()
    y = _sounds(path, _burst([80.0], 0.12), _burst([80.0], 0.06))
    w = width_cue(path, y, SR, FR)
    assert w > 0.3
    assert width_cue(swap_states(path), y, SR, FR) == pytest.approx(-w)
    ok = identity_evidence(path, y, SR, FR, interval_weight=0.0, width_weight=1.0)
    bad = identity_evidence(swap_states(path), y, SR, FR, interval_weight=0.0, width_weight=1.0)
    assert abs(ok["pitch"]) < 0.2 < ok["evidence"]
    assert bad["evidence"] < -0.2


def test_round8_cues_are_off_unless_weighed_and_zero_without_audio_or_room():
    path = _path()
    y = _sounds(path, _burst([60.0], 0.12), _burst([60.0, 250.0], 0.06))
    off = identity_evidence(path, y, SR, FR)
    assert off["spread"] == 0.0 and off["width"] == 0.0
    on = identity_evidence(path, y, SR, FR, spread_weight=1.0, width_weight=1.0)
    assert on["spread"] > 0 and on["width"] > 0
    assert on["evidence"] == pytest.approx(
        on["pitch"] + on["interval"] + on["spread"] + on["width"])
    assert identity_evidence(path, None, None, FR, spread_weight=1.0)["spread"] == 0.0
    # a recording too short for a window around any sound: 0, no error
    short = np.array([0, 0, 1, 2, 3])
    assert spread_cue(short, np.zeros(int(len(short) / FR * SR)), SR, FR) == 0.0
    assert width_cue(short, np.zeros(int(len(short) / FR * SR)), SR, FR) == 0.0


def _pcg(seed, a1, a2, dur=10.0, bpm=120.0, systole=0.25):
    """Bursts at 120 bpm (systole ~ diastole) of 100 ms each, S1 at 45 Hz, S2 at 110 and
    220 Hz: only loudness (``a1``, ``a2``) and the spectrum tell S1 from S2."""
    rng = np.random.default_rng(seed)
    y = 0.03 * rng.standard_normal(int(dur * SR))
    s1, s2 = [], []
    t = float(rng.uniform(0.1, 0.4))
    while t + 0.6 < dur:
        for when, freqs, d, a, lst in ((t, [45.0], 0.1, a1, s1),
                                       (t + systole, [110.0, 220.0], 0.1, a2, s2)):
            n = int(d * SR)
            i = int(when * SR)
            y[i : i + n] += a * _burst(freqs)(n)
            lst.append(when + d / 2)
        t += 60.0 / bpm * float(rng.uniform(0.97, 1.03))
    return y, np.array(s1), np.array(s2)


@pytest.mark.parametrize("compare", [False, True])
def test_identity_check_with_round8_cues_undoes_a_reversed_loudness_cue(compare):
    """Trained where S1 is the louder sound, tested where S2 is: the decoded names are
    swapped and the check (pitch and spread; no interval cue) puts them back, by
    the sign rule or by comparing with the path decoded the other way round; a recording
    like the training ones is left alone."""
    train = [_pcg(s, 1.0, 0.4) for s in (0, 1)]
    refs = [points_to_intervals(np.r_[a, b], ["S1"] * len(a) + ["S2"] * len(b))
            for _, a, b in train]
    kw = dict(features=("homomorphic", "hilbert"), bands=False, select="harmonic",
              rate_from="posterior", identity_interval_weight=0.0, identity_spread_weight=1.0,
              identity_compare=compare)
    seg = HeartSegmenter(**kw).fit([(y, SR) for y, _, _ in train], refs)
    y, s1, s2 = _pcg(5, 0.4, 1.0)
    a = seg.analyse(y, SR)
    got = sound_scores({"S1": s1, "S2": s2}, sound_centres(a["segments"]), window=0.1)
    assert a["identity"]["swapped"] and got["f_S1"] > 0.9 and got["f_S2"] > 0.9
    assert a["identity"]["spread"] < 0 and a["identity"]["pitch"] < 0  # of the first path
    if compare:
        assert a["identity"]["evidence_swapped"] > a["identity"]["evidence"]
    y, s1, s2 = _pcg(6, 1.0, 0.4)
    b = seg.analyse(y, SR)
    assert not b["identity"]["swapped"]
    got = sound_scores({"S1": s1, "S2": s2}, sound_centres(b["segments"]), window=0.1)
    assert got["f_S1"] > 0.9 and got["f_S2"] > 0.9

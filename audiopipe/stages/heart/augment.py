"""Per-state gain changes of a recording: the loudness of S1 against S2, altered.

Which sound is louder depends on where the stethoscope sits (S1 at the apex, S2 at the
base, the aortic and pulmonic sites), so a loudness cue an emission model learns from a
few recordings need not hold on a new one. :func:`rescale_states` multiplies the samples
of chosen states by a gain (smooth ramps at the edges), :func:`sound_levels` measures the
levels of the reference sounds; ``benchmarks/heart_identity.py`` uses both to make S2
louder than S1 (the identity stress test of round 7), and :class:`HeartSegmenter` with
``augment > 0`` trains on copies of its recordings with random S1 and S2 gains.

Examples
--------
>>> import numpy as np
>>> y = np.ones(4000)
>>> z = rescale_states(y, 4000, [(0.2, 0.4, "S2")], {"S2": 6.0})
>>> round(float(z[1200]), 2), float(z[100])
(2.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import signal

__all__ = ["RAMP_S", "rescale_states", "sound_levels", "random_state_gains"]

#: the raised-cosine ramp (s) at each edge of a rescaled interval; the interval is
#: widened by it, so the whole annotated sound gets the full gain
RAMP_S = 0.015


def rescale_states(
    y: np.ndarray,
    sr: float,
    intervals: Sequence[tuple],
    gains_db: Mapping[str, float],
    ramp_s: float = RAMP_S,
) -> np.ndarray:
    """A copy of ``y`` whose samples in the ``intervals`` ``(start_s, end_s, state)`` of
    the states in ``gains_db`` are multiplied by ``10 ** (dB / 20)`` (raised-cosine ramps
    of ``ramp_s`` outside each interval's edges; overlapping ramps take the larger
    change)."""
    y = np.asarray(y, dtype=np.float64)
    log_g = np.zeros(len(y))
    r = max(int(round(ramp_s * sr)), 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)  # 0 -> 1
    for s, e, k in intervals:
        if k not in gains_db or not np.isfinite(gains_db[k]):
            continue
        a, b = int(round(s * sr)), int(round(e * sr))
        a, b = max(a, 0), min(b, len(y))
        if b <= a:
            continue
        shape = np.zeros(len(y))
        shape[a:b] = 1.0
        lo = max(a - r, 0)
        shape[lo:a] = ramp[r - (a - lo):]
        hi = min(b + r, len(y))
        shape[b:hi] = ramp[::-1][: hi - b]
        g = gains_db[k] / 20.0 * shape
        log_g = np.where(np.abs(g) > np.abs(log_g), g, log_g)
    return y * 10.0 ** log_g


def sound_levels(
    y: np.ndarray, sr: float, intervals: Sequence[tuple], band: tuple[float, float] = (25.0, 400.0)
) -> dict[str, float]:
    """The median RMS level (dB) of the reference S1 and of the S2 intervals in the
    heart-sound band; ``nan`` for a sound without an interval."""
    y = np.asarray(y, dtype=np.float64)
    hi = min(band[1], 0.45 * sr)
    x = signal.sosfiltfilt(signal.butter(2, (band[0], hi), "bandpass", fs=sr, output="sos"), y) \
        if len(y) > 30 else y
    out = {}
    for k in ("S1", "S2"):
        lv = []
        for s, e, kk in intervals:
            a, b = max(int(round(s * sr)), 0), min(int(round(e * sr)), len(x))
            if kk == k and b > a:
                lv.append(10.0 * np.log10(np.mean(x[a:b] ** 2) + 1e-20))
        out[k] = float(np.median(lv)) if lv else float("nan")
    return out


def random_state_gains(rng: np.random.Generator, spread_db: float) -> dict[str, float]:
    """Independent uniform S1 and S2 gains in ``[-spread_db, spread_db]`` dB (training-time
    augmentation: the loudness of S1 against S2 stops being a reliable cue)."""
    return {k: float(rng.uniform(-spread_db, spread_db)) for k in ("S1", "S2")}

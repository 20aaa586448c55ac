"""Which decoded sound is S1: a check of a decoded path against its S1 <-> S2 swap.

The emission model learns S1 and S2 from whatever separates them in its training
recordings, often loudness; on a new patient or auscultation site that cue may reverse
(S2 is typically the louder sound at the base, S1 at the apex), and near 120 bpm the
durations (systole ~ diastole) cannot tell the decoder which is which. The cues below
hold across patients and sites (physiology, not one recording's training):

- ``interval``: systole (S1 to S2) is shorter than diastole (S2 to the next S1) whenever
  the rate leaves room for the difference; ``median((dia - sys) / (dia + sys))`` over the
  decoded cycles, in [-1, 1], near 0 at fast rates (so it weighs itself by how different
  the two intervals are);
- ``pitch``: S1 (mitral and tricuspid closure) is lower-pitched than S2 (aortic and
  pulmonary closure); the log ratio of the median spectral centroids (20-400 Hz) of the
  decoded S2 sounds over the decoded S1 sounds.

Both are positive for a path with S1 and S2 in place and change sign under the swap.
:func:`identity_evidence` gives ``pitch + interval_weight * interval``; a path whose
evidence is below ``-margin`` has them swapped (:func:`swap_states` relabels it).

Examples
--------
>>> import numpy as np
>>> path = np.array(([0] * 5 + [1] * 10 + [2] * 4 + [3] * 20) * 4)
>>> round(interval_cue(path), 2)
0.23
>>> swap_states(path)[:6].tolist()
[2, 2, 2, 2, 2, 3]
>>> round(interval_cue(swap_states(path)), 2)
-0.23
"""

from __future__ import annotations

import numpy as np

from audiopipe.stages.heart.hsmm import path_to_runs

__all__ = ["SWAP", "identity_evidence", "interval_cue", "pitch_cue", "swap_states"]

#: the state permutation of an S1 <-> S2 swap (S1, systole, S2, diastole -> S2, dia, S1, sys)
SWAP = np.array([2, 3, 0, 1])
#: the band (Hz) whose spectral centroid gives a sound's pitch
PITCH_BAND = (20.0, 400.0)


def swap_states(path: np.ndarray) -> np.ndarray:
    """The path with S1 <-> S2 and systole <-> diastole exchanged."""
    return SWAP[np.asarray(path, dtype=int)]


def interval_cue(path: np.ndarray) -> float:
    """``median((diastole - systole) / (diastole + systole))`` over the decoded cycles.

    Systole is S1 start to S2 start, diastole S2 start to the next S1 start; 0 when the
    path has no complete cycle.
    """
    runs = path_to_runs(path)
    s1 = np.array([s for s, _, k in runs if k == 0])
    s2 = np.array([s for s, _, k in runs if k == 2])
    vals = []
    for a, c in zip(s1[:-1], s1[1:], strict=True):
        b = s2[(s2 > a) & (s2 < c)]
        if len(b) == 1:
            sys, dia = b[0] - a, c - b[0]
            vals.append((dia - sys) / (dia + sys))
    return float(np.median(vals)) if vals else 0.0


def _centroid(x: np.ndarray, sr: float) -> float:
    if len(x) < 8:
        return np.nan
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    band = (f >= PITCH_BAND[0]) & (f <= PITCH_BAND[1])
    total = spec[band].sum()
    return float((f[band] * spec[band]).sum() / total) if total > 0 else np.nan


def pitch_cue(path: np.ndarray, y: np.ndarray, sr: float, feature_rate: float) -> float:
    """``log(median centroid of the S2 sounds / median centroid of the S1 sounds)``.

    Centroids of the band :data:`PITCH_BAND` of each decoded sound's samples; 0 when a
    sound class has no measurable segment.
    """
    y = np.asarray(y, dtype=float)
    hop = sr / feature_rate
    cents: dict[int, list[float]] = {0: [], 2: []}
    for s, e, k in path_to_runs(path):
        if k in cents:
            c = _centroid(y[int(round(s * hop)) : int(round(e * hop))], sr)
            if np.isfinite(c) and c > 0:
                cents[k].append(c)
    if not cents[0] or not cents[2]:
        return 0.0
    return float(np.log(np.median(cents[2]) / np.median(cents[0])))


def identity_evidence(
    path: np.ndarray,
    y: np.ndarray | None,
    sr: float | None,
    feature_rate: float,
    interval_weight: float = 1.0,
) -> dict[str, float]:
    """``{"pitch", "interval", "evidence"}`` for S1 and S2 being in place in ``path``.

    Positive evidence: in place; negative: swapped. Without audio (``y`` None) the pitch
    cue is 0 (only the intervals count).
    """
    pitch = 0.0 if y is None or sr is None else pitch_cue(path, y, sr, feature_rate)
    interval = interval_cue(path)
    return {"pitch": pitch, "interval": interval, "evidence": pitch + interval_weight * interval}

"""Scores of a heart-state segmentation, and a plot a person can read at a glance.

- :func:`frame_accuracy`: the fraction of annotated time (frames every ``hop_s`` s, at
  their centres) whose estimated state equals the reference state; unannotated time
  (CirCor state 0) is not scored.
- :func:`sound_scores`: S1, S2 and both-sounds F-measures of estimated sound centres
  against reference points, a reference and an estimate matching within ``window`` s
  (one-to-one, maximum matching as mir_eval's ``onset.f_measure``), scored only within
  the reference's annotated stretches (:func:`annotated_stretches`): estimates before the
  first mark, after the last, or inside a stretch where the annotators skipped sounds
  (more than ``window`` s from any mark there) are not scored. PASCAL's annotators left
  beats unmarked at the ends and in the middle of recordings; with the whole span scored
  (``gaps=False, margin=0.5``: the ``segment`` stage's periodic-mode convention, and
  this module's before issue 12 §2 round 6), every sound detected there counted as a false
  positive (all 15 "extra" events on the tuning parts, ``benchmarks/heart_points.py``).

Examples
--------
>>> ref = [(0.0, 0.1, "S1"), (0.1, 0.4, "systole")]
>>> est = [(0.0, 0.12, "S1"), (0.12, 0.5, "systole")]
>>> round(frame_accuracy(ref, est), 2)
0.95
>>> f_measure(np.array([1.0, 2.0]), np.array([1.05, 3.0]), window=0.1)
0.5
>>> pts = {"S1": np.array([1.0, 1.8, 3.4, 4.2]), "S2": np.array([1.3, 2.1, 3.7, 4.5])}
>>> [(round(a, 2), round(b, 2)) for a, b in annotated_stretches(pts)]  # beat at 2.6 s unmarked
[(0.9, 2.2), (3.3, 4.6)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from audiopipe.stages.heart.references import STATES, intervals_to_frames

__all__ = [
    "cross_val_segments",
    "frame_accuracy",
    "f_measure",
    "sound_scores",
    "sound_centres",
    "annotated_stretches",
    "score_recording",
    "plot_heart",
]


def frame_accuracy(
    reference: Sequence[tuple], estimate: Sequence[tuple], hop_s: float = 0.01
) -> float:
    """Fraction of annotated frames with the reference's state (NaN if none annotated)."""
    if not reference:
        return float("nan")
    end = max(e for _, e, *_ in reference)
    n = int(np.ceil(end / hop_s))
    ref = intervals_to_frames([r[:3] for r in reference], n, 1.0 / hop_s)
    est = intervals_to_frames([s[:3] for s in estimate], n, 1.0 / hop_s)
    keep = ref >= 0
    return float(np.mean(ref[keep] == est[keep])) if keep.any() else float("nan")


def f_measure(reference: np.ndarray, estimate: np.ndarray, window: float = 0.1) -> float:
    """F-measure of event times matched one-to-one within ``window`` s (0 if either is empty)."""
    ref = np.asarray(reference, float)
    est = np.asarray(estimate, float)
    if ref.size == 0 or est.size == 0:
        return 0.0
    hit = np.abs(ref[:, None] - est[None, :]) <= window
    rows, cols = linear_sum_assignment(-hit.astype(np.float64))
    n = int(hit[rows, cols].sum())
    return 2.0 * n / (len(ref) + len(est))


def sound_centres(segments: Sequence[tuple]) -> dict[str, np.ndarray]:
    """Centre times of the S1 and S2 segments."""
    return {
        k: np.array([(s + e) / 2 for s, e, lab, *_ in segments if lab == k]) for k in ("S1", "S2")
    }


def annotated_stretches(
    reference: dict[str, np.ndarray],
    window: float = 0.1,
    gaps: bool = True,
    margin: float | None = None,
) -> list[tuple[float, float]]:
    """The ``(start_s, end_s)`` stretches in which the reference marks every S1 and S2.

    Consecutive marks (S1 and S2 together, in time order) are in one stretch unless they
    lie further apart than the longer median interval between an S1 and the next S2 or an
    S2 and the next S1, plus half the shorter: halfway between the longest interval of two
    sounds marked in a row and the shortest that can hold an unmarked sound (a whole
    period). PASCAL's wide-format file labels its marks by alternation, so a skipped sound
    shows as such an interval, not as a repeated label. A reference of one sound only (no
    S1-S2 pair) is one stretch. Each stretch reaches ``margin`` s (default ``window``)
    beyond its first and last mark, so an estimate that can match a mark is always
    inside. ``gaps=False`` gives one stretch, the whole annotated span.
    """
    t = np.r_[reference.get("S1", []), reference.get("S2", [])].astype(float)
    lab = np.r_[np.zeros(len(reference.get("S1", []))), np.ones(len(reference.get("S2", [])))]
    if t.size == 0:
        return []
    order = np.argsort(t, kind="stable")
    t, lab = t[order], lab[order]
    pad = window if margin is None else margin
    d = np.diff(t)
    gap = np.zeros(len(d), dtype=bool)
    if gaps and len(d):
        alt = lab[:-1] != lab[1:]
        meds = [np.median(d[alt & (lab[:-1] == k)]) for k in (0, 1)
                if np.any(alt & (lab[:-1] == k))]
        limit = max(meds) + 0.5 * min(meds) if meds else np.inf
        gap = d > limit
    cuts = np.flatnonzero(gap)
    starts = np.r_[0, cuts + 1]
    ends = np.r_[cuts, len(t) - 1]
    return [(float(t[a] - pad), float(t[b] + pad)) for a, b in zip(starts, ends, strict=True)]


def sound_scores(
    reference: dict[str, np.ndarray],
    estimate: dict[str, np.ndarray],
    window: float = 0.1,
    margin: float | None = None,
    gaps: bool = True,
) -> dict[str, float]:
    """``f_S1``, ``f_S2`` and ``f_sounds`` (S1 and S2 pooled, labels ignored), estimates
    scored within the reference's :func:`annotated_stretches` (``margin``, ``gaps``: as
    there; ``margin=0.5, gaps=False`` is the earlier whole-span convention)."""
    allr = np.sort(np.r_[reference.get("S1", []), reference.get("S2", [])])
    if allr.size == 0:
        return {"f_S1": float("nan"), "f_S2": float("nan"), "f_sounds": float("nan")}
    spans = annotated_stretches(reference, window, gaps, margin)

    def inside(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        keep = np.zeros(len(t), dtype=bool)
        for lo, hi in spans:
            keep |= (t >= lo) & (t <= hi)
        return t[keep]

    out = {
        f"f_{k}": f_measure(np.asarray(reference.get(k, [])), inside(estimate.get(k, [])), window)
        for k in ("S1", "S2")
    }
    both = np.r_[estimate.get("S1", []), estimate.get("S2", [])]
    out["f_sounds"] = f_measure(allr, inside(both), window)
    return out


def score_recording(
    reference: dict, segments: Sequence[tuple], window: float = 0.1,
    margin: float | None = None, gaps: bool = True,
) -> dict[str, float]:
    """All scores of one recording against a :func:`~.references.read_references` entry:
    ``frame_accuracy`` (interval references only) and ``f_S1``, ``f_S2``, ``f_sounds``
    (against the points, or the centres of the reference's S1/S2 intervals)."""
    out = {}
    if reference.get("kind") == "intervals":
        out["frame_accuracy"] = frame_accuracy(reference["intervals"], segments)
    out.update(sound_scores(reference["points"], sound_centres(segments), window, margin,
                            gaps))
    return out


def plot_heart(
    path: str,
    envelope: np.ndarray,
    feature_rate: float,
    estimate: Sequence[tuple],
    reference: Sequence[tuple] | None = None,
    points: dict[str, np.ndarray] | None = None,
    title: str = "",
    span: tuple[float, float] | None = None,
) -> str:
    """PNG: the envelope over time with the estimated states shaded behind it, and the
    estimated (and reference) states as coloured bands underneath, reference S1/S2 points
    as markers; ``span`` (start_s, end_s) zooms in (a few seconds read best). Returns
    ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"S1": "#d62728", "systole": "#ffbb78", "S2": "#1f77b4", "diastole": "#c7e9c0"}
    rows = 3 if reference is not None else 2
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(11, 4.2),
        sharex=True,
        gridspec_kw={"height_ratios": [3] + [1] * (rows - 1)},
    )
    t = np.arange(len(envelope)) / feature_rate
    ax = axes[0]
    ax.plot(t, envelope, lw=0.8, color="k")
    for s, e, lab, *_ in estimate:
        ax.axvspan(s, e, color=colours[lab], alpha=0.35, lw=0)
    if points:
        for k, mk in (("S1", "v"), ("S2", "^")):
            p = np.asarray(points.get(k, []), dtype=float)
            y = np.interp(p, t, envelope) if len(t) else p
            ax.plot(p, y, mk, color=colours[k], mec="k", ms=7, label=f"reference {k}")
    ax.set_ylabel("envelope (z)")
    bands = [(axes[1], estimate, "estimated")]
    if reference is not None:
        bands.append((axes[2], reference, "reference"))
    for a, segs, name in bands:
        for s, e, lab, *_ in segs:
            a.axvspan(s, e, color=colours[lab], lw=0)
        a.set_yticks([])
        a.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in STATES]
    labels = list(STATES)
    if points:
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, ncol=len(labels), loc="upper right", fontsize=8, frameon=False)
    if span is not None:
        ax.set_xlim(*span)
        inside = envelope[(t >= span[0]) & (t <= span[1])]
        if inside.size:
            pad = 0.08 * (np.ptp(inside) + 1e-9)
            ax.set_ylim(inside.min() - pad, inside.max() + pad)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def cross_val_segments(
    estimator: Any,
    recordings: Sequence[tuple[np.ndarray, float]],
    references: Sequence[Sequence[tuple]],
    groups: Sequence[str],
    n_splits: int = 5,
    full: bool = False,
) -> list[Any]:
    """Segments of every recording by a clone of ``estimator`` trained on other groups only.

    ``groups`` names each recording's patient (or recording); with at most ``n_splits``
    groups every group is held out once (leave-one-group-out), otherwise grouped K-fold.
    Features are computed once per recording. With ``full=True`` each item is the whole
    :meth:`HeartSegmenter.analyse` dict (segments, confidence, heart rate, features).
    """
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    groups = np.asarray([str(g) for g in groups])
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("cross-validation needs recordings of at least 2 groups (patients)")
    cv = LeaveOneGroupOut() if n_groups <= n_splits else GroupKFold(n_splits=n_splits)
    F = [estimator.envelopes(y, sr) for y, sr in recordings]
    out: list[Any] = [[] for _ in recordings]
    for train, test in cv.split(F, groups=groups):
        m = clone(estimator).fit_features([F[i] for i in train], [references[i] for i in train])
        for i in test:
            y, sr = recordings[i]
            a = m.analyse_features(F[i], len(y) / sr, y=y, sr=sr)
            out[i] = a if full else a["segments"]
    return out

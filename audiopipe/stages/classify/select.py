"""Choosing classify's model per dataset (inner grouped CV), fitting it, applying it.

:func:`fit_select` builds every candidate's features (:mod:`.candidates`), cross-validates
each on the same (grouped) folds, picks the most accurate, fits it on every clip and
reports nested figures: in each outer fold the choice is made again by an inner CV on the
fold's training part only. :func:`predict_bundle` applies a saved choice to clips, with
small groups normalised toward the training statistics.

Examples
--------
>>> from audiopipe.stages.classify.select import choose
>>> choose({"stats": 0.8, "sequence": 0.9, "mlp": 0.9})
'sequence'
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.stages.classify.candidates import (
    CANDIDATES,
    MODEL_OF,
    Frames,
    build,
    candidate_names,
    describe,
    fallback_features,
    priors,
)
from audiopipe.stages.classify.model import (
    ClassifyWarning,
    ClipClassifier,
    cv_splits,
    oof_proba,
)

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = ["fit_select", "predict_bundle", "choose", "Selection"]

#: the parameters a candidate's features depend on (saved with the model)
FEATURE_PARAMS = ("features", "frame_features", "frames", "n_ceps", "trim_db", "patches")


def choose(scores: dict[str, float]) -> str:
    """The best-scoring candidate; ties go to the one listed first."""
    best = max(scores.values())
    return next(k for k, v in scores.items() if v == best)


@dataclass
class Selection:
    """What :func:`fit_select` found: honest predictions, figures, the fitted bundle."""

    pred: np.ndarray
    prob: np.ndarray
    fold: np.ndarray
    metrics: dict[str, float]
    bundle: dict[str, Any]
    why: str
    confusion: tuple[np.ndarray, list[str]]
    warnings: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def _augment(name: str, frames: Frames, g: np.ndarray | None, p: dict[str, Any],
             group_norm: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """VTLN-warped training copies of the sequence candidate (rows, source clip)."""
    from audiopipe.stages._clipfeatures import warp_matrix
    from audiopipe.stages._frames import frames_recipe

    warps = list(p.get("warps") or [])
    if name != "sequence" or not warps or warp_matrix(1.0, frames_recipe(frames.ds)) is None:
        return None
    n = len(frames.ids)
    blocks = []
    for a in warps:
        ga = None if g is None else np.asarray([f"{v}@{a}" for v in g], dtype=object)
        _, Xa, _ = build(name, frames, ga if group_norm else None, p, warp=a)
        blocks.append(Xa)
    return np.concatenate(blocks), np.tile(np.arange(n), len(warps))


def _sub_augment(aug: tuple[np.ndarray, np.ndarray] | None, tr: np.ndarray) -> Any:
    """The augmented rows of clips ``tr``, their sources renumbered within ``tr``."""
    if aug is None:
        return None
    m = np.isin(aug[1], tr)
    remap = {int(v): k for k, v in enumerate(tr)}
    return aug[0][m], np.array([remap[int(s)] for s in aug[1][m]], dtype=np.int64)


def fit_select(
    ds: Dataset,
    ids: list[str],
    y: np.ndarray,
    g: np.ndarray | None,
    p: dict[str, Any],
    *,
    where: str = "",
) -> Selection:
    """Cross-validate every candidate of ``p["candidates"]``, choose, fit, report.

    ``p`` holds the stage's parameters (``candidates``, ``C``, ``random_state``,
    ``group_norm``, ``self_train`` and those of :data:`FEATURE_PARAMS`). ``ensemble``
    averages the class probabilities of the other candidates tried (soft vote); its CV
    probabilities are those of its members, so it costs no extra fit in the choice.
    """
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y = np.asarray([str(v) for v in y], dtype=object)
    group_norm = p.get("group_norm")
    group_norm = g is not None if group_norm is None else bool(group_norm)
    gn = g if group_norm else None
    rs = int(p.get("random_state", 0))
    frames = Frames(ds, ids, float(p.get("trim_db", 30.0)))
    unavailable = candidate_names(frames)
    asked = list(p.get("candidates") or CANDIDATES)
    skipped = {c: unavailable[c] for c in asked if c in unavailable}
    base = [c for c in asked if c in MODEL_OF and c not in unavailable]
    if "ensemble" in asked and len(base) < 2:
        skipped["ensemble"] = "needs two other candidates"
    vote = "ensemble" in asked and len(base) >= 2
    if not base:
        raise ValueError("no candidate model can run on this dataset: " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))
    splits, notes = cv_splits(y, g, random_state=rs, where=where)
    classes = np.unique(y)
    mats: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}
    for c in base:
        X_raw, X, _ = build(c, frames, gn, p)
        mats[c] = (X_raw, X, _augment(c, frames, g, p, group_norm))

    def est(c: str) -> ClipClassifier:
        return ClipClassifier(model=MODEL_OF[c], C=float(p.get("C", 10.0)), random_state=rs)

    self_train = bool(p.get("self_train", False))

    def probas(rows: np.ndarray | None, folds: list) -> dict[str, np.ndarray]:
        out = {}
        for c in base:
            X, aug = mats[c][1], mats[c][2]
            if rows is not None:
                X, aug = X[rows], _sub_augment(aug, rows)
            yy = y if rows is None else y[rows]
            out[c] = oof_proba(est(c), X, yy, folds, classes, augment=aug,
                               self_train=self_train)
        if vote:
            out["ensemble"] = np.mean([out[c] for c in base], axis=0)
        return out

    def acc(P: np.ndarray, yy: np.ndarray) -> float:
        return float(np.mean(classes[P.argmax(1)] == yy))

    P = probas(None, splits)
    scores = {c: acc(P[c], y) for c in P}
    chosen = choose(scores)
    pred = np.empty(len(y), dtype=object)
    pr = np.zeros(len(y))
    fold = np.zeros(len(y), np.int32)
    per_fold: list[str] = []
    for i, (tr, te) in enumerate(splits):
        fold[te] = i
        pick = chosen
        if len(P) > 1:  # nested: choose again on this fold's training part only
            gi = None if g is None or len(np.unique(g[tr])) < 2 else g[tr]
            try:
                with warnings.catch_warnings():  # inner folds: said once, by the outer folds
                    warnings.simplefilter("ignore", ClassifyWarning)
                    inner, _ = cv_splits(y[tr], gi, n_splits=3, random_state=rs)
            except ValueError as err:  # too few clips to choose again inside this fold
                inner = None
                note = (
                    f"{where}fold {i}: {err} inside its training part, so it uses the overall "
                    f"choice {chosen!r} (this fold's figure is not nested)"
                )
                warnings.warn(note, ClassifyWarning, stacklevel=2)
                notes.append(note)
            if inner is not None:
                Pi = probas(tr, inner)
                pick = choose({c: acc(Pi[c], y[tr]) for c in Pi})
        per_fold.append(pick)
        pred[te] = classes[P[pick][te].argmax(1)]
        pr[te] = P[pick][te].max(1)
    ys, ps = y.astype(str), pred.astype(str)
    labels = sorted(set(ys))
    metrics: dict[str, float] = {
        "accuracy": float(accuracy_score(ys, ps)),
        "macro_f1": float(f1_score(ys, ps, labels=labels, average="macro", zero_division=0)),
    }
    if g is not None:
        for grp in sorted(set(g)):
            m = g == grp
            metrics[f"accuracy[{grp}]"] = float(accuracy_score(ys[m], ps[m]))
    for c in P:
        metrics[f"cv_accuracy[{c}]"] = scores[c]
        metrics[f"chosen[{c}]"] = float(c == chosen)
        metrics[f"nested_chosen[{c}]"] = float(per_fold.count(c))
    fp = {k: p.get(k) for k in FEATURE_PARAMS}
    members = {}
    for c in (base if chosen == "ensemble" else [chosen]):
        X_raw, X, aug = mats[c]
        Xf, yf = (X, y) if aug is None else (np.r_[X, aug[0]], np.r_[y, y[aug[1]]])
        members[c] = {"estimator": clone(est(c)).fit(Xf, yf.astype(str)),
                      "prior": priors(c, frames, X_raw, fp), "fallback": None}
        if gn is not None:
            # speaker-independent fallback for groups too small to normalise on their own:
            # the same candidate on features without group normalisation
            X0 = fallback_features(c, frames, p)
            members[c]["fallback"] = clone(est(c)).fit(X0, y.astype(str))
    bundle = {
        "estimator": members,
        "candidate": chosen,
        "params": fp,
        "group_norm": group_norm,
        "classes": [str(c) for c in classes],
        "scores": scores,
    }
    cm = confusion_matrix(ys, ps, labels=labels)
    return Selection(pred=pred, prob=pr, fold=fold, metrics=metrics, bundle=bundle,
                     why=describe(scores, chosen, skipped), confusion=(cm, labels),
                     warnings=notes, scores=scores)


def predict_bundle(
    bundle: dict[str, Any],
    ds: Dataset,
    ids: list[str],
    g: np.ndarray | None,
    sel: list[int] | None = None,
    *,
    prior_clips: float = 20.0,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray, list[float | None], list[str]]:
    """Labels, probabilities, group weights and warnings for clips ``ids[sel]``.

    Features are built for every clip of ``ids`` (a group is normalised with all its
    clips), each group's statistics shrunk toward the training set's as if it had
    ``prior_clips`` more clips; ``group_weight`` is ``n / (n + prior_clips)`` (None
    without group normalisation). A group with fewer clips than ``prior_clips`` is
    predicted by the speaker-independent fallback model (:func:`.candidates.fallback_features`,
    fitted on the same clips; ``group_weight`` 0) and warned about.
    """
    sel = list(range(len(ids))) if sel is None else list(sel)
    p = dict(bundle["params"])
    frames = Frames(ds, ids, float(p.get("trim_db") or 30.0))
    gn = g if bundle["group_norm"] else None
    classes = np.asarray(bundle["classes"], dtype=object)
    col = {c: i for i, c in enumerate(bundle["classes"])}
    n_of: dict[Any, int] = {}
    if gn is not None:
        names, counts = np.unique(gn, return_counts=True)
        n_of = dict(zip(names.tolist(), counts.tolist(), strict=True))
    small = np.array([gn is not None and n_of[gn[i]] < prior_clips for i in sel], dtype=bool)
    prob = np.zeros((len(sel), len(classes)))
    for name, member in bundle["estimator"].items():
        est = member["estimator"]
        fb = member.get("fallback")
        big = ~small if fb is not None else np.ones(len(sel), dtype=bool)
        if big.any():
            _, X, _ = build(name, frames, gn, p, prior=member["prior"], prior_n=prior_clips)
            rows = [sel[k] for k in np.flatnonzero(big)]
            cols = [col[str(c)] for c in est.classes_]
            prob[np.ix_(np.flatnonzero(big), cols)] += est.predict_proba(X[rows])
        if (~big).any():
            X0 = fallback_features(name, frames, p)
            rows = [sel[k] for k in np.flatnonzero(~big)]
            cols = [col[str(c)] for c in fb.classes_]
            prob[np.ix_(np.flatnonzero(~big), cols)] += fb.predict_proba(X0[rows])
    prob /= len(bundle["estimator"])
    pred = classes[prob.argmax(1)]
    notes: list[str] = []
    weight: list[float | None] = [None] * len(sel)
    if gn is not None:
        weight = [0.0 if small[k] else n_of[gn[i]] / (n_of[gn[i]] + prior_clips)
                  for k, i in enumerate(sel)]
        lone = sorted({str(gn[i]) for k, i in enumerate(sel) if small[k]})
        if lone:
            notes.append(
                f"{where}{len(lone)} group(s) have fewer than {prior_clips:g} clips "
                f"({', '.join(lone[:5])}{', ...' if len(lone) > 5 else ''}): the model "
                "relies on per-group normalisation, so their clips were predicted by its "
                "speaker-independent fallback (per-clip normalisation; "
                "predictions.group_weight 0); expect lower accuracy until more of their "
                "clips arrive"
            )
            warnings.warn(notes[-1], ClassifyWarning, stacklevel=2)
    return pred, prob.max(1), weight, notes

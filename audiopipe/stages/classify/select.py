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
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.stages.classify.candidates import (
    CANDIDATES,
    FEATURES_VERSION,
    MODEL_OF,
    TRIM_DB,
    Frames,
    build,
    candidate_names,
    describe,
    priors,
)
from audiopipe.stages.classify.model import (
    ClassifyWarning,
    ClipClassifier,
    cv_splits,
    most_confident_view,
    oof_proba_views,
)

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = ["fit_select", "predict_bundle", "choose", "Selection"]

#: the parameters a candidate's features depend on (saved with the model)
FEATURE_PARAMS = ("features", "frame_features", "frames", "n_ceps", "trim_db", "patches")
#: suffix of a candidate scored on features of each clip alone (no group normalisation)
CLIP = "/clip"
#: the soft vote of the best two candidates by CV (scored beside ``ensemble``, the vote of
#: all, when three or more candidates are tried)
TOP2 = "ensemble-top2"


def base_name(variant: str) -> str:
    """The candidate of a scored variant: ``"stats/clip"`` -> ``"stats"``."""
    return variant.removesuffix(CLIP)


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


#: candidates trained with frequency-warped copies of their training clips (``warps``)
WARPED = ("sequence", "stats")
#: ``upper_warps`` move the spectrum above this frequency only (F2/F3, not F1): FSDD tuning
#: speakers, ``benchmarks/tune_classify_nucleus.py`` (round 21): george's "two" has a back
#: /u:/, the others' a fronted one
UPPER_WARP_HZ = 1000.0


def _augment(name: str, frames: Frames, g: np.ndarray | None, p: dict[str, Any],
             group_norm: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """VTLN-warped training copies (rows, source clip) of the candidates of :data:`WARPED`
    (``stats`` warps its MFCC and log-mel frames before summarising them; ``sequence``
    also gets copies warped above :data:`UPPER_WARP_HZ` only, ``upper_warps``); None when
    there are no warps or no frame feature of the candidate can be warped."""
    warps = [(float(a), 0.0) for a in p.get("warps") or []]
    if name == "sequence" and float(frames.recipe.get("sr") or 0.0) / 2 > UPPER_WARP_HZ:
        # (below 2 kHz sampling nothing lies above: the copies would be the clips again)
        warps += [(float(a), UPPER_WARP_HZ) for a in p.get("upper_warps") or []]
    feats = ["mfcc"] if name == "sequence" else (p.get("features") or frames.available)
    if name not in WARPED or not warps or not any(
        f in frames.available and frames.warp_matrix(f, 1.0) is not None for f in feats
    ):
        return None
    n = len(frames.ids)
    blocks = []
    for a, above in warps:
        tag = f"up{a:g}" if above else f"{a}"
        ga = None if g is None else np.asarray([f"{v}@{tag}" for v in g], dtype=object)
        _, Xa, _ = build(name, frames, ga if group_norm else None, p, warp=a, warp_above=above)
        blocks.append(Xa)
    return np.concatenate(blocks), np.tile(np.arange(n), len(warps))


def test_warps(frames: Frames, p: dict[str, Any]) -> list[float]:
    """The warp factors (other than 1) a group-normalised model reads a test group at
    (``test_warps``; maximum-likelihood VTLN: the one its clips are predicted most
    confidently at is used); none when no frame feature of the dataset can be warped."""
    tw = sorted({float(a) for a in p.get("test_warps") or []} - {1.0})
    if tw and any(frames.warp_matrix(f, 1.1) is not None for f in frames.available):
        return tw
    return []


def _sub_augment(aug: tuple[np.ndarray, np.ndarray] | None, tr: np.ndarray) -> Any:
    """The augmented rows of clips ``tr``, their sources renumbered within ``tr``."""
    if aug is None:
        return None
    m = np.isin(aug[1], tr)
    remap = {int(v): k for k, v in enumerate(tr)}
    return aug[0][m], np.array([remap[int(s)] for s in aug[1][m]], dtype=np.int64)


def voters(scores: dict[str, float], k: int = 2) -> list[str]:
    """The ``k`` best-scoring candidates (ties: listed first), the members of ``ensemble``.

    Examples
    --------
    >>> voters({"stats": 0.9, "sequence": 0.7, "hgb": 0.9, "mlp": 0.8})
    ['stats', 'hgb']
    """
    order = sorted(range(len(scores)), key=lambda i: -list(scores.values())[i])
    return [list(scores)[i] for i in order[:k]]


def _voting(variant: str, scores: dict[str, float]) -> list[str]:
    """The members of an ensemble variant: all scored candidates (``ensemble``) or the
    best two (``ensemble-top2``)."""
    return voters(scores) if base_name(variant) == TOP2 else list(scores)


def _pick(scores: dict[str, float], group: list[str], clip: list[str], auto: bool,
          tol: float) -> tuple[str, str | None]:
    """(main, fallback) among the scored variants: without group-normalised variants the
    best one and no fallback; with them the best group-normalised one and, for groups too
    small to normalise, the best per-clip one; ``auto``: the per-clip one is the main model
    (no fallback needed) when its score is within ``tol`` of the group-normalised one."""
    if not group:
        return choose({k: scores[k] for k in clip}), None
    best_g = choose({k: scores[k] for k in group})
    best_c = choose({k: scores[k] for k in clip})
    if auto and scores[best_c] >= scores[best_g] - tol:
        return best_c, None
    return best_g, best_c


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
    ``group_norm``, ``clip_tolerance``, ``self_train`` and those of
    :data:`FEATURE_PARAMS`). With groups and group normalisation every candidate is
    scored twice, on group-normalised features (``stats``) and on features of each clip
    alone (``stats/clip``); ``group_norm`` None (auto) saves the best per-clip variant
    when it is within ``clip_tolerance`` of the best group-normalised one (a new group's
    first clip is then predicted exactly as in bulk), else the group-normalised one with
    the best per-clip variant as its fallback for small groups. ``ensemble`` averages the
    class probabilities of the other candidates of the same normalisation (soft vote), and
    with three or more of them ``ensemble-top2`` those of the best two by the same CV
    (:func:`voters`, redone in every inner CV); their CV probabilities are those of their
    members, so they cost no extra fit in the choice.
    """
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y = np.asarray([str(v) for v in y], dtype=object)
    asked_norm = p.get("group_norm")
    group_norm = g is not None if asked_norm is None else bool(asked_norm) and g is not None
    auto = asked_norm is None and group_norm
    tol = float(p.get("clip_tolerance", 0.02) or 0.0)
    gn = g if group_norm else None
    rs = int(p.get("random_state", 0))
    frames = Frames(ds, ids, float(p.get("trim_db", TRIM_DB)))
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
    suffix = CLIP if group_norm else ""
    fam_group = list(base) if group_norm else []
    fam_clip = [c + suffix for c in base]
    mats: dict[str, tuple[np.ndarray, np.ndarray, Any, dict[float, np.ndarray]]] = {}
    tw = test_warps(frames, p) if group_norm else []
    for c in base:
        if group_norm:
            X_raw, X, _ = build(c, frames, gn, p)
            # the same clips read at the test-time warps (hgb reads the features of stats)
            views = {a: (mats["stats"][3][a] if c == "hgb" and "stats" in mats
                         else build(c, frames, gn, p, warp=a)[1]) for a in tw}
            mats[c] = (X_raw, X, _augment(c, frames, g, p, True), views)
        X_raw, X, _ = build(c, frames, None, p)
        mats[c + suffix] = (X_raw, X, _augment(c, frames, None, p, False), {})
    votes = ["ensemble", TOP2] if len(base) > 2 else ["ensemble"]
    if vote:
        fam_group += votes if group_norm else []
        fam_clip += [v + suffix for v in votes]

    def est(c: str) -> ClipClassifier:
        return ClipClassifier(model=MODEL_OF[base_name(c)], C=float(p.get("C", 10.0)),
                              random_state=rs)

    self_train = bool(p.get("self_train", False))

    def acc(P: np.ndarray, yy: np.ndarray) -> float:
        return float(np.mean(classes[P.argmax(1)] == yy))

    warp_of: dict[str, dict[Any, float]] = {}  # variant -> group -> its test-time warp

    def probas(rows: np.ndarray | None, folds: list) -> dict[str, np.ndarray]:
        out, views = {}, {}
        yy = y if rows is None else y[rows]
        gg = None if g is None else g if rows is None else g[rows]

        def pick(c: str, Pv: dict[float, np.ndarray]) -> np.ndarray:
            # group-normalised variants: each group read at its most confident warp
            Q, chosen = most_confident_view(Pv, gg)
            if rows is None:
                warp_of[c] = chosen
            return Q

        for c, (_, X, aug, vw) in mats.items():
            if rows is not None:
                X, aug = X[rows], _sub_augment(aug, rows)
                vw = {a: V[rows] for a, V in vw.items()}
            views[c] = oof_proba_views(est(c), X, yy, folds, classes, augment=aug,
                                       self_train=self_train, views=vw)
            out[c] = pick(c, views[c])
        if vote:
            for fam in (fam_group, fam_clip):
                sc = {c: acc(out[c], yy) for c in fam if base_name(c) in MODEL_OF}
                for v in fam[len(sc):]:
                    mem = _voting(v, sc)
                    out[v] = pick(v, {a: np.mean([views[c][a] for c in mem], axis=0)
                                      for a in views[mem[0]]})
        return out

    P = probas(None, splits)
    choosing = auto or len(fam_group) > 1 or (not fam_group and len(fam_clip) > 1)
    scores = {c: acc(P[c], y) for c in P}
    chosen, fallback = _pick(scores, fam_group, fam_clip, auto, tol)
    pred = np.empty(len(y), dtype=object)
    pr = np.zeros(len(y))
    fold = np.zeros(len(y), np.int32)
    per_fold: list[str] = []
    for i, (tr, te) in enumerate(splits):
        fold[te] = i
        pick = chosen
        if choosing:  # nested: choose again on this fold's training part only
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
                pick = _pick({c: acc(Pi[c], y[tr]) for c in Pi}, fam_group, fam_clip, auto,
                             tol)[0]
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
    if fallback is not None:
        # what a lone clip of a new group can expect: the fallback's grouped-CV accuracy
        metrics["fallback_cv_accuracy"] = scores[fallback]
    for grp, a in (warp_of.get(chosen) or {}).items():
        metrics[f"test_warp[{grp}]"] = float(a)
    fp = {k: p.get(k) for k in FEATURE_PARAMS}

    def members(name: str) -> dict[str, Any]:
        fam = fam_group if name in fam_group else fam_clip
        out = {}
        sc = {c: scores[c] for c in fam if base_name(c) in MODEL_OF}
        for c in (_voting(name, sc) if base_name(name) not in MODEL_OF else [name]):
            X_raw, X, aug, _ = mats[c]
            Xf, yf = (X, y) if aug is None else (np.r_[X, aug[0]], np.r_[y, y[aug[1]]])
            out[c] = {"estimator": clone(est(c)).fit(Xf, yf.astype(str)),
                      "prior": priors(base_name(c), frames, X_raw, fp) if c in fam_group
                      else None}
        return out

    bundle = {
        "estimator": members(chosen),
        "candidate": chosen,
        "params": fp,
        "group_norm": chosen in fam_group,
        "fallback": None if fallback is None else {"candidate": fallback,
                                                   "estimator": members(fallback)},
        "classes": [str(c) for c in classes],
        "scores": scores,
        "features_version": FEATURES_VERSION,
        "test_warps": tw if chosen in fam_group else [],
    }
    cm = confusion_matrix(ys, ps, labels=labels)
    why = describe(scores, chosen, skipped)
    for fam in (fam_group, fam_clip) if vote else ():
        sc = {c: scores[c] for c in fam if base_name(c) in MODEL_OF}
        top = voters(sc)
        metrics.update({f"voter[{c}]": 1.0 for c in top})
        for v in fam[len(sc):]:
            if v in (chosen, fallback):
                why += f"; {v} = soft vote of {' and '.join(_voting(v, sc))}" + (
                    " (the best two by CV)" if base_name(v) == TOP2 else "")
    if warp_of.get(chosen):
        why += ("; each group read at the frequency warp its clips are predicted most "
                f"confidently at (of 1, {', '.join(f'{a:g}' for a in tw)})")
    if fallback is not None:
        why += (f"; groups too small to normalise (a new group's first clips) use {fallback} "
                f"(grouped-CV accuracy {scores[fallback]:.3f})")
    elif group_norm and auto:
        why += (f" (per-clip features within {tol:g} of group-normalised ones: a new group's "
                "first clip is predicted as in bulk)")
    return Selection(pred=pred, prob=pr, fold=fold, metrics=metrics, bundle=bundle,
                     why=why, confusion=(cm, labels), warnings=notes, scores=scores)


def _member_probs(members: dict[str, Any], frames: Frames, gn: np.ndarray | None,
                  p: dict[str, Any], rows: list[int], col: dict[str, int], n_classes: int,
                  prior_clips: float, warp: float = 1.0) -> np.ndarray:
    """Mean class probabilities of a saved choice's members for clips ``rows``; members
    with a ``prior`` are group-normalised (``gn``; their frames read at ``warp``), the
    others read each clip alone."""
    prob = np.zeros((len(rows), n_classes))
    for name, member in members.items():
        est = member["estimator"]
        if member.get("prior") is not None and gn is not None:
            _, X, _ = build(base_name(name), frames, gn, p, prior=member["prior"],
                            prior_n=prior_clips, warp=warp)
        else:
            X = build(base_name(name), frames, None, p)[1]
        cols = [col[str(c)] for c in est.classes_]
        prob[:, cols] += est.predict_proba(X[rows])
    return prob / len(members)


def predict_bundle(
    bundle: dict[str, Any],
    ds: Dataset,
    ids: list[str],
    g: np.ndarray | None,
    sel: list[int] | None = None,
    *,
    prior_clips: float = 2.0,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray, list[float | None], list[str]]:
    """Labels, probabilities, group weights and warnings for clips ``ids[sel]``.

    A group-normalised model builds features for every clip of ``ids`` (a group is
    normalised with all its clips), each group's statistics shrunk toward the training
    set's as if it had ``prior_clips`` more clips; ``group_weight`` is
    ``n / (n + prior_clips)`` (None for a model on per-clip features). A group-normalised
    model saved with ``test_warps`` reads each group's clips at every warp too and uses
    the one they are predicted most confidently at (over all of the group's clips in
    ``ids``: :func:`~.model.most_confident_view`). A group with fewer
    clips than ``max(prior_clips, 2)``, or a clip whose group is None (no value), is
    predicted by the saved fallback (the best per-clip
    variant of the grouped CV; ``group_weight`` 0) and warned about.
    """
    sel = list(range(len(ids))) if sel is None else list(sel)
    p = dict(bundle["params"])
    frames = Frames(ds, ids, float(p.get("trim_db") or TRIM_DB))
    gn = g if bundle["group_norm"] else None
    classes = np.asarray(bundle["classes"], dtype=object)
    col = {c: i for i, c in enumerate(bundle["classes"])}
    n_of: dict[Any, int] = {}  # clips per group; a clip without a group value (None) has none
    if gn is not None:
        n_of = Counter(v for v in gn.tolist() if v is not None)
    fb = bundle.get("fallback")
    limit = max(prior_clips, 2.0)  # a group of one clip is never normalised by itself alone
    small = np.array([gn is not None and n_of.get(gn[i], 0) < limit for i in sel], dtype=bool)
    if small.any() and fb is None:  # (a hand-built or old bundle: fits save a fallback)
        raise ValueError(f"{where}{int(small.sum())} clip(s) are in groups of fewer than "
                         f"{limit:g} clips or have no group, and this group-normalised model "
                         "has no per-clip fallback to predict them with")
    prob = np.zeros((len(sel), len(classes)))
    gb = None if gn is None else np.asarray(  # a clip without a group is a group of its own
        [f"\0{i}" if v is None else v for i, v in enumerate(gn.tolist())], dtype=object)
    tw = [float(a) for a in bundle.get("test_warps") or []] if gn is not None else []
    for part, members, gpart in ((~small, bundle["estimator"], gb),
                                 (small, (fb or {}).get("estimator"), None)):
        if not part.any():
            continue
        rows = [sel[k] for k in np.flatnonzero(part)]
        if gpart is None or not tw:
            prob[part] = _member_probs(members, frames, gpart, p, rows, col, len(classes),
                                       prior_clips)
            continue
        # each group read at the warp its clips (all of them in ids) are most confident at
        grp = set(gpart[rows].tolist())
        every = [i for i, v in enumerate(gpart.tolist()) if v in grp]
        Q, _ = most_confident_view(
            {a: _member_probs(members, frames, gpart, p, every, col, len(classes), prior_clips,
                              warp=a) for a in [1.0, *tw]}, gpart[every])
        at = {i: k for k, i in enumerate(every)}
        prob[part] = Q[[at[i] for i in rows]]
    pred = classes[prob.argmax(1)]
    notes: list[str] = []
    weight: list[float | None] = [None] * len(sel)
    if gn is not None:
        weight = [0.0 if small[k] else n_of[gn[i]] / (n_of[gn[i]] + prior_clips)
                  for k, i in enumerate(sel)]
        lone = sorted({str(gn[i]) for k, i in enumerate(sel) if small[k] and gn[i] is not None})
        n_none = sum(1 for k, i in enumerate(sel) if small[k] and gn[i] is None)
        if lone or n_none:
            what = [f"{len(lone)} group(s) have fewer than {limit:g} clips "
                    f"({', '.join(lone[:5])}{', ...' if len(lone) > 5 else ''})"] if lone else []
            what += [f"{n_none} clip(s) have no group value"] if n_none else []
            notes.append(
                f"{where}{' and '.join(what)}: the model "
                "relies on per-group normalisation, so their clips were predicted by its "
                f"speaker-independent fallback {fb['candidate']} (per-clip features, "
                f"grouped-CV accuracy {bundle['scores'][fb['candidate']]:.3f}; "
                "predictions.group_weight 0); expect lower accuracy until more of their "
                "clips arrive (a later --predict revises them)"
            )
            warnings.warn(notes[-1], ClassifyWarning, stacklevel=2)
    return pred, prob.max(1), weight, notes

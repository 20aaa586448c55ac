"""Stage ``tag``: multi-label tagging (several tags per clip) with per-tag tuned thresholds.

One binary model per tag (one-vs-rest: ``StandardScaler + LogisticRegression``,
class-balanced) on the clip features of ``classify`` (clip statistics + time-segment
pooled frames). Each tag's decision threshold maximises F1 on *validation* scores:
out-of-fold scores of an inner cross-validation on the training clips only. The
stage reports out-of-fold (5-fold, or grouped by ``groups``) ROC-AUC macro, mAP
(macro average precision) and per-tag F1 at the tuned thresholds.

Params
------
column : str, default "tags"
    Label column holding tag lists, e.g. ``"tonal;harmonic"`` (empty = no tag).
sep : str, default ";"
columns : list of str, optional
    Instead of ``column``: several boolean columns (``1/0``, ``true/false``, ``yes/no``),
    one per tag.
groups : str, optional
    Column for grouped CV.
features : list of str, default ``["melspectrogram"]`` when the dataset has it, else all
    Frame features whose clip statistics are used (log-mel band statistics suit
    mixtures: measured better than MFCC on the real-mixture benchmark).
segments : int, default 0
    Time segments of pooled frame features (as in ``classify``; 0 = none).
stats : list of str, default ``["mean", "std"]``
C : float, default 0.2
random_state : int, default 0
predict : bool, default False
    Score clips that were not in the saved model's training set.

Outputs: ``tags`` (clip_id, tag, score, on, fold, model_id, run_id), ``metrics``
(roc_auc_macro, map, f1_macro, f1[tag], roc_auc[tag]), model ``models/tag-<column>.skops``,
PNG ``tag-<column>`` (per-tag F1 and AUC).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(80, 3))
>>> Y = np.c_[X[:, 0] > 0, X[:, 1] > 0.5]
>>> t = Tagger().fit(X, Y)
>>> bool((t.predict(X) == Y).mean() > 0.9)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiopipe.stages._common import (
    StageInputError,
    label_column,
    load_model,
    metric_rows,
    plot_path,
    save_model,
    write_metrics,
)
from audiopipe.stages._frames import as_bool, as_int, as_list, stable_id
from audiopipe.store.dataset import Dataset

__all__ = ["Tagger", "best_threshold", "parse_tags", "run"]

TRUSTED = ["audiopipe.stages.tag.Tagger"]
_TRUE = {"1", "true", "yes", "y", "t", "on"}


def best_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold maximising F1 of ``scores >= threshold`` against ``y``."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return float(np.max(scores) + 1e-6) if len(scores) else 0.5
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    f1 = 2 * tp / (tp + fp + t.sum())
    # only cut between distinct scores
    last = np.r_[s[1:] != s[:-1], True]
    i = int(np.argmax(np.where(last, f1, -1)))
    nxt = s[i + 1] if i + 1 < len(s) else s[i] - 1e-6
    return float((s[i] + nxt) / 2)


class Tagger(BaseEstimator):
    """One-vs-rest multi-label tagger with per-tag thresholds tuned on validation folds.

    Parameters
    ----------
    C : float, default 0.2
        Inverse regularisation of each tag's logistic regression.
    inner_cv : int, default 3
        Folds of the inner CV that gives validation scores for the thresholds.
    random_state : int, default 0
    """

    def __init__(self, C: float = 0.2, inner_cv: int = 3, random_state: int = 0) -> None:
        self.C = C
        self.inner_cv = inner_cv
        self.random_state = random_state

    def _model(self) -> Any:
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(
                C=self.C,
                class_weight="balanced",
                solver="liblinear",
                max_iter=1000,
                random_state=self.random_state,
            ),
        )

    def _fit_one(self, X: np.ndarray, y: np.ndarray) -> Any:
        if y.all() or not y.any():
            return float(y.mean())  # a constant tag: its prior
        return self._model().fit(X, y)

    @staticmethod
    def _score_one(m: Any, X: np.ndarray) -> np.ndarray:
        if isinstance(m, float):
            return np.full(X.shape[0], m)
        return m.predict_proba(X)[:, 1]

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Tagger:
        """``X`` (n_clips, n_features), ``Y`` (n_clips, n_tags) booleans."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=bool)
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"Y must be (n_clips, n_tags) matching X, got {Y.shape}, {X.shape}")
        self.models_ = [self._fit_one(X, Y[:, j]) for j in range(Y.shape[1])]
        val = np.zeros(Y.shape)
        k = max(2, min(self.inner_cv, X.shape[0]))
        for tr, te in KFold(k, shuffle=True, random_state=self.random_state).split(X):
            for j in range(Y.shape[1]):
                val[te, j] = self._score_one(self._fit_one(X[tr], Y[tr, j]), X[te])
        self.thresholds_ = np.array([best_threshold(Y[:, j], val[:, j]) for j in range(Y.shape[1])])
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.stack([self._score_one(m, X) for m in self.models_], axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X) >= self.thresholds_


def parse_tags(values: list[Any], sep: str = ";") -> list[list[str]]:
    """``["a;b", "", None]`` → ``[["a", "b"], [], []]`` (stripped, de-duplicated, in order)."""
    out = []
    for v in values:
        tags = [] if v in (None, "") else [t.strip() for t in str(v).split(sep)]
        out.append(list(dict.fromkeys(t for t in tags if t)))
    return out


def _targets(ds: Dataset, params: dict[str, Any]) -> tuple[list[str], np.ndarray, str]:
    cols = as_list(params.get("columns"))
    if cols:
        clips = ds.table("clips")
        for c in cols:
            if c not in clips.column_names:
                raise StageInputError(
                    f"dataset {ds.name!r} has no tag column {c!r} in its clips table"
                )
        Y = np.stack(
            [[str(v).strip().lower() in _TRUE for v in clips.column(c).to_pylist()] for c in cols],
            axis=1,
        )
        return cols, Y, "+".join(cols)
    column = str(params.get("column", "tags"))
    sep = str(params.get("sep", ";"))
    lists = parse_tags(list(label_column(ds, column, min_classes=1)), sep)
    tags = sorted({t for ts in lists for t in ts})
    Y = np.array([[t in ts for t in tags] for ts in lists], dtype=bool).reshape(len(lists), -1)
    return tags, Y, column


def _plot(path: str, tags: list[str], f1: list[float], auc: list[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(tags))
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(tags) + 1), 3))
    ax.bar(x - 0.2, f1, 0.4, label="F1 (tuned threshold)")
    ax.bar(x + 0.2, auc, 0.4, label="ROC-AUC")
    ax.set_xticks(x, tags, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _tags_table(ids, tags, S, on, folds, model_id, run_id) -> pa.Table:
    n, m = S.shape
    return pa.table(
        {
            "clip_id": pa.array([c for c in ids for _ in range(m)], pa.string()),
            "tag": pa.array(list(tags) * n, pa.string()),
            "score": pa.array(S.ravel().astype(np.float64), pa.float64()),
            "on": pa.array(on.ravel().astype(bool), pa.bool_()),
            "fold": pa.array(np.repeat(np.asarray(folds, dtype=np.int32), m), pa.int32()),
            "model_id": pa.array([model_id] * (n * m), pa.string()),
            "run_id": pa.array([run_id] * (n * m), pa.string()),
        }
    )


def run(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """Cross-validate, fit and write ``tags`` (or, with ``predict``, apply the saved model)."""
    from audiopipe.stages.classify import clip_features

    if as_bool(params.get("predict", False)):
        return _predict(ds, params, run_id=run_id)
    rs = as_int(params.get("random_state"), 0)
    features = as_list(params.get("features"))
    if features is None and "melspectrogram" in ds.features_available():
        features = ["melspectrogram"]
    segments = as_int(params.get("segments"), 0)
    tags, Y, name = _targets(ds, params)
    counts = Y.sum(axis=0)
    usable = (counts >= 2) & (counts <= Y.shape[0] - 2)
    if usable.sum() < 1 or len(tags) < 2:
        raise StageInputError(
            f"dataset {ds.name!r}, column {name!r}: tagging needs at least 2 tags and a tag that "
            f"is on for >= 2 clips and off for >= 2 (tags: {dict(zip(tags, counts.tolist(), strict=True))})"
        )
    tags = [t for t, u in zip(tags, usable, strict=True) if u]
    Y = Y[:, usable]
    ids = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    groups_col = params.get("groups")
    g = label_column(ds, groups_col) if groups_col else None
    stats = tuple(as_list(params.get("stats")) or ("mean", "std"))
    X, _ = clip_features(ds, ids, features, segments, stats=stats)
    C = float(params.get("C", 0.2))
    est = Tagger(C=C, random_state=rs)
    if g is not None:
        splits = list(GroupKFold(min(5, len(set(g)))).split(X, Y, g))
    else:
        splits = list(KFold(min(5, len(ids)), shuffle=True, random_state=rs).split(X))
    S = np.zeros(Y.shape)
    on = np.zeros(Y.shape, dtype=bool)
    fold = np.zeros(len(ids), dtype=np.int32)
    for i, (tr, te) in enumerate(splits):
        m = clone(est).fit(X[tr], Y[tr])
        S[te] = m.predict_proba(X[te])
        on[te] = S[te] >= m.thresholds_
        fold[te] = i
    auc = [roc_auc_score(Y[:, j], S[:, j]) for j in range(len(tags))]
    f1 = [f1_score(Y[:, j], on[:, j], zero_division=0) for j in range(len(tags))]
    metrics = {
        "roc_auc_macro": float(np.mean(auc)),
        "map": float(average_precision_score(Y, S, average="macro")),
        "f1_macro": float(np.mean(f1)),
    }
    metrics.update({f"f1[{t}]": v for t, v in zip(tags, f1, strict=True)})
    metrics.update({f"roc_auc[{t}]": v for t, v in zip(tags, auc, strict=True)})
    model_id = stable_id("tag", name, tags, features, segments, stats, C, rs, ids)
    final = clone(est).fit(X, Y)

    bundle = {
        "estimator": final,
        "tags": tags,
        "features": features,
        "segments": segments,
        "stats": stats,
        "train_clips": ids,
        "model_id": model_id,
    }
    model_path = save_model(ds, f"tag-{name}", bundle)
    ds.write_table("tags", _tags_table(ids, tags, S, on, fold, model_id, run_id))
    write_metrics(ds, metric_rows("tag", model_id, metrics, split="cv", run_id=run_id))
    png = plot_path(ds, f"tag-{name}")
    _plot(
        png,
        tags,
        f1,
        auc,
        f"{ds.name} {name}: mAP {metrics['map']:.3f}, AUC {metrics['roc_auc_macro']:.3f}",
    )
    return {
        "model_id": model_id,
        "tags": tags,
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "n_clips": len(ids),
        "tables": ["tags", "metrics"],
        "model": model_path,
        "plots": [png],
    }


def _predict(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    from audiopipe.stages.classify import clip_features

    cols = as_list(params.get("columns"))
    name = "+".join(cols) if cols else str(params.get("column", "tags"))
    path = params.get("model_path") or ds.path("models", f"tag-{name}.skops")
    bundle = load_model(path, trusted=TRUSTED)
    if not isinstance(bundle, dict) or "estimator" not in bundle:
        raise StageInputError(f"{path} is not a tag model")
    ids = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    trained = set(bundle["train_clips"])
    new = [c for c in ids if c not in trained]
    if not new:
        return {"model_id": bundle["model_id"], "n_clips": 0, "tables": []}
    X, _ = clip_features(ds, new, bundle["features"], bundle["segments"], stats=bundle["stats"])
    est = bundle["estimator"]
    S = est.predict_proba(X)
    ds.write_table(
        "tags",
        _tags_table(
            new,
            bundle["tags"],
            S,
            S >= est.thresholds_,
            [-1] * len(new),
            bundle["model_id"],
            run_id,
        ),
        mode="replace",
        key="clip_id",
    )
    return {"model_id": bundle["model_id"], "n_clips": len(new), "tables": ["tags"]}

"""Stage ``tag``: multi-label tagging (several tags per clip) with per-tag tuned thresholds.

One binary model per tag (:mod:`.model`: one-vs-rest ``StandardScaler +
LogisticRegression``, class-balanced) on clip features (statistics of the ``features``
table, optionally time-segment pooled frames). Each tag's decision threshold maximises F1
on *validation* scores: out-of-fold scores of an inner cross-validation on the training
clips only. The stage reports out-of-fold (5-fold, or grouped by ``groups``) ROC-AUC
macro, mAP (macro average precision) and per-tag F1 at the tuned thresholds
(``metrics.evaluation = cv``).

Clips whose tag value is empty (with ``columns``: any of them), or, with ``groups``, whose
group is empty, are *not labelled yet*: they are left out of the fit and its evaluation
(counted in the report's ``n_unlabelled``, with a warning) and ``predict`` tags them later;
the separator alone (``";"``) says a clip has none of the tags. A tag that is on (or off)
for every training clip of a fold cannot be scored there: its metrics are NaN,
left out of the macro averages, and named in the report's ``not_evaluable``.

``predict`` refuses a model fitted under another feature recipe than the dataset has now
(rebuilt since): the model records its recipe hash; one saved before that is checked against
the recipe its fitting run recorded, and used with a warning when no such run is known.

Outputs: ``tags`` (clip_id, tag, score, on, fold, evaluation, model_id, run_id),
``metrics`` (roc_auc_macro, map, f1_macro, f1[tag], roc_auc[tag]), the model
``tag-<column>.skops`` and the PNG ``tag-<column>`` (per-tag F1 and AUC) in the run's
folder.

Examples
--------
>>> parse_tags(["a;b", "", None, "b; a; a"])
[['a', 'b'], [], [], ['b', 'a']]
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from audiopipe.stages.base import Stage, StageContext, StageOutput
from audiopipe.stages.params import Param

__all__ = ["Tag", "parse_tags", "TRUSTED"]

TRUSTED = ("audiopipe.stages.tag.model.Tagger",)
_TRUE = {"1", "true", "yes", "y", "t", "on"}


def __getattr__(name: str) -> Any:  # the method API, imported on first use (scikit-learn)
    if name in ("Tagger", "best_threshold"):
        from audiopipe.stages.tag import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _empty(v: Any) -> bool:
    """A missing label value: None, NaN or blank text (not yet labelled)."""
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() == ""


def parse_tags(values: list[Any], sep: str = ";") -> list[list[str]]:
    """``["a;b", "", None]`` → ``[["a", "b"], [], []]`` (stripped, de-duplicated, in order)."""
    out = []
    for v in values:
        tags = [] if v in (None, "") else [t.strip() for t in str(v).split(sep)]
        out.append(list(dict.fromkeys(t for t in tags if t)))
    return out


class Tag(Stage):
    """Cross-validate, fit and write ``tags`` (or, with ``predict``, apply the saved model)."""

    name = "tag"
    summary = (
        "Multi-label tags (`a;b;c` column, or boolean columns), one-vs-rest with per-tag "
        "thresholds tuned on validation folds; table `tags`."
    )
    params = (
        Param("column", "str", "tags",
              "label column holding tag lists, e.g. 'tonal;harmonic'; an empty value is "
              "not labelled yet (left out of the fit and its CV, tagged by predict), the "
              "separator alone (';') says none of the tags"),
        Param("sep", "str", ";", "separator of tags in column", min_len=1),
        Param("columns", "list", None,
              "instead of column: boolean columns (1/0, true/false, yes/no), one per tag; a "
              "clip empty in any of them is not labelled yet"),
        Param("groups", "str", None, "column for grouped CV"),
        Param("features", "list", None,
              "frame features whose clip statistics are used (default: melspectrogram if "
              "present, else all)"),
        Param("segments", "int", 0, "time segments of pooled frame features (0: none)", low=0),
        Param("stats", "list", ("mean", "std"), "clip statistics used",
              choices=("mean", "std", "min", "max")),
        Param("C", "float", 0.2, "inverse regularisation of each tag's model", low=0,
              low_open=True),
        Param("random_state", "int", 0, "seed of the folds"),
        Param("predict", "bool", False, "apply the saved model to clips it was not trained on"),
        Param("model_path", "path", None,
              "with predict: a skops model file (default: the last tag fit of this column)"),
    )
    tables = ("tags",)
    trusted = TRUSTED
    # 3: unlabelled clips left out; tags not evaluable in a fold left out of macros; 4: the
    # model records the recipe hash it was fitted under (predict refuses it after a rebuild)
    version = "4"

    def _name(self, ctx: StageContext) -> str:
        cols = ctx.params["columns"]
        return "+".join(cols) if cols else ctx.params["column"]

    def inputs(self, ctx: StageContext) -> dict[str, Any]:
        return {"model": self._model_uri(ctx)} if ctx.params["predict"] else {}

    def _model_uri(self, ctx: StageContext) -> str:
        from audiopipe.stages._common import StageInputError
        from audiopipe.store.records import RunRow
        from audiopipe.store.runs import last_stage_run

        if ctx.params["model_path"]:
            return ctx.params["model_path"]
        name = self._name(ctx)

        def fit_of_name(r: RunRow) -> bool:
            p = json.loads(r.params or "{}")
            cols = p.get("columns")
            return not p.get("predict") and ("+".join(cols) if cols else p.get("column")) == name

        row = last_stage_run(ctx.ds.location, "tag", fit_of_name)
        uri = json.loads(row.artifacts or "{}").get("model") if row else None
        if not uri:
            raise StageInputError(
                f"dataset {ctx.ds.name!r} has no tag model for {name!r}: fit the stage first"
            )
        return uri

    def _targets(self, ctx: StageContext) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Tags, ``Y`` (n_clips, n_tags) and which clips are labelled (``clips`` order).

        A clip is unlabelled when its tag column is empty (any boolean column, with
        ``columns``); the separator alone (``;``) says it has none of the tags.
        """
        from audiopipe.stages._common import StageInputError, label_column

        cols, ds = ctx.params["columns"], ctx.ds
        if cols:
            clips = ds.table("clips")
            for c in cols:
                if c not in clips.column_names:
                    raise StageInputError(
                        f"dataset {ds.name!r} has no tag column {c!r} in its clips table"
                    )
            V = [clips.column(c).to_pylist() for c in cols]
            Y = np.stack([[str(v).strip().lower() in _TRUE for v in vs] for vs in V], axis=1)
            # one empty column leaves that tag unknown: the clip is not labelled yet (read as
            # "off" it would train the model that the tag is absent)
            return list(cols), Y, ~np.any([[_empty(v) for v in vs] for vs in V], axis=0)
        raw = list(label_column(ds, ctx.params["column"], min_classes=1))
        lists = parse_tags(raw, ctx.params["sep"])
        tags = sorted({t for ts in lists for t in ts})
        Y = np.array([[t in ts for t in tags] for ts in lists], dtype=bool).reshape(len(lists), -1)
        return tags, Y, np.array([not _empty(v) for v in raw], dtype=bool)

    def run(self, ctx: StageContext) -> StageOutput:
        if ctx.params["predict"]:
            return self._predict(ctx)
        from sklearn.base import clone
        from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
        from sklearn.model_selection import GroupKFold, KFold

        from audiopipe.stages._clipfeatures import clip_features
        from audiopipe.stages._common import StageInputError, label_column, metric_rows, stable_id
        from audiopipe.stages.tag.model import Tagger

        p, ds = ctx.params, ctx.ds
        rs, name = p["random_state"], self._name(ctx)
        features = p["features"]
        if features is None and "melspectrogram" in ds.features_available():
            features = ["melspectrogram"]
        tags, Y, labelled = self._targets(ctx)
        where = f"dataset {ds.name!r}, column {name!r}: "
        notes: list[str] = []
        ids_all = ctx.clip_ids()
        if not labelled.all():
            uris = ds.table("clips", ["uri"]).column("uri").to_pylist()
            unl = [u.rsplit("/", 1)[-1] for u, k in zip(uris, labelled, strict=True) if not k]
            notes.append(
                f"{where}{len(unl)} of {len(ids_all)} clips "
                + ("are empty in a tag column" if ctx.params["columns"] else "have no tags value")
                + f" (not labelled yet, e.g. {', '.join(unl[:3])}): left out of training and "
                "evaluation; --predict tags them" + ("" if ctx.params["columns"] else
                                                     " (the separator alone: 'none of the tags')")
            )
            warnings.warn(notes[-1], UserWarning, stacklevel=2)
        if p["groups"] and (nog := labelled & np.array(
                [_empty(v) for v in label_column(ds, p["groups"], min_classes=1)])).any():
            notes.append(f"dataset {ds.name!r}, column {p['groups']!r}: {int(nog.sum())} "
                         "labelled clip(s) have no group: left out of training and evaluation "
                         "(grouped folds cannot place them); --predict tags them")
            warnings.warn(notes[-1], UserWarning, stacklevel=2)
            labelled = labelled & ~nog
        Y = Y[labelled]
        ids = [c for c, k in zip(ids_all, labelled, strict=True) if k]
        counts = Y.sum(axis=0)
        usable = (counts >= 2) & (counts <= Y.shape[0] - 2)
        if usable.sum() < 1 or len(tags) < 2:
            raise StageInputError(
                f"{where}tagging needs at least 2 tags and a tag that is on for >= 2 labelled "
                f"clips and off for >= 2 (tags: {dict(zip(tags, counts.tolist(), strict=True))})"
            )
        tags = [t for t, u in zip(tags, usable, strict=True) if u]
        Y = Y[:, usable]
        g = label_column(ds, p["groups"])[labelled] if p["groups"] else None
        stats = tuple(p["stats"])
        X, _ = clip_features(ds, ids, features, p["segments"], stats=stats)
        est = Tagger(C=p["C"], random_state=rs)
        if g is not None:
            splits = list(GroupKFold(min(5, len(set(g)))).split(X, Y, g))
        else:
            splits = list(KFold(min(5, len(ids)), shuffle=True, random_state=rs).split(X))
        S = np.zeros(Y.shape)
        on = np.zeros(Y.shape, dtype=bool)
        fold = np.zeros(len(ids), dtype=np.int32)
        ok = np.ones(len(tags), dtype=bool)  # every fold's training part has both values
        for i, (tr, te) in enumerate(splits):
            m = clone(est).fit(X[tr], Y[tr])
            S[te] = m.predict_proba(X[te])
            on[te] = S[te] >= m.thresholds_
            fold[te] = i
            n_on = Y[tr].sum(axis=0)
            for j in np.flatnonzero(ok & ((n_on == 0) | (n_on == len(tr)))):
                ok[j] = False
                notes.append(
                    f"{where}tag {tags[j]!r} is {'off' if n_on[j] == 0 else 'on'} for every "
                    f"training clip of fold {i} (too few groups or clips hold it), so its "
                    "out-of-fold scores there are a constant: its metrics are not evaluable "
                    "(NaN) and left out of the macro averages"
                )
                warnings.warn(notes[-1], UserWarning, stacklevel=2)
        nan = float("nan")
        auc = [roc_auc_score(Y[:, j], S[:, j]) if ok[j] else nan for j in range(len(tags))]
        ap = [average_precision_score(Y[:, j], S[:, j]) if ok[j] else nan
              for j in range(len(tags))]
        f1 = [f1_score(Y[:, j], on[:, j], zero_division=0) if ok[j] else nan
              for j in range(len(tags))]
        metrics = {"roc_auc_macro": _macro(auc, ok), "map": _macro(ap, ok),
                   "f1_macro": _macro(f1, ok)}
        metrics.update({f"f1[{t}]": v for t, v in zip(tags, f1, strict=True)})
        metrics.update({f"roc_auc[{t}]": v for t, v in zip(tags, auc, strict=True)})
        model_id = stable_id("tag", name, tags, features, p["segments"], stats, p["C"], rs, ids)
        final = clone(est).fit(X, Y)
        bundle = {"estimator": final, "tags": tags, "features": features,
                  "segments": p["segments"], "stats": stats, "train_clips": ids,
                  "model_id": model_id, "recipe_hash": (ds.run or {}).get("recipe_hash")}
        title = f"{ds.name} {name}: mAP {metrics['map']:.3f}, AUC {metrics['roc_auc_macro']:.3f}"
        return StageOutput(
            tables={"tags": _tags_table(ids, tags, S, on, fold, "cv", model_id, ctx.run_id)},
            metrics=metric_rows("tag", model_id, metrics, evaluation="cv", run_id=ctx.run_id),
            model=bundle,
            model_name=f"tag-{name}",
            model_id=model_id,
            plots={f"tag-{name}": lambda fh: _plot(fh, tags, f1, auc, title)},
            report={"tags": tags, "n_clips": len(ids), "n_unlabelled": len(ids_all) - len(ids),
                    "not_evaluable": [t for t, k in zip(tags, ok, strict=True) if not k],
                    "warnings": notes},
            n_clips=len(ids),
        )

    def _predict(self, ctx: StageContext) -> StageOutput:
        from audiopipe.stages._clipfeatures import clip_features
        from audiopipe.stages._common import StageInputError, check_recipe, load_model

        uri = self._model_uri(ctx)
        bundle = load_model(ctx.ds, uri, trusted=TRUSTED)
        if not isinstance(bundle, dict) or "estimator" not in bundle:
            raise StageInputError(f"{uri} is not a tag model")
        cols = ctx.params["columns"]
        fit = (f"--set columns=[{','.join(cols)}]" if cols
               else f"--set column={ctx.params['column']}")
        unchecked = check_recipe(ctx.ds, bundle.get("recipe_hash"), f"tag model {uri}",
                                 f"refit: run `audiopipe stage tag {ctx.ds.name} {fit}`",
                                 stage="tag", model=uri)
        trained = set(bundle["train_clips"])
        new = [c for c in ctx.clip_ids() if c not in trained]
        if not new:
            return StageOutput(model_id=bundle["model_id"], report={"n_clips": 0})
        X, _ = clip_features(ctx.ds, new, bundle["features"], bundle["segments"],
                             stats=tuple(bundle["stats"]))
        est = bundle["estimator"]
        S = est.predict_proba(X)
        table = _tags_table(new, bundle["tags"], S, S >= est.thresholds_, [None] * len(new),
                            "predict", bundle["model_id"], ctx.run_id)
        return StageOutput(
            replace={"tags": (table, "clip_id")},
            model_id=bundle["model_id"],
            report={"n_clips": len(new), "model_file": uri,
                    "warnings": [unchecked] if unchecked else []},
            n_clips=len(new),
        )


def _macro(values: list[float], ok: np.ndarray) -> float:
    return float(np.mean(np.asarray(values)[ok])) if ok.any() else float("nan")


def _tags_table(ids, tags, S, on, folds, evaluation, model_id, run_id) -> Any:
    import pyarrow as pa

    n, m = S.shape
    return pa.table(
        {
            "clip_id": pa.array([c for c in ids for _ in range(m)], pa.string()),
            "tag": pa.array(list(tags) * n, pa.string()),
            "score": pa.array(S.ravel().astype(np.float64), pa.float64()),
            "on": pa.array(np.asarray(on).ravel().astype(bool), pa.bool_()),
            "fold": pa.array([None if f is None else int(f) for f in folds for _ in range(m)],
                             pa.int32()),
            "evaluation": pa.array([evaluation] * (n * m), pa.string()),
            "model_id": pa.array([model_id] * (n * m), pa.string()),
            "run_id": pa.array([run_id] * (n * m), pa.string()),
        }
    )


def _plot(fh: Any, tags: list[str], f1: list[float], auc: list[float], title: str) -> None:
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
    fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)



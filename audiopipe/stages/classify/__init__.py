"""Stage ``classify``: single-label clip classification with honest, grouped cross-validation.

Default features per clip (``frames > 0``): the clip's frame sequence of
``frame_features`` (default MFCC and its deltas, first ``n_ceps`` coefficients) with
leading/trailing silence trimmed (frames more than ``trim_db`` below the loudest ``rms``
frame), normalised (with ``groups``: by the group's frame mean/std, speaker CMVN; else
per-clip MFCC mean), *resampled to ``frames`` frames* (time normalisation, keeps the
order of sounds) and flattened, plus the trimmed sequence's mean/std and log length
(:mod:`audiopipe.stages._clipfeatures`). ``features`` adds the ``features`` table's clip
statistics; ``segments > 0`` adds pooled-segment means. With a ``groups`` column
(speaker, fold, ...) every clip feature is standardised *within its group*
(``group_norm``; label-free) and the model (:mod:`.model`) is evaluated by
leave-one-group-out (more than 10 groups: 5-fold grouped) CV, with one round of
self-training on each held-out group (``self_train``; its predicted, never its true,
labels); without groups, by stratified 5-fold CV. Training folds are augmented with
copies whose MFCCs are warped along frequency by ``warps`` (vocal-tract-length
perturbation; needs the MFCC recipe in the frames' metadata).

Outputs: tables ``predictions`` (clip_id, label, probability, fold, truth, evaluation,
model_id, run_id; ``evaluation`` is ``cv`` for out-of-fold predictions, ``predict`` for a
saved model applied to new clips), ``confusion`` (model_id, truth, label, count),
``metrics`` (accuracy, macro_f1, accuracy[group]; ``evaluation`` cv, or predict when
``--predict`` scores clips whose truth is known); the model ``classify-<target>.skops`` and
the PNG ``confusion-<target>`` in the run's folder.

Measured on ../shared/corpora/fsdd (2000 clips, 4 speakers, leave-one-speaker-out, outer
folds only; every design choice made by inner leave-one-speaker-out CV inside the outer
training folds) with the recipe 8 kHz, n_fft 512, hop 128, 20 MFCC from 40 mels + deltas,
rms (``benchmarks/classify_fsdd.py``): accuracy 0.857, macro-F1 0.854 (per speaker
0.82-0.92) in 47-54 s on 2 shared cores; the anchor (random forest on MFCC/delta mean/std)
0.42; the previous default 0.736.

Examples
--------
>>> import numpy as np
>>> from audiopipe.stages.classify import ClipClassifier
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(0, 1, (20, 3)), rng.normal(3, 1, (20, 3))]
>>> y = np.array(["a"] * 20 + ["b"] * 20)
>>> bool((ClipClassifier().fit(X, y).predict(X) == y).mean() > 0.9)
True
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from audiopipe.stages.base import Stage, StageContext, StageOutput
from audiopipe.stages.params import REQUIRED, Param

__all__ = ["Classify", "TRUSTED"]

_LAZY = {
    "ClipClassifier": "audiopipe.stages.classify.model",
    "grouped_cv": "audiopipe.stages.classify.model",
    "standardize_within": "audiopipe.stages.classify.model",
    "MODELS": "audiopipe.stages.classify.model",
    "clip_features": "audiopipe.stages._clipfeatures",
    "sequence_features": "audiopipe.stages._clipfeatures",
    "warp_matrix": "audiopipe.stages._clipfeatures",
}


def __getattr__(name: str) -> Any:  # the method API, imported on first use (scikit-learn)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TRUSTED = (
    "audiopipe.stages.classify.model.ClipClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


class Classify(Stage):
    """Fit + cross-validate a clip classifier (or, with ``predict``, apply the saved one)."""

    name = "classify"
    summary = (
        "Clip classifier (SVM on time-normalised MFCC sequences) with grouped "
        "cross-validation; tables `predictions`, `confusion`; `--predict` scores new clips "
        "with the saved model."
    )
    params = (
        Param("target", "str", REQUIRED, "label column of the clips table to predict"),
        Param("groups", "str", None, "column for grouped CV and per-group normalisation"),
        Param("features", "list", None,
              "frame features whose clip statistics are added (default: all when frames=0)"),
        Param("frames", "int", 10, "length of the time-normalised frame sequence (0: none)",
              low=0),
        Param("n_ceps", "int", 13, "coefficients kept of each frame feature", low=1),
        Param("trim_db", "float", 30.0, "silence-trimming threshold below the loudest frame",
              low=0),
        Param("warps", "floats", (0.9, 1.1),
              "frequency-warp factors of augmented training copies ([] disables)", low=0.5,
              high=2.0),
        Param("segments", "int", 0, "equal time segments of pooled frame features (0: none)",
              low=0),
        Param("frame_features", "list", None,
              "frame features of the sequence (default mfcc, mfcc_delta; missing ones skipped)"),
        Param("model", "str", "svm", "classifier", choices=("svm", "logreg", "hgb", "rf")),
        Param("C", "float", 10.0, "inverse regularisation (svm; logreg uses C / 200)", low=0),
        Param("group_norm", "bool", None, "standardise features within groups (default: with groups)"),
        Param("self_train", "bool", None,
              "one self-training round per held-out group (default: with groups)"),
        Param("random_state", "int", 0, "seed of the folds and models"),
        Param("predict", "bool", False, "apply the saved model to clips it was not trained on"),
        Param("all", "bool", False, "with predict: score every clip, trained ones too"),
        Param("model_path", "path", None,
              "with predict: a skops model file (default: the last classify fit of target)"),
    )
    tables = ("predictions", "confusion")
    trusted = TRUSTED
    version = "2"  # predictions.evaluation, metrics.evaluation

    def inputs(self, ctx: StageContext) -> dict[str, Any]:
        return {"model": self._model_uri(ctx)} if ctx.params["predict"] else {}

    def _model_uri(self, ctx: StageContext) -> str:
        from audiopipe.stages._common import StageInputError
        from audiopipe.store.records import RunRow
        from audiopipe.store.runs import last_stage_run

        if ctx.params["model_path"]:
            return ctx.params["model_path"]
        target = ctx.params["target"]

        def fit_of_target(r: RunRow) -> bool:
            p = json.loads(r.params or "{}")
            return not p.get("predict") and p.get("target") == target

        row = last_stage_run(ctx.ds.location, "classify", fit_of_target)
        uri = json.loads(row.artifacts or "{}").get("model") if row else None
        if not uri:
            raise StageInputError(
                f"dataset {ctx.ds.name!r} has no classify model for target {target!r}: "
                "fit the stage first (without predict)"
            )
        return uri

    def run(self, ctx: StageContext) -> StageOutput:
        if ctx.params["predict"]:
            return self._predict(ctx)
        from sklearn.base import clone
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

        from audiopipe.stages._clipfeatures import clip_features, warp_matrix
        from audiopipe.stages._common import StageInputError, label_column, metric_rows, stable_id
        from audiopipe.stages._frames import frames_recipe
        from audiopipe.stages.classify.model import ClipClassifier, grouped_cv, standardize_within

        p, ds = ctx.params, ctx.ds
        target, groups_col = p["target"], p["groups"]
        group_norm = p["group_norm"] if p["group_norm"] is not None else groups_col is not None
        self_train = p["self_train"] if p["self_train"] is not None else groups_col is not None
        warps = list(p["warps"])
        y_all = label_column(ds, target)
        ids_all = ctx.clip_ids()
        g_all = label_column(ds, groups_col) if groups_col else None
        keep = np.array([v not in (None, "") for v in y_all])
        ids = [c for c, k in zip(ids_all, keep, strict=True) if k]
        y = np.asarray([str(v) for v in y_all[keep]], dtype=object)
        g = None if g_all is None else np.asarray([str(v) for v in g_all[keep]], dtype=object)
        shape = {"frames": p["frames"], "n_ceps": p["n_ceps"], "trim_db": p["trim_db"]}
        feats, segments, frame_features = p["features"], p["segments"], p["frame_features"]
        X, names = clip_features(
            ds, ids, feats, segments, frame_features, groups=g if group_norm else None, **shape
        )
        if group_norm:
            X = standardize_within(X, g)
        augment = None
        if p["frames"] > 0 and warps and warp_matrix(1.0, frames_recipe(ds)) is not None:
            blocks = []
            for a in warps:
                ga = None if g is None else np.asarray([f"{v}@{a}" for v in g], dtype=object)
                Xa, _ = clip_features(
                    ds, ids, feats, segments, frame_features,
                    groups=ga if group_norm else None, warp=a, **shape,
                )
                blocks.append(standardize_within(Xa, ga) if group_norm else Xa)
            augment = (np.concatenate(blocks), np.tile(np.arange(len(ids)), len(warps)))
        else:
            warps = []
        est = ClipClassifier(model=p["model"], C=p["C"], random_state=p["random_state"])
        try:
            pred, prob, fold = grouped_cv(
                est, X, y, g, random_state=p["random_state"], augment=augment,
                self_train=self_train,
            )
        except ValueError as err:
            raise StageInputError(f"dataset {ds.name!r}, column {target!r}: {err}") from None
        model_id = stable_id(
            "classify", target, groups_col, feats, segments, frame_features, p["model"],
            p["random_state"], group_norm, shape, warps, p["C"], self_train, ids,
        )
        pred_s = pred.astype(str)
        metrics = {
            "accuracy": accuracy_score(y, pred_s),
            "macro_f1": f1_score(y, pred_s, average="macro"),
        }
        if g is not None:
            for grp in sorted(set(g)):
                m = g == grp
                metrics[f"accuracy[{grp}]"] = accuracy_score(y[m], pred_s[m])
        if augment is None:
            final = clone(est).fit(X, y)
        else:
            final = clone(est).fit(np.r_[X, augment[0]], np.r_[y, y[augment[1]]])
        labels = sorted(set(y))
        cm = confusion_matrix(y, pred_s, labels=labels)
        bundle = {
            "estimator": final, "target": target, "groups": groups_col, "features": feats,
            "segments": segments, "frame_features": frame_features, "group_norm": group_norm,
            **shape, "warps": warps, "feature_names": names, "train_clips": ids,
            "model_id": model_id,
        }
        title = f"{ds.name} {target}: acc {metrics['accuracy']:.3f} ({p['model']}, CV)"
        return StageOutput(
            tables={
                "predictions": _predictions(ids, pred, prob, fold, list(y), "cv", model_id,
                                            ctx.run_id),
                "confusion": _confusion(cm, labels, model_id),
            },
            metrics=metric_rows("classify", model_id, metrics, evaluation="cv", run_id=ctx.run_id),
            model=bundle,
            model_name=f"classify-{target}",
            model_id=model_id,
            plots={f"confusion-{target}": lambda fh: _plot_confusion(fh, cm, labels, title)},
            report={"n_clips": len(ids)},
            n_clips=len(ids),
        )

    def _predict(self, ctx: StageContext) -> StageOutput:
        from sklearn.metrics import accuracy_score, f1_score

        from audiopipe.stages._clipfeatures import clip_features
        from audiopipe.stages._common import StageInputError, label_column, load_model, metric_rows
        from audiopipe.stages.classify.model import standardize_within

        p, ds = ctx.params, ctx.ds
        uri = self._model_uri(ctx)
        bundle = load_model(ds, uri, trusted=TRUSTED)
        if not isinstance(bundle, dict) or "estimator" not in bundle:
            raise StageInputError(f"{uri} is not a classify model")
        ids_all = ctx.clip_ids()
        trained = set(bundle["train_clips"])
        new = ids_all if p["all"] else [c for c in ids_all if c not in trained]
        model_id = bundle["model_id"]
        if not new:
            return StageOutput(model_id=model_id, report={"n_clips": 0, "model_file": uri})
        # group normalisation uses every clip of a group in the dataset (label-free)
        g = None
        if bundle["group_norm"] and bundle["groups"]:
            gv = label_column(ds, bundle["groups"], min_classes=1)
            g = np.asarray([str(v) for v in gv], dtype=object)
        X_all, _ = clip_features(
            ds, ids_all, bundle["features"], bundle["segments"], bundle["frame_features"],
            groups=g, frames=int(bundle.get("frames", 0)), n_ceps=bundle.get("n_ceps"),
            trim_db=float(bundle.get("trim_db", 30.0)),
        )
        if g is not None:
            X_all = standardize_within(X_all, g)
        pos = {c: i for i, c in enumerate(ids_all)}
        est = bundle["estimator"]
        prob = est.predict_proba(X_all[[pos[c] for c in new]])
        pred = est.classes_[prob.argmax(1)]
        clips = ds.table("clips")
        truth: list[Any] = [None] * len(new)
        if p["target"] in clips.column_names:
            col = dict(zip(ids_all, clips.column(p["target"]).to_pylist(), strict=True))
            truth = [col[c] or None for c in new]
        known = [i for i, t in enumerate(truth) if t is not None]
        metrics = []
        if known:
            yt = [str(truth[i]) for i in known]
            yp = [str(pred[i]) for i in known]
            m = {"accuracy": accuracy_score(yt, yp), "macro_f1": f1_score(yt, yp, average="macro"),
                 "n_clips": float(len(known))}
            metrics = metric_rows("classify", model_id, m, evaluation="predict", split="new",
                                  run_id=ctx.run_id)
        return StageOutput(
            replace={
                "predictions": (
                    _predictions(new, pred, prob.max(1), [None] * len(new), truth, "predict",
                                 model_id, ctx.run_id),
                    "clip_id",
                )
            },
            metrics=metrics,
            model_id=model_id,
            report={"n_clips": len(new), "model_file": uri,
                    "predicted": dict(zip(new, [str(x) for x in pred], strict=True))},
            n_clips=len(new),
        )


def _predictions(ids, labels, probs, folds, truth, evaluation, model_id, run_id) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "clip_id": pa.array(ids, pa.string()),
            "label": pa.array([str(x) for x in labels], pa.string()),
            "probability": pa.array(np.asarray(probs, dtype=np.float64), pa.float64()),
            "fold": pa.array([None if f is None else int(f) for f in folds], pa.int32()),
            "truth": pa.array([None if t is None else str(t) for t in truth], pa.string()),
            "evaluation": pa.array([evaluation] * len(ids), pa.string()),
            "model_id": pa.array([model_id] * len(ids), pa.string()),
            "run_id": pa.array([run_id] * len(ids), pa.string()),
        }
    )


def _confusion(cm: np.ndarray, labels: list[str], model_id: str) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "model_id": [model_id] * cm.size,
            "truth": [t for t in labels for _ in labels],
            "label": [q for _ in labels for q in labels],
            "count": pa.array(cm.ravel().astype(np.int64)),
        }
    )


def _plot_confusion(fh: Any, cm: np.ndarray, labels: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(labels), 0.8 + 0.5 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)



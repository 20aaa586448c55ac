"""Stage ``classify``: single-label clip classification, the model chosen per dataset by
inner grouped cross-validation, evaluated honestly.

The candidates (:mod:`.candidates`; ``candidates`` selects among them):

- ``stats``: rich clip statistics of every frame feature (mean, std, 10/50/90th
  percentiles, mean |Δ| of the trimmed clip) and the log-mel frames' texture (modulation
  spectrum, spectral contrast, onset rate and periodicity: :mod:`.texture`) + RBF SVM
  trained with frequency-warped copies (``warps``);
- ``sequence``: time-normalised MFCC sequences (trimmed, speaker-CMVN with
  ``groups``, resampled to ``frames`` frames) + RBF SVM trained with VTLN-warped copies
  (``warps``) and copies warped above 1 kHz only (``upper_warps``: F2 moved, F1 kept);
- ``hgb``: the rich statistics + histogram gradient boosting;
- ``mlp``: log-mel patches (``patches`` time steps × mel bands + band mean/std) + a
  one-hidden-layer network on CPU (needs the ``melspectrogram`` frame feature);
- ``ensemble``: the mean class probabilities of the other candidates tried (soft vote),
  scored beside ``ensemble-top2``, the soft vote of the best two by the same CV (redone in
  every inner CV; ``metrics`` ``voter[<variant>]`` names them).

With a ``groups`` column (speaker, fold, ...) folds are leave-one-group-out (more than 10
groups: 5-fold grouped), and every candidate is scored twice: on features standardised
within their group (``stats``: speaker normalisation, label-free) and on features of each
clip alone (``stats/clip``; ``sequence/clip`` with utterance mean normalisation). Without
groups, stratified 5-fold on per-clip features. Every variant is cross-validated on the
same folds; the most accurate group-normalised one is saved unless a per-clip one is
within ``clip_tolerance`` of it (``group_norm`` forces either way): per-clip features
predict a new group's first clip exactly as in bulk, group-normalised ones need the
group's clips. A group-normalised variant reads each held-out group at the frequency
warps ``test_warps`` too and uses the warp its clips are predicted most confidently at
(maximum-likelihood VTLN at test time: no label of the group read, nothing refitted;
``metrics`` ``test_warp[<group>]``); ``--predict`` does the same for a new group. The
reported ``accuracy``/``macro_f1`` are *nested*: in each outer fold the
choice is made again by an inner grouped CV on that fold's training part only, so no
held-out clip took part in any choice. ``metrics`` also holds ``cv_accuracy[<variant>]``
(each variant's CV score), ``chosen[<variant>]`` (1 for the one saved),
``nested_chosen[<variant>]`` (how many outer folds chose it) and ``fallback_cv_accuracy``;
the run's report says what was chosen and why. Degenerate inputs are warned
(:class:`~.model.ClassifyWarning`, and listed in the report): a class with one clip, a fold
whose training part lacks classes of its test part, labelled clips with no ``groups`` value
(left out of training: ``--predict`` labels them later). Clips with no label yet are left
out of training too and counted in the report's ``n_unlabelled`` (``--predict`` labels them).

``--predict`` applies the saved model to clips it was not trained on, and refuses it when the
dataset was rebuilt with another feature recipe since the fit (the model records the recipe
hash it was fitted under; one saved before that is checked against the recipe its fitting
run recorded, and used with a warning when no such run is known, e.g. a ``model_path`` from
elsewhere). With a
group-normalised model a group (a new speaker) is normalised with all its clips in the
dataset, its statistics shrunk toward the training set's as if it had ``prior_clips`` more
clips (tuned on the FSDD tuning speakers); a group with fewer clips than that, or than 2
(a new speaker's first clip is never normalised by itself alone), and a clip with no group
value are predicted by the fallback saved with the model, the best per-clip
variant of the same CV (its CV accuracy is ``fallback_cv_accuracy``), with a warning. Each
``--predict`` predicts every clip not trained on again, so a new speaker's first clips are
revised as more of them arrive. ``predictions.group_weight`` says how much of the group's
own statistics was used (0: the fallback; empty: per-clip model).

Outputs: tables ``predictions`` (clip_id, label, probability, fold, truth, evaluation,
group_weight, model_id, run_id; ``evaluation`` is ``cv`` for nested out-of-fold
predictions, ``predict`` for a saved model applied to new clips), ``confusion`` (model_id,
truth, label, count), ``metrics`` (``evaluation`` cv, or predict when ``--predict`` scores
clips whose truth is known); the model ``classify-<target>.skops`` and the PNG
``confusion-<target>`` in the run's folder.

Measured (``benchmarks/classify_benchmark.py``, 2026-12-02, round 22; the candidate set and
defaults chosen with ``benchmarks/tune_classify.py`` on five ESC-10 classes and three FSDD
speakers only; before = round 21, without ``test_warps``): all ten ESC-10 classes (half of
them tuned on), grouped 5-fold, nested accuracy 0.897 (before 0.897; chose ``hgb/clip``)
against 0.790 for librosa MFCC mean/std + SVM in the same run; the five classes held back
from tuning 0.975 (before 0.975; chose ``ensemble-top2/clip``, the soft vote of
``stats/clip`` and ``hgb/clip``) against 0.875. FSDD speaker nicolas (never looked at),
model chosen and fitted on every take of the other three speakers (1,500 clips): 0.880 in
bulk (before 0.858; chose ``ensemble``, the vote of all four, read at his most confident
warp), 0.856 as his clips arrive (the first 20 one at a time, then 20 at a time, each
batch with his clips so far; before 0.848), 0.664 for a clip with no other clip of his
known (unchanged; the fallback ``ensemble-top2/clip``, the vote of ``hgb/clip`` and
``mlp/clip``, grouped CV 0.749); plain baseline 0.282. A lone first clip stays below bulk:
the per-clip fallback loses 22 points on nicolas and 15 in the tuning CV (0.749 against
0.902; ``tune_classify.py --prior``). The ESC-10 goal (≥ 0.88, all ten classes) is
reached; the FSDD goal (≥ 0.90 for a new speaker) is not (other cepstra, DTW kernels,
speaker whitening, weighted votes, gated second opinions: ``tune_classify.py`` rounds).

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
import math
import warnings
from typing import Any

import numpy as np

from audiopipe.stages.base import Stage, StageContext, StageOutput
from audiopipe.stages.classify.candidates import FEATURES_VERSION, TRIM_DB
from audiopipe.stages.params import REQUIRED, Param

#: the candidate models (see :mod:`.candidates`), in the order ties are broken
CANDIDATE_NAMES = ("stats", "sequence", "hgb", "mlp", "ensemble")

__all__ = ["Classify", "TRUSTED", "CANDIDATE_NAMES"]

_LAZY = {
    "ClipClassifier": "audiopipe.stages.classify.model",
    "grouped_cv": "audiopipe.stages.classify.model",
    "standardize_within": "audiopipe.stages.classify.model",
    "MODELS": "audiopipe.stages.classify.model",
    "ClassifyWarning": "audiopipe.stages.classify.model",
    "cv_splits": "audiopipe.stages.classify.model",
    "fit_select": "audiopipe.stages.classify.select",
    "predict_bundle": "audiopipe.stages.classify.select",
    "CANDIDATES": "audiopipe.stages.classify.candidates",
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
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
)


class Classify(Stage):
    """Fit + cross-validate a clip classifier (or, with ``predict``, apply the saved one)."""

    name = "classify"
    summary = (
        "Clip classifier chosen per dataset by inner grouped cross-validation (clip statistics "
        "+ SVM, time-normalised sequences, gradient boosting, log-mel MLP); tables "
        "`predictions`, `confusion`; `--predict` scores new clips with the saved model."
    )
    params = (
        Param("target", "str", REQUIRED, "label column of the clips table to predict"),
        Param("groups", "str", None, "column for grouped CV and per-group normalisation"),
        Param("candidates", "list", CANDIDATE_NAMES,
              "models to choose from by inner CV (one: no choice)", choices=CANDIDATE_NAMES),
        Param("features", "list", None,
              "frame features of the clip statistics (stats, hgb; default: all)"),
        Param("frames", "int", 10, "sequence: length of the time-normalised frame sequence",
              low=1),
        Param("n_ceps", "int", 13, "sequence: coefficients kept of each frame feature", low=1),
        Param("trim_db", "float", TRIM_DB, "silence-trimming threshold below the loudest frame "
              "(tuned on FSDD tuning speakers and ESC-10 tuning classes)",
              low=0),
        Param("warps", "floats", (0.9, 1.1),
              "sequence, stats: frequency-warp factors of augmented training copies ([] disables)",
              low=0.5, high=2.0, min_len=0),
        Param("upper_warps", "floats", (0.7, 1.4),
              "sequence: more training copies warped above 1 kHz only (F2/F3 moved, F1 kept: "
              "a vowel of another accent; [] disables)", low=0.5, high=2.0, min_len=0),
        Param("test_warps", "floats", (0.9, 0.95, 1.05, 1.1),
              "with groups: a group-normalised model also reads each test group's clips "
              "at these frequency warps and uses the one they are predicted most "
              "confidently at (maximum-likelihood VTLN at test time, no refit; [] disables)",
              low=0.5, high=2.0, min_len=0),
        Param("frame_features", "list", None,
              "sequence: frame features (default mfcc; missing ones skipped)"),
        Param("patches", "int", 8, "mlp: time steps of the log-mel patches", low=1),
        Param("C", "float", 10.0, "inverse regularisation of the SVMs", low=0, low_open=True),
        Param("group_norm", "bool", None,
              "standardise features within groups (default: chosen by the grouped CV)"),
        Param("clip_tolerance", "float", 0.02,
              "with groups: per-clip features are chosen when their CV accuracy is within "
              "this of group-normalised ones (a new group's first clip then scores as in "
              "bulk)", low=0),
        Param("self_train", "bool", False,
              "one self-training round per held-out group (transductive; off by default)"),
        Param("random_state", "int", 0, "seed of the folds and models"),
        Param("predict", "bool", False, "apply the saved model to clips it was not trained on"),
        Param("all", "bool", False, "with predict: score every clip, trained ones too"),
        Param("prior_clips", "float", 2.0,
              "with predict: a group's normalisation is shrunk toward the training set's as "
              "if it had this many more clips; smaller groups use the per-clip fallback "
              "(tuned on FSDD tuning speakers: benchmarks/tune_classify.py)", low=0),
        Param("model_path", "path", None,
              "with predict: a skops model file (default: the last classify fit of target)"),
    )
    tables = ("predictions", "confusion")
    trusted = TRUSTED
    # 8: sequence trained with copies warped above 1 kHz (upper_warps); 9: a new group read
    # at its most confident frequency warp (test_warps); 10: the model records the recipe
    # hash it was fitted under (--predict refuses it after a rebuild)
    version = "10"

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
        from audiopipe.stages._common import StageInputError, label_column, metric_rows, stable_id
        from audiopipe.stages.classify.model import ClassifyWarning
        from audiopipe.stages.classify.select import fit_select

        p, ds = ctx.params, ctx.ds
        target, groups_col = p["target"], p["groups"]
        y_all = label_column(ds, target)
        ids_all = ctx.clip_ids()
        g_all = label_column(ds, groups_col, min_classes=1) if groups_col else None
        keep = np.array([v not in (None, "") for v in y_all])
        n_unlabelled, no_group = int((~keep).sum()), []
        if g_all is not None and (n := int((keep & (nog := _no_value(g_all))).sum())):
            no_group.append(
                f"dataset {ds.name!r}, column {groups_col!r}: {n} labelled clip(s) have no "
                "value: left out of training (a clip without a group can be neither "
                "normalised with its group nor kept out of its group's folds); --predict "
                "labels them with the per-clip fallback")
            warnings.warn(no_group[0], ClassifyWarning, stacklevel=2)
            keep &= ~nog
        ids = [c for c, k in zip(ids_all, keep, strict=True) if k]
        y = np.asarray([str(v) for v in y_all[keep]], dtype=object)
        g = None if g_all is None else np.asarray([str(v) for v in g_all[keep]], dtype=object)
        try:
            res = fit_select(ds, ids, y, g, p, where=f"dataset {ds.name!r}, column {target!r}: ")
        except ValueError as err:
            raise StageInputError(f"dataset {ds.name!r}, column {target!r}: {err}") from None
        model_id = stable_id(
            "classify", target, groups_col, res.bundle["candidate"], res.bundle["params"],
            p["candidates"], p["random_state"], p["C"], p["self_train"], p["group_norm"],
            p["clip_tolerance"], ids, p["test_warps"],
        )
        res.bundle.update(model_id=model_id, target=target, groups=groups_col, train_clips=ids,
                          recipe_hash=(ds.run or {}).get("recipe_hash"))
        metrics = res.metrics
        title = (f"{ds.name} {target}: nested-CV acc {metrics['accuracy']:.3f} "
                 f"(chose {res.bundle['candidate']})")
        cm, labels = res.confusion
        return StageOutput(
            tables={
                "predictions": _predictions(ids, res.pred, res.prob, res.fold, list(y), "cv",
                                            model_id, ctx.run_id, [1.0] * len(ids)),
                "confusion": _confusion(cm, labels, model_id),
            },
            metrics=metric_rows("classify", model_id, metrics, evaluation="cv", run_id=ctx.run_id),
            model=res.bundle,
            model_name=f"classify-{target}",
            model_id=model_id,
            plots={f"confusion-{target}": lambda fh: _plot_confusion(fh, cm, labels, title)},
            report={"n_clips": len(ids), "n_unlabelled": n_unlabelled,
                    "chosen": res.bundle["candidate"],
                    "fallback": (res.bundle["fallback"] or {}).get("candidate"), "why": res.why,
                    "warnings": no_group + res.warnings},
            n_clips=len(ids),
        )

    def _predict(self, ctx: StageContext) -> StageOutput:
        from sklearn.metrics import accuracy_score, f1_score

        from audiopipe.stages._common import (
            StageInputError,
            check_recipe,
            load_model,
            metric_rows,
        )
        from audiopipe.stages.classify.select import predict_bundle

        p, ds = ctx.params, ctx.ds
        uri = self._model_uri(ctx)
        bundle = load_model(ds, uri, trusted=TRUSTED)
        if (not isinstance(bundle, dict) or not {"classes", "candidate", "fallback"} <= set(bundle)
                or bundle.get("features_version") != FEATURES_VERSION):
            raise StageInputError(f"{uri} is not a classify model of this version (refit it)")
        refit = f"refit: run `audiopipe stage classify {ds.name} --set target={p['target']}`"
        unchecked = check_recipe(ds, bundle.get("recipe_hash"), f"classify model {uri}", refit,
                                 stage="classify", model=uri)
        ids_all = ctx.clip_ids()
        trained = set(bundle["train_clips"])
        new = ids_all if p["all"] else [c for c in ids_all if c not in trained]
        model_id = bundle["model_id"]
        if not new:
            return StageOutput(model_id=model_id, report={"n_clips": 0, "model_file": uri})
        # group normalisation uses every clip of a group in the dataset (label-free), shrunk
        # toward the training statistics when the group is small
        # (a clip without a group value, or all of them when the dataset lacks the column,
        # is predicted by the model's per-clip fallback, with a warning: predict_bundle)
        g, notes = None, [unchecked] if unchecked else []
        if bundle["group_norm"] and bundle["groups"]:
            clips = ds.table("clips")
            gv = [None] * clips.num_rows
            if bundle["groups"] in clips.column_names:
                gv = clips.column(bundle["groups"]).to_pylist()
            else:
                notes.append(f"dataset {ds.name!r} has no column {bundle['groups']!r}, which "
                             "the model groups clips by: no clip has a group value")
            g = np.asarray([None if m else str(v) for v, m in zip(gv, _no_value(gv), strict=True)],
                           dtype=object)
        pos = {c: i for i, c in enumerate(ids_all)}
        sel = [pos[c] for c in new]
        pred, prob, weight, warns = predict_bundle(
            bundle, ds, ids_all, g, sel, prior_clips=p["prior_clips"],
            where=f"dataset {ds.name!r}: ",
        )
        warns = [*notes, *warns]
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
            m = {"accuracy": accuracy_score(yt, yp),
                 "macro_f1": f1_score(yt, yp, average="macro", zero_division=0),
                 "n_clips": float(len(known))}
            metrics = metric_rows("classify", model_id, m, evaluation="predict", split="new",
                                  run_id=ctx.run_id)
        return StageOutput(
            replace={
                "predictions": (
                    _predictions(new, pred, prob, [None] * len(new), truth, "predict",
                                 model_id, ctx.run_id, weight),
                    "clip_id",
                )
            },
            metrics=metrics,
            model_id=model_id,
            report={"n_clips": len(new), "model_file": uri, "warnings": warns,
                    "predicted": dict(zip(new, [str(x) for x in pred], strict=True))},
            n_clips=len(new),
        )


def _no_value(values: Any) -> np.ndarray:
    """True where a label-CSV value is missing (None, empty, NaN)."""
    return np.array([v is None or v == "" or (isinstance(v, float) and math.isnan(v))
                     for v in values], dtype=bool)


def _predictions(ids, labels, probs, folds, truth, evaluation, model_id, run_id, weight) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "clip_id": pa.array(ids, pa.string()),
            "label": pa.array([str(x) for x in labels], pa.string()),
            "probability": pa.array(np.asarray(probs, dtype=np.float64), pa.float64()),
            "fold": pa.array([None if f is None else int(f) for f in folds], pa.int32()),
            "truth": pa.array([None if t is None else str(t) for t in truth], pa.string()),
            "evaluation": pa.array([evaluation] * len(ids), pa.string()),
            "group_weight": pa.array([None if w is None else float(w) for w in weight],
                                     pa.float64()),
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



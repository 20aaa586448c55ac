"""Stage ``classify``: single-label clip classification with honest, grouped cross-validation.

Default features per clip (``frames > 0``): the clip's frame sequence of
``frame_features`` (default MFCC and its deltas, first ``n_ceps`` coefficients) with
leading/trailing silence trimmed (frames more than ``trim_db`` below the loudest ``rms``
frame), normalised (with ``groups``: by the group's frame mean/std, speaker CMVN; else
per-clip MFCC mean), *resampled to ``frames`` frames* (time normalisation, keeps the
order of sounds) and flattened, plus the trimmed sequence's mean/std and log length.
``features`` adds the ``features`` table's clip statistics; ``segments > 0`` adds the
older pooled-segment means (``frames=0, segments=3`` with all clip statistics is the
previous default). With a ``groups`` column (speaker, fold, ...) every clip feature is
standardised *within its group* (``group_norm``; label-free) and the model is evaluated
by leave-one-group-out (more than 10 groups: 5-fold grouped) CV, with one round of
self-training on each held-out group (``self_train``; its predicted, never its true,
labels); without groups, by stratified 5-fold CV. Training folds are augmented with
copies whose MFCCs are warped along frequency by ``warps`` (vocal-tract-length
perturbation; needs the MFCC recipe in the frames' metadata).

Params
------
target : str (required)
    Label column of the ``clips`` table.
groups : str, optional
    Column for grouped CV (and per-group normalisation), e.g. ``speaker``.
features : list of str, optional
    Frame-feature names whose clip statistics are used (default: all when ``frames=0``,
    none otherwise).
frames : int, default 10
    Length of the time-normalised frame sequence (0 disables it).
n_ceps : int, default 13
    Coefficients kept of each frame feature in the sequence.
trim_db : float, default 30
    Silence-trimming threshold below the loudest RMS frame.
warps : list of float, default ``[0.9, 1.1]``
    Frequency-warp factors of the augmented training copies (``[]`` or ``""`` disables).
segments : int, default 0
    Number of equal time segments for pooled frame features (0 disables them).
frame_features : list of str, default ``["mfcc", "mfcc_delta"]``
    Frame features to use (those missing from the dataset are skipped).
model : {"svm", "logreg", "hgb", "rf"}, default "svm"
    ``StandardScaler + SVC(rbf, C=10)`` (probabilities by sigmoid calibration); logistic
    regression; histogram gradient boosting; random forest (the anchor's model).
C : float, default 10.0
    Inverse regularisation (svm; logreg uses ``C / 200``).
group_norm : bool, default True when ``groups`` is given
self_train : bool, default True when ``groups`` is given
random_state : int, default 0
predict : bool, default False
    Score clips that were not in the saved model's training set with the saved model.

Outputs: tables ``predictions`` (clip_id, label, probability, fold, truth, model_id,
run_id), ``confusion`` (model_id, truth, label, count), ``metrics`` (accuracy, macro_f1,
accuracy[group]); the model ``models/classify-<target>.skops``; PNG ``confusion-<target>``.

Measured on ../shared/corpora/fsdd (2000 clips, 4 speakers, leave-one-speaker-out, outer
folds only; every design choice made by inner leave-one-speaker-out CV inside the outer
training folds) with the recipe 8 kHz, n_fft 512, hop 128, 20 MFCC from 40 mels + deltas,
rms (``benchmarks/classify_fsdd.py``): accuracy 0.857, macro-F1 0.854 (per speaker
0.82-0.92) in 47-54 s on 2 shared cores; the anchor (random forest on MFCC/delta mean/std)
0.42; the previous default 0.736.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(0, 1, (20, 3)), rng.normal(3, 1, (20, 3))]
>>> y = np.array(["a"] * 20 + ["b"] * 20)
>>> clf = ClipClassifier().fit(X, y)
>>> (clf.predict(X) == y).mean() > 0.9
np.True_
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from audiopipe import features as F
from audiopipe.stages._common import (
    StageInputError,
    feature_matrix,
    label_column,
    load_model,
    metric_rows,
    plot_path,
    save_model,
    write_metrics,
)
from audiopipe.stages._frames import (
    as_bool,
    as_int,
    as_list,
    frames_recipe,
    read_frames_many,
    segment_pool,
    stable_id,
    time_normalize,
    trim_bounds,
)
from audiopipe.store.dataset import Dataset

__all__ = [
    "ClipClassifier",
    "grouped_cv",
    "standardize_within",
    "clip_features",
    "sequence_features",
    "warp_matrix",
    "run",
    "MODELS",
]

MODELS = ("svm", "logreg", "hgb", "rf")
TRUSTED = [
    "audiopipe.stages.classify.ClipClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


class ClipClassifier(ClassifierMixin, BaseEstimator):
    """A clip classifier: a standard scikit-learn model chosen by name.

    Parameters
    ----------
    model : {"svm", "logreg", "hgb", "rf"}, default "svm"
    C : float, default 10.0
        Inverse regularisation of the SVM / logistic regression.
    random_state : int, default 0

    Examples
    --------
    >>> ClipClassifier(model="rf").get_params()["model"]
    'rf'
    """

    def __init__(self, model: str = "svm", C: float = 10.0, random_state: int = 0) -> None:
        self.model = model
        self.C = C
        self.random_state = random_state

    def _make(self) -> Pipeline | Any:
        rs = self.random_state
        if self.model == "svm":
            svc = SVC(C=self.C, gamma="scale", random_state=rs)
            return make_pipeline(
                StandardScaler(), CalibratedClassifierCV(svc, ensemble=False, cv=3)
            )
        if self.model == "logreg":
            return make_pipeline(
                StandardScaler(), LogisticRegression(C=self.C / 200, max_iter=3000)
            )
        if self.model == "hgb":
            return HistGradientBoostingClassifier(random_state=rs)
        if self.model == "rf":
            return RandomForestClassifier(n_estimators=300, random_state=rs, n_jobs=1)
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClipClassifier:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X must be (n_samples, n_features) matching y, got {X.shape}, {y.shape}"
            )
        if len(np.unique(y)) < 2:
            raise ValueError("need at least 2 classes to fit a classifier")
        self.estimator_ = self._make().fit(X, y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(np.asarray(X, dtype=np.float64))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def standardize_within(X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Standardise each column within each group (speaker normalisation; label-free)."""
    X = np.asarray(X, dtype=np.float64).copy()
    if groups is None:
        return X
    groups = np.asarray(groups, dtype=object)
    for g in np.unique(groups):
        m = groups == g
        X[m] = (X[m] - X[m].mean(axis=0)) / (X[m].std(axis=0) + 1e-6)
    return X


def grouped_cv(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_splits: int = 5,
    random_state: int = 0,
    augment: tuple[np.ndarray, np.ndarray] | None = None,
    self_train: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold predictions, max probabilities and fold numbers.

    Leave-one-group-out for up to 10 groups, ``GroupKFold(n_splits)`` beyond, and
    ``StratifiedKFold`` (shuffled with ``random_state``) without groups.
    ``augment = (X_aug, source)``: extra training rows (e.g. warped copies), row ``k``
    made from clip ``source[k]``; a fold trains on those whose source clip is in its
    training part only (never tested on, never leaking a test clip).
    ``self_train``: transductive adaptation to the held-out part (e.g. an unseen
    speaker): after a first fit, the held-out clips predicted with the larger half of
    top-1/top-2 probability margins are added with their *predicted* labels and the model
    is refitted once (labels of held-out clips are never read).
    """
    y = np.asarray(y)
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("grouped CV needs at least 2 groups")
        cv = LeaveOneGroupOut() if n_groups <= 10 else GroupKFold(n_splits)
        splits = list(cv.split(X, y, groups))
    else:
        k = int(min(n_splits, np.min(np.unique(y, return_counts=True)[1])))
        if k < 2:
            raise ValueError("every class needs at least 2 clips for cross-validation")
        cv = StratifiedKFold(k, shuffle=True, random_state=random_state)
        splits = list(cv.split(X, y))
    pred = np.empty(len(y), dtype=object)
    prob = np.zeros(len(y))
    fold = np.zeros(len(y), dtype=np.int32)
    for i, (tr, te) in enumerate(splits):
        Xtr, ytr = X[tr], y[tr]
        if augment is not None:
            Xa, src = augment
            m = np.isin(np.asarray(src), tr)
            Xtr, ytr = np.r_[Xtr, Xa[m]], np.r_[ytr, y[np.asarray(src)[m]]]
        est = clone(estimator).fit(Xtr, ytr)
        p = est.predict_proba(X[te])
        if self_train and len(te) >= 4:
            # one round of self-training on the held-out part (its labels are never used):
            # refit with the more confident half of its predicted labels added
            srt = np.sort(p, axis=1)
            margin = srt[:, -1] - srt[:, -2]
            conf = margin >= np.median(margin)
            pl = est.classes_[p.argmax(1)]
            est = clone(estimator).fit(np.r_[Xtr, X[te][conf]], np.r_[ytr, pl[conf]])
            p = est.predict_proba(X[te])
        pred[te] = est.classes_[p.argmax(1)]
        prob[te] = p.max(1)
        fold[te] = i
    return pred, prob, fold


def clip_features(
    ds: Dataset,
    clip_ids: list[str],
    features: list[str] | None = None,
    segments: int = 3,
    frame_features: list[str] | None = None,
    cmn: bool = True,
    stats: tuple[str, ...] = ("mean", "std"),
    groups: np.ndarray | None = None,
    *,
    frames: int = 0,
    n_ceps: int | None = None,
    trim_db: float = 30.0,
    warp: float = 1.0,
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix for ``clip_ids``: clip statistics, pooled segments, time-normalised frames.

    Clip statistics of the ``features`` table are included when ``features`` is given
    or ``frames`` is 0. With ``segments > 0``, the means of ``frame_features`` over that
    many equal time segments; with ``frames > 0``, :func:`sequence_features` of the
    trimmed frames (needs the ``rms`` frame feature for trimming; without it clips are
    used whole). ``warp`` (≠ 1) first warps MFCC-family frames along frequency
    (:func:`warp_matrix`, vocal-tract-length perturbation for training copies).
    With ``groups`` (one value per clip), frames are first normalised by the mean and
    std of all frames of their group (speaker CMVN); otherwise MFCCs are mean-normalised
    per clip (``cmn``).
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    if features is not None or frames <= 0:
        X_all, ids, tnames = feature_matrix(ds, features, stats=tuple(stats))
        pos = {c: i for i, c in enumerate(ids)}
        missing = [c for c in clip_ids if c not in pos]
        if missing:
            raise StageInputError(f"dataset {ds.name!r}: clips without features: {missing[:3]}")
        blocks.append(X_all[[pos[c] for c in clip_ids]])
        names += list(tnames)
    avail = set(ds.features_available())
    W = None
    if warp != 1.0:
        W = warp_matrix(warp, frames_recipe(ds))
    if segments > 0 or frames > 0:
        seqs: dict[str, list[np.ndarray]] = {}
        for f in frame_features or ["mfcc", "mfcc_delta"]:
            if f not in avail:
                continue
            fr = read_frames_many(ds, clip_ids, f)
            if W is not None and f.startswith("mfcc"):
                fr = [a @ W.T.astype(np.float32) if len(a) else a for a in fr]
            seqs[f] = fr
        if segments > 0:
            for f, fr in seqs.items():
                if groups is not None:
                    fr = _group_cmvn(fr, np.asarray(groups, dtype=object))
                elif cmn and f == "mfcc":
                    fr = [a - a.mean(axis=0) if len(a) else a for a in fr]
                blocks.append(np.stack([segment_pool(a, segments) for a in fr]))
                d = fr[0].shape[1] if fr else 0
                names += [f"{f}_seg{s}[{j}]" for s in range(segments) for j in range(d)]
        if frames > 0 and seqs:
            rms = read_frames_many(ds, clip_ids, "rms") if "rms" in avail else None
            Xs, snames = sequence_features(
                seqs, rms, frames, n_ceps=n_ceps, trim_db=trim_db, groups=groups, cmn=cmn
            )
            blocks.append(Xs)
            names += snames
    if not blocks:
        return np.zeros((len(clip_ids), 0)), []
    X = np.concatenate(blocks, axis=1).astype(np.float64)
    return np.nan_to_num(X), names


def sequence_features(
    seqs: dict[str, list[np.ndarray]],
    rms: list[np.ndarray] | None,
    n_frames: int = 10,
    *,
    n_ceps: int | None = 13,
    trim_db: float = 30.0,
    groups: np.ndarray | None = None,
    cmn: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Time-normalised frame sequences: one row per clip.

    Each clip's frames (every feature of ``seqs``, first ``n_ceps`` columns) are trimmed
    to the part within ``trim_db`` of the loudest ``rms`` frame, normalised (by their
    ``groups``' frame mean/std, else per-clip mean for ``mfcc`` when ``cmn``), resampled
    to ``n_frames`` frames (linear interpolation) and flattened; the trimmed sequence's
    mean and std and log length (in frames) are appended.

    Examples
    --------
    >>> a = np.outer(np.arange(20.0), np.ones(3))
    >>> X, names = sequence_features({"mfcc": [a, a[:5]]}, None, 4, n_ceps=2)
    >>> X.shape, names[0]
    ((2, 13), 'mfcc_t0[0]')
    """
    feats = list(seqs)
    n = len(next(iter(seqs.values()))) if seqs else 0
    bounds = [
        trim_bounds(rms[i][:, 0] if rms[i].ndim == 2 else rms[i], trim_db)
        if rms is not None and len(rms[i])
        else (0, len(seqs[feats[0]][i]))
        for i in range(n)
    ]
    cut: dict[str, list[np.ndarray]] = {}
    for f in feats:
        fr = [np.asarray(a, np.float64)[:, :n_ceps] for a in seqs[f]]
        if groups is not None:
            fr = _group_cmvn(fr, np.asarray(groups, dtype=object))
        elif cmn and f == "mfcc":
            fr = [a - a.mean(axis=0) if len(a) else a for a in fr]
        cut[f] = [a[b0:b1] for a, (b0, b1) in zip(fr, bounds, strict=True)]
    rows = []
    for i in range(n):
        seq = np.concatenate([cut[f][i] for f in feats], axis=1)
        empty = len(seq) == 0
        mu = np.zeros(seq.shape[1]) if empty else seq.mean(axis=0)
        sd = np.zeros(seq.shape[1]) if empty else seq.std(axis=0)
        rows.append(
            np.concatenate(
                [time_normalize(seq, n_frames).ravel(), mu, sd, [np.log(max(len(seq), 1))]]
            )
        )
    dims = [f"{f}[{j}]" for f in feats for j in range(cut[f][0].shape[1] if n else 0)]
    names = [f"{d.split('[')[0]}_t{t}[{d.split('[')[1]}" for t in range(n_frames) for d in dims]
    names += [f"{d}_mean" for d in dims] + [f"{d}_std" for d in dims] + ["log_n_frames"]
    return np.asarray(rows, dtype=np.float64).reshape(n, len(names)), names


def warp_matrix(alpha: float, recipe: dict[str, Any]) -> np.ndarray | None:
    """Linear map of MFCC vectors for a frequency warp ``f -> alpha * f`` (VTLN-like).

    MFCCs are taken back to a (smoothed) log-mel spectrum with the transposed DCT,
    the mel bands are re-read at ``f / alpha`` (linear interpolation between band
    centres) and transformed back: ``W = D M D^T`` (lifter undone and redone). Linear, so
    it applies to the deltas too. ``None`` when the recipe has no MFCC.

    Examples
    --------
    >>> rec = {"sr": 8000, "compute": {"mfcc": {"n_mfcc": 13, "n_mels": 40}}}
    >>> bool(np.allclose(warp_matrix(1.0, rec), np.eye(13), atol=1e-5))
    True
    """
    m = (recipe.get("compute") or {}).get("mfcc")
    if m is None or "sr" not in recipe:
        return None
    n_mfcc, n_mels = int(m.get("n_mfcc", 20)), int(m.get("n_mels", 128))
    fmax = m.get("fmax") or recipe["sr"] / 2
    lifter = float(m.get("lifter") or 0.0)
    D = F.dct_matrix(n_mfcc, n_mels).astype(np.float64)
    L = np.ones(n_mfcc)
    if lifter > 0:
        L = 1 + (lifter / 2) * np.sin(np.pi * np.arange(1, n_mfcc + 1) / lifter)
    c = F.mel_frequencies(
        n_mels + 2, fmin=float(m.get("fmin") or 0.0), fmax=fmax, htk=bool(m.get("htk", False))
    )[1:-1]
    pos = np.interp(np.clip(c / alpha, c[0], c[-1]), c, np.arange(n_mels))
    lo = np.minimum(np.floor(pos).astype(int), n_mels - 1)
    hi = np.minimum(lo + 1, n_mels - 1)
    w = pos - lo
    M = np.zeros((n_mels, n_mels))
    np.add.at(M, (np.arange(n_mels), lo), 1 - w)
    np.add.at(M, (np.arange(n_mels), hi), w)
    return (L[:, None] * D) @ M @ (D.T / L[None, :])


def _group_cmvn(frames: list[np.ndarray], groups: np.ndarray) -> list[np.ndarray]:
    out = list(frames)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        allf = np.concatenate([frames[i] for i in idx if len(frames[i])] or [np.zeros((1, 1))])
        mu, sd = allf.mean(axis=0), allf.std(axis=0) + 1e-6
        for i in idx:
            if len(frames[i]):
                out[i] = (frames[i] - mu) / sd
    return out


def _plot_confusion(path: str, cm: np.ndarray, labels: list[str], title: str) -> None:
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _clip_ids(ds: Dataset) -> list[str]:
    return ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()


def _predictions_table(ids, labels, probs, folds, truth, model_id, run_id) -> pa.Table:
    return pa.table(
        {
            "clip_id": pa.array(ids, pa.string()),
            "label": pa.array([str(x) for x in labels], pa.string()),
            "probability": pa.array(np.asarray(probs, dtype=np.float64), pa.float64()),
            "fold": pa.array(np.asarray(folds, dtype=np.int32), pa.int32()),
            "truth": pa.array([None if t is None else str(t) for t in truth], pa.string()),
            "model_id": pa.array([model_id] * len(ids), pa.string()),
            "run_id": pa.array([run_id] * len(ids), pa.string()),
        }
    )


def run(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """Fit + cross-validate (or, with ``predict``, apply the saved model); see module doc."""
    target = params.get("target")
    if not target:
        raise StageInputError(f"dataset {ds.name!r}: stage classify needs param 'target'")
    if as_bool(params.get("predict", False)):
        return _predict(ds, params, run_id=run_id)
    groups_col = params.get("groups") or None
    features = as_list(params.get("features"))
    segments = as_int(params.get("segments"), 0)
    frames = as_int(params.get("frames"), 10)
    n_ceps = as_int(params.get("n_ceps"), 13)
    trim_db = float(params.get("trim_db", 30.0))
    warps = (
        [float(w) for w in (as_list(params.get("warps")) or [])]
        if "warps" in params
        else [0.9, 1.1]
    )
    frame_features = as_list(params.get("frame_features"))
    model = str(params.get("model", "svm"))
    rs = as_int(params.get("random_state"), 0)
    group_norm = as_bool(params.get("group_norm", groups_col is not None))
    self_train = as_bool(params.get("self_train", groups_col is not None))

    y_all = label_column(ds, target)
    ids_all = _clip_ids(ds)
    g_all = label_column(ds, groups_col) if groups_col else None
    keep = np.array([v not in (None, "") for v in y_all])
    ids = [c for c, k in zip(ids_all, keep, strict=True) if k]
    y = np.asarray([str(v) for v in y_all[keep]], dtype=object)
    g = None if g_all is None else np.asarray([str(v) for v in g_all[keep]], dtype=object)
    shape = {"frames": frames, "n_ceps": n_ceps, "trim_db": trim_db}
    X, names = clip_features(
        ds, ids, features, segments, frame_features, groups=g if group_norm else None, **shape
    )
    if group_norm:
        X = standardize_within(X, g)
    augment = None
    if frames > 0 and warps and warp_matrix(1.0, frames_recipe(ds)) is not None:
        blocks = []
        for a in warps:
            ga = None if g is None else np.asarray([f"{v}@{a}" for v in g], dtype=object)
            Xa, _ = clip_features(
                ds,
                ids,
                features,
                segments,
                frame_features,
                groups=ga if group_norm else None,
                warp=a,
                **shape,
            )
            blocks.append(standardize_within(Xa, ga) if group_norm else Xa)
        augment = (np.concatenate(blocks), np.tile(np.arange(len(ids)), len(warps)))
    else:
        warps = []
    C = float(params.get("C", 10.0))
    est = ClipClassifier(model=model, C=C, random_state=rs)
    try:
        pred, prob, fold = grouped_cv(
            est, X, y, g, random_state=rs, augment=augment, self_train=self_train
        )
    except ValueError as err:
        raise StageInputError(f"dataset {ds.name!r}, column {target!r}: {err}") from None
    model_id = stable_id(
        "classify",
        target,
        groups_col,
        features,
        segments,
        frame_features,
        model,
        rs,
        group_norm,
        shape,
        warps,
        C,
        self_train,
        ids,
    )
    metrics = {
        "accuracy": accuracy_score(y, pred.astype(str)),
        "macro_f1": f1_score(y, pred.astype(str), average="macro"),
    }
    if g is not None:
        for grp in sorted(set(g)):
            m = g == grp
            metrics[f"accuracy[{grp}]"] = accuracy_score(y[m], pred[m].astype(str))
    if augment is None:
        final = clone(est).fit(X, y)
    else:
        final = clone(est).fit(np.r_[X, augment[0]], np.r_[y, y[augment[1]]])
    labels = sorted(set(y))
    cm = confusion_matrix(y, pred.astype(str), labels=labels)

    # all computation done: write outputs
    bundle = {
        "estimator": final,
        "target": target,
        "groups": groups_col,
        "features": features,
        "segments": segments,
        "frame_features": frame_features,
        "group_norm": group_norm,
        **shape,
        "warps": warps,
        "feature_names": names,
        "train_clips": ids,
        "model_id": model_id,
    }
    model_path = save_model(ds, f"classify-{target}", bundle)
    ds.write_table(
        "predictions",
        _predictions_table(ids, pred, prob, fold, list(y), model_id, run_id),
        mode="overwrite",
    )
    ds.write_table(
        "confusion",
        pa.table(
            {
                "model_id": [model_id] * cm.size,
                "truth": [t for t in labels for _ in labels],
                "label": [p for _ in labels for p in labels],
                "count": pa.array(cm.ravel().astype(np.int64)),
            }
        ),
        mode="overwrite",
    )
    write_metrics(ds, metric_rows("classify", model_id, metrics, split="cv", run_id=run_id))
    png = plot_path(ds, f"confusion-{target}")
    _plot_confusion(
        png, cm, labels, f"{ds.name} {target}: acc {metrics['accuracy']:.3f} ({model}, CV)"
    )
    return {
        "model_id": model_id,
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "n_clips": len(ids),
        "tables": ["predictions", "confusion", "metrics"],
        "model": model_path,
        "plots": [png],
    }


def _predict(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    target = params["target"]
    path = params.get("model_path") or ds.path("models", f"classify-{target}.skops")
    bundle = load_model(path, trusted=TRUSTED)
    if not isinstance(bundle, dict) or "estimator" not in bundle:
        raise StageInputError(f"{path} is not a classify model")
    ids_all = _clip_ids(ds)
    trained = set(bundle["train_clips"])
    new = [c for c in ids_all if c not in trained]
    if as_bool(params.get("all", False)):
        new = ids_all
    if not new:
        return {"model_id": bundle["model_id"], "n_clips": 0, "tables": []}
    # group normalisation uses every clip of a group in the dataset (label-free)
    g = None
    if bundle["group_norm"] and bundle["groups"]:
        gv = label_column(ds, bundle["groups"], min_classes=1)
        g = np.asarray([str(v) for v in gv], dtype=object)
    X_all, _ = clip_features(
        ds,
        ids_all,
        bundle["features"],
        bundle["segments"],
        bundle["frame_features"],
        groups=g,
        frames=int(bundle.get("frames", 0)),
        n_ceps=bundle.get("n_ceps"),
        trim_db=float(bundle.get("trim_db", 30.0)),
    )
    if g is not None:
        X_all = standardize_within(X_all, g)
    pos = {c: i for i, c in enumerate(ids_all)}
    X = X_all[[pos[c] for c in new]]
    est = bundle["estimator"]
    p = est.predict_proba(X)
    pred = est.classes_[p.argmax(1)]
    clips = ds.table("clips")
    truth = [None] * len(new)
    if target in clips.column_names:
        col = dict(zip(ids_all, clips.column(target).to_pylist(), strict=True))
        truth = [col[c] or None for c in new]
    ds.write_table(
        "predictions",
        _predictions_table(new, pred, p.max(1), [-1] * len(new), truth, bundle["model_id"], run_id),
        mode="replace",
        key="clip_id",
    )
    return {
        "model_id": bundle["model_id"],
        "n_clips": len(new),
        "predicted": dict(zip(new, [str(x) for x in pred], strict=True)),
        "tables": ["predictions"],
    }

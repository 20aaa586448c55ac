"""The clip classifier and its honest evaluation: grouped cross-validation, group normalisation.

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

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = [
    "ClipClassifier",
    "ClassifyWarning",
    "cv_splits",
    "grouped_cv",
    "oof_proba",
    "oof_proba_views",
    "most_confident_view",
    "standardize_within",
    "MODELS",
]

MODELS = ("svm", "logreg", "hgb", "rf", "mlp")


class ClassifyWarning(UserWarning):
    """A degenerate input the classifier can still run on (said, never silent)."""


class ClipClassifier(ClassifierMixin, BaseEstimator):
    """A clip classifier: a standard scikit-learn model chosen by name.

    Parameters
    ----------
    model : {"svm", "logreg", "hgb", "rf", "mlp"}, default "svm"
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

    def _make(self, min_count: int = 3) -> Pipeline | Any:
        rs = self.random_state
        if self.model == "svm" and min_count >= 2:
            # probabilities by sigmoid calibration on internal folds (as many as the
            # smallest class allows, at most 3)
            svc = SVC(C=self.C, gamma="scale", random_state=rs)
            cal = CalibratedClassifierCV(svc, ensemble=False, cv=min(3, min_count))
            return make_pipeline(StandardScaler(), cal)
        if self.model in ("logreg", "svm"):  # svm with a one-clip class: nothing to calibrate on
            return make_pipeline(
                StandardScaler(), LogisticRegression(C=self.C / 200, max_iter=3000)
            )
        if self.model == "hgb":
            return HistGradientBoostingClassifier(
                max_iter=60, learning_rate=0.2, max_leaf_nodes=15, max_bins=32,
                max_features=0.3, early_stopping=False, random_state=rs,
            )
        if self.model == "mlp":
            mlp = MLPClassifier(
                hidden_layer_sizes=(256,), alpha=1e-2, max_iter=300, random_state=rs
            )
            return make_pipeline(StandardScaler(), mlp)
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
        min_count = int(np.unique(y, return_counts=True)[1].min())
        with _one_thread():
            self.estimator_ = self._make(min_count).fit(X, y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with _one_thread():
            return self.estimator_.predict_proba(np.asarray(X, dtype=np.float64))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _one_thread() -> Any:
    """One OpenMP/BLAS thread: gradient boosting's OpenMP threads thrash on a shared or busy
    machine (a Dask worker runs one task per thread), and the models here are small."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def standardize_within(
    X: np.ndarray,
    groups: np.ndarray | None,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    prior_n: float = 0.0,
) -> np.ndarray:
    """Standardise each column within each group (speaker normalisation; label-free).

    With ``prior = (mean, var)`` (e.g. the training set's) a group's statistics are shrunk
    toward it as if it had ``prior_n`` more clips (:func:`.candidates.shrunk_stats`): a
    group of one clip is normalised with (almost) the prior, a large group with its own.
    """
    from audiopipe.stages._clipfeatures import shrunk_stats

    X = np.asarray(X, dtype=np.float64).copy()
    if groups is None:
        return X
    groups = np.asarray(groups, dtype=object)
    for g in np.unique(groups):
        m = groups == g
        mu, sd = shrunk_stats(X[m], prior, prior_n)
        X[m] = (X[m] - mu) / (sd + 1e-6)
    return X


def cv_splits(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_splits: int = 5,
    random_state: int = 0,
    where: str = "",
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Cross-validation folds and the warnings about them.

    Leave-one-group-out for up to 10 groups, ``GroupKFold(n_splits)`` beyond, and
    ``StratifiedKFold`` (shuffled with ``random_state``) without groups. Warned (returned
    and issued as :class:`ClassifyWarning`): a class with a single clip (it is never both
    trained on and tested: its prediction is always wrong), and a fold whose training part
    lacks classes of its test part (those clips count as errors: nothing could have
    predicted them).

    Examples
    --------
    >>> y = np.array(list("aabbb"))
    >>> folds, warns = cv_splits(y, np.array([0, 0, 1, 1, 2]))
    >>> len(folds), warns[0].split(":")[0]
    (3, 'fold 0 (group 0)')
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    notes = [
        f"class {str(c)!r} has a single clip: it is never both trained on and tested, so its "
        "cross-validated prediction is always wrong (counted as an error)"
        for c, n in zip(classes, counts, strict=True)
        if n == 1
    ]
    if groups is not None:
        groups = np.asarray(groups)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("grouped CV needs at least 2 groups")
        cv = LeaveOneGroupOut() if n_groups <= 10 else GroupKFold(n_splits)
        splits = list(cv.split(y, y, groups))
    else:
        k = int(min(n_splits, counts.max()))
        if k < 2:
            raise ValueError("cross-validation needs a class with at least 2 clips")
        with warnings.catch_warnings():  # "least populated class ...": said below instead
            warnings.simplefilter("ignore", UserWarning)
            splits = list(StratifiedKFold(k, shuffle=True, random_state=random_state).split(y, y))
    for i, (tr, te) in enumerate(splits):
        miss = sorted(set(y[te].tolist()) - set(y[tr].tolist()))
        if miss and not all(counts[classes == c][0] == 1 for c in miss):
            grp = f" (group {', '.join(map(str, np.unique(groups[te])))})" if groups is not None else ""
            notes.append(
                f"fold {i}{grp}: its training part has no clips of {', '.join(map(repr, miss))}; "
                f"its {int(np.isin(y[te], miss).sum())} test clips of those classes cannot be "
                "predicted and are counted as errors (accuracy and macro-F1 over all classes)"
            )
    for n in notes:
        warnings.warn(f"{where}{n}", ClassifyWarning, stacklevel=2)
    return splits, [f"{where}{n}" for n in notes]


def oof_proba(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray,
    *,
    augment: tuple[np.ndarray, np.ndarray] | None = None,
    self_train: bool = False,
) -> np.ndarray:
    """Out-of-fold class probabilities ``(n_clips, len(classes))`` over ``splits``.

    A class absent from a fold's training part gets probability 0 in that fold.
    ``augment = (X_aug, source)``: extra training rows (e.g. warped copies), row ``k``
    made from clip ``source[k]``; a fold trains on those whose source clip is in its
    training part only (never tested on, never leaking a test clip). ``self_train``:
    transductive adaptation to the held-out part (e.g. an unseen speaker): after a first
    fit, the held-out clips predicted with the larger half of top-1/top-2 probability
    margins are added with their *predicted* labels and the model is refitted once
    (labels of held-out clips are never read).
    """
    return oof_proba_views(estimator, X, y, splits, classes, augment=augment,
                           self_train=self_train)[1.0]


def oof_proba_views(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    classes: np.ndarray,
    *,
    augment: tuple[np.ndarray, np.ndarray] | None = None,
    self_train: bool = False,
    views: dict[float, np.ndarray] | None = None,
) -> dict[float, np.ndarray]:
    """:func:`oof_proba` of ``X`` (key 1.0) and of other readings of the same clips
    (``views``: key -> a matrix of ``X``'s shape, e.g. features of frequency-warped frames):
    each fold's model, fitted on ``X`` (and ``augment``) only, predicts its held-out clips
    in every view."""
    y = np.asarray(y)
    views = {1.0: X, **{float(k): v for k, v in (views or {}).items() if float(k) != 1.0}}
    out = {k: np.zeros((len(y), len(classes))) for k in views}
    col = {c: i for i, c in enumerate(classes.tolist())}
    for tr, te in splits:
        Xtr, ytr = X[tr], y[tr]
        if augment is not None:
            Xa, src = augment
            m = np.isin(np.asarray(src), tr)
            Xtr, ytr = np.r_[Xtr, Xa[m]], np.r_[ytr, y[np.asarray(src)[m]]]
        if len(np.unique(ytr)) < 2:  # nothing to learn: the single training class
            for o in out.values():
                o[np.ix_(te, [col[ytr[0]]])] = 1.0
            continue
        est = clone(estimator).fit(Xtr, ytr)
        if self_train and len(te) >= 4:
            p = est.predict_proba(X[te])
            srt = np.sort(p, axis=1)
            margin = srt[:, -1] - srt[:, -2]
            conf = margin >= np.median(margin)
            pl = est.classes_[p.argmax(1)]
            est = clone(estimator).fit(np.r_[Xtr, X[te][conf]], np.r_[ytr, pl[conf]])
        cols = [col[c] for c in est.classes_.tolist()]
        for k, Xv in views.items():
            out[k][np.ix_(te, cols)] = est.predict_proba(Xv[te])
    return out


def most_confident_view(
    P: dict[float, np.ndarray], groups: np.ndarray | None
) -> tuple[np.ndarray, dict[Any, float]]:
    """Per group, the probabilities of the view its clips are most confidently predicted in
    (the highest mean log top-class probability over the group's clips; ties: key 1.0,
    then the first listed): maximum-likelihood warp selection (VTLN) at test time, with
    no label read and nothing refitted. Returns the probabilities and each group's key.

    Examples
    --------
    >>> P = {1.0: np.array([[0.6, 0.4], [0.5, 0.5]]), 1.1: np.array([[0.9, 0.1], [0.2, 0.8]])}
    >>> Q, chosen = most_confident_view(P, np.array(["a", "a"]))
    >>> chosen, Q[1].tolist()
    ({'a': 1.1}, [0.2, 0.8])
    """
    keys = sorted(P, key=lambda k: k != 1.0)
    base = P[keys[0]]
    if groups is None or len(keys) == 1:
        return base, {}
    Q, chosen = base.copy(), {}
    groups = np.asarray(groups, dtype=object)
    for g in np.unique(groups):
        m = groups == g
        conf = [float(np.mean(np.log(P[k][m].max(1) + 1e-9))) for k in keys]
        k = keys[int(np.argmax(conf))]
        chosen[g] = k
        Q[m] = P[k][m]
    return Q, chosen


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
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold predictions, max probabilities and fold numbers.

    Folds from :func:`cv_splits` (or ``splits``); ``augment`` and ``self_train`` as in
    :func:`oof_proba`.
    """
    y = np.asarray(y)
    if splits is None:
        splits, _ = cv_splits(y, groups, n_splits=n_splits, random_state=random_state)
    classes = np.unique(y)
    P = oof_proba(estimator, X, y, splits, classes, augment=augment, self_train=self_train)
    fold = np.zeros(len(y), dtype=np.int32)
    for i, (_, te) in enumerate(splits):
        fold[te] = i
    return classes[P.argmax(1)].astype(object), P.max(1), fold

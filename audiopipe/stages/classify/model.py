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

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["ClipClassifier", "grouped_cv", "standardize_within", "MODELS"]

MODELS = ("svm", "logreg", "hgb", "rf")


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

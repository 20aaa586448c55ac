"""The multi-label tagger: one-vs-rest logistic regressions with per-tag thresholds.

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
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["Tagger", "best_threshold"]


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

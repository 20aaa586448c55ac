"""Content-based recommendation for cold-start clips (van den Oord et al.): the method.

1. Weighted matrix factorisation of implicit feedback (Hu, Koren & Volinsky 2008; ALS in
   numpy) on a users × clips play matrix gives user and item latent factors.
2. A regression from each clip's audio features to its item factors (standardised
   features, ridge) predicts factors for clips nobody has played yet.
3. A user's score for a clip is the dot product of their factors with the clip's.

:func:`evaluate_cold_start` hides a fraction of the clips from the factorisation and
ranks them per user from audio alone, against two baselines: ``popularity`` (hidden clips
ranked by how many plays *other* users gave them - information a real cold start does not
have, so an optimistic baseline) and ``random``.

Examples
--------
>>> import numpy as np
>>> R = np.kron(np.eye(2), np.ones((5, 5)))          # two taste groups
>>> U, V = implicit_als(R, n_factors=2, iterations=10)
>>> bool((U[0] @ V[1]) > (U[0] @ V[7]))
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "implicit_als",
    "ContentRecommender",
    "simulate_listens",
    "ranking_metrics",
    "evaluate_cold_start",
]


def implicit_als(
    plays: np.ndarray,
    n_factors: int = 16,
    regularization: float = 0.1,
    alpha: float = 5.0,
    iterations: int = 15,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit-feedback ALS (Hu et al. 2008): user factors ``U`` and item factors ``V``.

    ``plays`` is a dense (n_users, n_items) array of non-negative counts. Preference
    ``p = plays > 0``, confidence ``c = 1 + alpha * log1p(plays)``; minimises
    ``sum c (p - U V^T)^2 + regularization (|U|^2 + |V|^2)``.
    """
    R = np.asarray(plays, dtype=np.float64)
    if R.ndim != 2 or (R < 0).any():
        raise ValueError("plays must be a 2-D array of non-negative counts")
    rng = np.random.default_rng(random_state)
    n_u, n_i = R.shape
    U = rng.normal(0, 0.01, (n_u, n_factors))
    V = rng.normal(0, 0.01, (n_i, n_factors))
    P = (R > 0).astype(np.float64)
    C = 1.0 + alpha * np.log1p(R)
    eye = regularization * np.eye(n_factors)

    def solve(Y: np.ndarray, Cm: np.ndarray, Pm: np.ndarray) -> np.ndarray:
        YtY = Y.T @ Y
        out = np.empty((Cm.shape[0], Y.shape[1]))
        for u in range(Cm.shape[0]):
            nz = np.flatnonzero(Cm[u] != 1.0)
            Yn = Y[nz]
            cn = Cm[u, nz]
            A = YtY + (Yn.T * (cn - 1.0)) @ Yn + eye
            b = (Yn.T * cn) @ Pm[u, nz]
            out[u] = np.linalg.solve(A, b)
        return out

    for _ in range(iterations):
        U = solve(V, C, P)
        V = solve(U, C.T, P.T)
    return U, V


class ContentRecommender(BaseEstimator):
    """Implicit ALS on plays + ridge regression from audio features to item factors.

    Parameters
    ----------
    n_factors, regularization, alpha, iterations : see :func:`implicit_als`
    ridge_alpha : float, default 100.0
        Regularisation of the features → factors regression.
    regressor : {"ridge", "knn"}, default "ridge"
    random_state : int, default 0

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(2), 10, axis=0) + rng.normal(0, 0.1, (20, 2))
    >>> R = np.kron(np.eye(2), np.ones((4, 10)))
    >>> m = ContentRecommender(n_factors=2).fit(R, X)
    >>> s = m.score_items(0, m.predict_factors(X))
    >>> bool(s[:10].mean() > s[10:].mean())
    True
    """

    def __init__(
        self,
        n_factors: int = 16,
        regularization: float = 0.1,
        alpha: float = 5.0,
        iterations: int = 15,
        ridge_alpha: float = 100.0,
        regressor: str = "ridge",
        random_state: int = 0,
    ) -> None:
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.ridge_alpha = ridge_alpha
        self.regressor = regressor
        self.random_state = random_state

    def fit(self, plays: np.ndarray, X: np.ndarray) -> ContentRecommender:
        """``plays`` (n_users, n_items), ``X`` (n_items, n_features) audio features."""
        plays = np.asarray(plays, dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        if plays.shape[1] != X.shape[0]:
            raise ValueError(f"plays has {plays.shape[1]} items but X has {X.shape[0]} rows")
        self.user_factors_, self.item_factors_ = implicit_als(
            plays,
            self.n_factors,
            self.regularization,
            self.alpha,
            self.iterations,
            self.random_state,
        )
        played = plays.sum(axis=0) > 0
        if self.regressor == "ridge":
            reg = Ridge(alpha=self.ridge_alpha)
        elif self.regressor == "knn":
            reg = KNeighborsRegressor(n_neighbors=10, weights="distance")
        else:
            raise ValueError(f"regressor must be 'ridge' or 'knn', got {self.regressor!r}")
        self.regressor_ = make_pipeline(StandardScaler(), reg)
        self.regressor_.fit(X[played], self.item_factors_[played])
        self.n_features_in_ = X.shape[1]
        return self

    def predict_factors(self, X: np.ndarray) -> np.ndarray:
        """Item factors predicted from audio features (for clips nobody played)."""
        return self.regressor_.predict(np.asarray(X, dtype=np.float64))

    def score_items(self, user: int | np.ndarray, item_factors: np.ndarray) -> np.ndarray:
        """Scores of items (rows of ``item_factors``) for user index/indices ``user``."""
        return self.user_factors_[user] @ item_factors.T


def simulate_listens(
    classes: np.ndarray,
    n_users: int = 200,
    events_per_user: int = 60,
    concentration: float = 0.3,
    random_state: int = 0,
) -> pd.DataFrame:
    """SIMULATED listening histories in which tastes depend on the clips' classes.

    Each user draws class preferences from a Dirichlet(``concentration``) (a few
    favourite classes), each clip a log-normal popularity; a user's listens are
    ``events_per_user`` (Poisson) draws of clips with probability ∝ popularity ×
    preference for the clip's class. Returns columns ``user``, ``item`` (index into
    ``classes``), ``plays``.
    """
    rng = np.random.default_rng(random_state)
    classes = np.asarray(classes, dtype=object)
    names, cls = np.unique(classes.astype(str), return_inverse=True)
    pop = rng.lognormal(0, 1, classes.size)
    pref = rng.dirichlet(np.full(len(names), concentration), n_users)
    rows = []
    for u in range(n_users):
        w = pop * pref[u, cls]
        w /= w.sum()
        n = max(1, int(rng.poisson(events_per_user)))
        items, counts = np.unique(rng.choice(classes.size, size=n, p=w), return_counts=True)
        rows += [(f"user{u:04d}", int(i), int(c)) for i, c in zip(items, counts, strict=True)]
    return pd.DataFrame(rows, columns=["user", "item", "plays"])


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> tuple[float, float]:
    """recall@k (hits / min(k, n_relevant)) and NDCG@k (binary gains) of one ranking."""
    rel = np.asarray(relevant, dtype=bool)
    n_rel = int(rel.sum())
    if n_rel == 0:
        return float("nan"), float("nan")
    top = np.argsort(-scores, kind="stable")[:k]
    hits = rel[top]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((hits * disc[: len(top)]).sum())
    idcg = float(disc[: min(k, n_rel)].sum())
    return float(hits.sum() / min(k, n_rel)), dcg / idcg


def evaluate_cold_start(
    plays: np.ndarray,
    X: np.ndarray,
    model: ContentRecommender,
    cold_fraction: float = 0.2,
    k: int = 10,
    random_state: int = 0,
) -> dict[str, dict[str, float]]:
    """Hide ``cold_fraction`` of the items, fit on the rest, rank the hidden items per user.

    Returns ``{"model"|"popularity"|"random": {"recall@k": .., "ndcg@k": ..}}`` averaged
    over users who played at least one hidden item.
    """
    plays = np.asarray(plays, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    n_items = plays.shape[1]
    n_cold = max(1, int(round(cold_fraction * n_items)))
    cold = np.sort(rng.permutation(n_items)[:n_cold])
    warm_plays = plays.copy()
    warm_plays[:, cold] = 0
    from sklearn.base import clone

    m = clone(model).fit(warm_plays, X)
    Vc = m.predict_factors(X[cold])
    truth = plays[:, cold] > 0
    pop_all = (plays[:, cold] > 0).sum(axis=0).astype(np.float64)
    out: dict[str, list[tuple[float, float]]] = {"model": [], "popularity": [], "random": []}
    for u in range(plays.shape[0]):
        if not truth[u].any():
            continue
        pop_other = pop_all - truth[u]  # plays by *other* users only
        out["model"].append(ranking_metrics(m.score_items(u, Vc), truth[u], k))
        out["popularity"].append(
            ranking_metrics(pop_other + 1e-9 * -np.arange(n_cold), truth[u], k)
        )
        out["random"].append(ranking_metrics(rng.random(n_cold), truth[u], k))
    return {
        name: {
            f"recall@{k}": float(np.mean([r for r, _ in v])),
            f"ndcg@{k}": float(np.mean([n for _, n in v])),
            "n_users": float(len(v)),
        }
        for name, v in out.items()
    }

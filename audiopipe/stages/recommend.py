"""Stage ``recommend``: content-based recommendation for cold-start clips (van den Oord et al.).

1. Weighted matrix factorisation of implicit feedback (Hu, Koren & Volinsky 2008; ALS in
   numpy) on a listening table (user, clip, plays) gives user and item latent factors.
2. A regression from each clip's audio features to its item factors (standardised
   features, ridge) predicts factors for clips nobody has played yet.
3. A user's score for a clip is the dot product of their factors with the clip's.

Evaluation (``split="cold_start"``): a fraction of the clips (``cold_fraction``) is
hidden from the factorisation; their factors come from audio alone, and each user's
plays of them are the relevance judgments. Metrics recall@k (hits / min(k, relevant))
and NDCG@k (binary gains), for the model and two baselines: ``popularity`` (hidden
clips ranked by how many plays *other* users gave them - information a real cold
start does not have, so an optimistic baseline) and ``random``.

Params
------
listens : str
    CSV or Parquet path with columns ``user``, ``clip`` (a clip id, or a path whose end
    matches a clip's uri) and ``plays`` (default 1 per row when absent).
simulate : str, optional
    Instead of ``listens``: simulate listening histories whose tastes depend on this
    label column (see :func:`simulate_listens`); reported as simulated.
n_users : int, default 200 (simulation only)
n_factors : int, default 16
regularization : float, default 0.1
alpha : float, default 5.0
    Confidence weight: ``c = 1 + alpha * log1p(plays)``.
ridge_alpha : float, default 100.0
regressor : {"ridge", "knn"}, default "ridge"
    Audio features → item factors (standardised features first).
iterations : int, default 15
cold_fraction : float, default 0.2
k : int, default 10
features, segments : as in ``classify`` (audio features of the clips)
random_state : int, default 0

Outputs: ``recommendations`` (user, clip_id, score, rank, run_id) - the top ``k``
clips each user has not played, cold clips included; ``metrics``; ``listens_simulated``
when simulating; PNG ``recommend-eval`` (recall/NDCG of model and baselines).

Examples
--------
>>> import numpy as np
>>> R = np.kron(np.eye(2), np.ones((5, 5)))          # two taste groups
>>> U, V = implicit_als(R, n_factors=2, iterations=10)
>>> bool((U[0] @ V[1]) > (U[0] @ V[7]))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiopipe.stages._common import (
    StageInputError,
    label_column,
    metric_rows,
    plot_path,
    save_model,
    write_metrics,
)
from audiopipe.stages._frames import as_int, as_list, stable_id
from audiopipe.store.dataset import Dataset

__all__ = [
    "implicit_als",
    "ContentRecommender",
    "simulate_listens",
    "ranking_metrics",
    "evaluate_cold_start",
    "run",
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


def _read_listens(ds: Dataset, path: str, clip_ids: list[str], uris: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    except FileNotFoundError:
        raise StageInputError(f"dataset {ds.name!r}: listens file {path} does not exist") from None
    for col in ("user", "clip"):
        if col not in df.columns:
            raise StageInputError(
                f"dataset {ds.name!r}: listens file {path} has no column {col!r} "
                f"(columns: {', '.join(map(str, df.columns))})"
            )
    if "plays" not in df.columns:
        df["plays"] = 1
    pos = {c: i for i, c in enumerate(clip_ids)}

    def find(c: str) -> int:
        if c in pos:
            return pos[c]
        for i, u in enumerate(uris):
            if u.endswith("/" + c.lstrip("/")) or u == c:
                return i
        return -1

    df["item"] = [find(str(c)) for c in df["clip"]]
    df = df[df["item"] >= 0]
    if df.empty:
        raise StageInputError(
            f"dataset {ds.name!r}: no clip of listens file {path} is in the dataset"
        )
    return df.groupby(["user", "item"], as_index=False)["plays"].sum()


def _plot(path: str, ev: dict[str, dict[str, float]], k: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ev)
    fig, ax = plt.subplots(figsize=(5, 3))
    x = np.arange(len(names))
    ax.bar(x - 0.2, [ev[n][f"recall@{k}"] for n in names], 0.4, label=f"recall@{k}")
    ax.bar(x + 0.2, [ev[n][f"ndcg@{k}"] for n in names], 0.4, label=f"NDCG@{k}")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """Fit on the listens, evaluate cold start, write recommendations; see module doc."""
    from audiopipe.stages.classify import clip_features

    rs = as_int(params.get("random_state"), 0)
    k = as_int(params.get("k"), 10)
    clips = ds.table("clips", ["clip_id", "uri"]).to_pydict()
    clip_ids, uris = clips["clip_id"], clips["uri"]
    simulated = params.get("simulate")
    if params.get("listens"):
        listens = _read_listens(ds, str(params["listens"]), clip_ids, uris)
    elif simulated:
        classes = label_column(ds, str(simulated))
        listens = simulate_listens(
            np.asarray([str(c) for c in classes], dtype=object),
            n_users=as_int(params.get("n_users"), 200),
            random_state=rs,
        )
    else:
        raise StageInputError(
            f"dataset {ds.name!r}: stage recommend needs param 'listens' (a CSV/Parquet of "
            "user, clip, plays) or 'simulate' (a label column)"
        )
    users = sorted(set(listens["user"]))
    upos = {u: i for i, u in enumerate(users)}
    R = np.zeros((len(users), len(clip_ids)))
    np.add.at(R, ([upos[u] for u in listens["user"]], listens["item"].to_numpy()), listens["plays"])
    X, _ = clip_features(
        ds, clip_ids, as_list(params.get("features")), as_int(params.get("segments"), 3)
    )
    model = ContentRecommender(
        n_factors=as_int(params.get("n_factors"), 16),
        regularization=float(params.get("regularization", 0.1)),
        alpha=float(params.get("alpha", 5.0)),
        iterations=as_int(params.get("iterations"), 15),
        ridge_alpha=float(params.get("ridge_alpha", 100.0)),
        regressor=str(params.get("regressor", "ridge")),
        random_state=rs,
    )
    ev = evaluate_cold_start(
        R, X, model, float(params.get("cold_fraction", 0.2)), k=k, random_state=rs
    )
    final = model.fit(R, X)
    played = R.sum(axis=0) > 0
    V = final.item_factors_.copy()
    if (~played).any():
        V[~played] = final.predict_factors(X[~played])
    S = final.user_factors_ @ V.T
    S[R > 0] = -np.inf
    rows = []
    for u, name in enumerate(users):
        top = np.argsort(-S[u], kind="stable")[:k]
        rows += [
            (name, clip_ids[i], float(S[u, i]), r + 1)
            for r, i in enumerate(top)
            if np.isfinite(S[u, i])
        ]
    model_id = stable_id("recommend", model.get_params(), k, simulated, params.get("listens"))
    split = "cold_start_simulated" if simulated and not params.get("listens") else "cold_start"
    mrows = []
    for name, m in ev.items():
        mid = model_id if name == "model" else f"{name}-baseline"
        mrows += metric_rows("recommend", mid, m, split=split, run_id=run_id)

    save_path = save_model(ds, "recommend", final)
    if simulated and not params.get("listens"):
        sim = listens.assign(clip_id=[clip_ids[i] for i in listens["item"]])[
            ["user", "clip_id", "plays"]
        ]
        ds.write_table("listens_simulated", pa.Table.from_pandas(sim, preserve_index=False))
    ds.write_table(
        "recommendations",
        pa.table(
            {
                "user": [r[0] for r in rows],
                "clip_id": [r[1] for r in rows],
                "score": pa.array([r[2] for r in rows], pa.float64()),
                "rank": pa.array([r[3] for r in rows], pa.int32()),
                "run_id": [run_id] * len(rows),
            }
        ),
    )
    write_metrics(ds, mrows)
    png = plot_path(ds, "recommend-eval")
    _plot(
        png,
        ev,
        k,
        f"{ds.name}: cold-start items ({'simulated' if split.endswith('simulated') else 'listens'})",
    )
    return {
        "model_id": model_id,
        "simulated": split.endswith("simulated"),
        "metrics": {n: {a: round(b, 4) for a, b in m.items()} for n, m in ev.items()},
        "n_users": len(users),
        "tables": ["recommendations", "metrics"],
        "model": save_path,
        "plots": [png],
    }

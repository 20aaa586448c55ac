"""Stage ``recommend``: content-based recommendation for cold-start clips (van den Oord et al.).

Implicit ALS on a sparse listening matrix (user, clip, plays; scipy CSR, never dense
users × clips) plus a regression from each clip's
audio features to its item factors (:mod:`.model`), so clips nobody has played yet get
factors - and recommendations - from audio alone.

Evaluation (``metrics.evaluation = holdout``, ``split = cold_start``, or
``cold_start_simulated`` with simulated listens): a fraction of the clips
(``cold_fraction``) is hidden from the factorisation; their factors come from audio alone,
and each user's plays of them are the relevance judgments. Metrics recall@k (hits /
min(k, relevant)) and NDCG@k (binary gains), for the model and two baselines
(``popularity-baseline``, ``random-baseline`` model ids) that see no play of a hidden clip
either: the popularity baseline ranks the hidden clips by the popularity their audio
predicts (a regression on the visible clips' play counts; one list for every user). The
model's rows add ``ndcg_gain_over_popularity@k``; the report's ``note`` says plainly
whether the content model beats the popularity baseline, and what that means when not.

Outputs: ``recommendations`` (user, clip_id, score, rank, run_id) - the top ``k`` clips
each user has not played, cold clips included; ``metrics``; ``listens_simulated`` when
simulating; the model ``recommend.skops`` and the PNG ``recommend-eval`` (recall/NDCG of
model and baselines) in the run's folder.

Examples
--------
>>> [p.name for p in Recommend.params][:2]
['listens', 'simulate']
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from audiopipe.stages.base import Stage, StageContext, StageOutput
from audiopipe.stages.params import Param

__all__ = ["Recommend"]

_METHOD = (
    "implicit_als",
    "ContentRecommender",
    "simulate_listens",
    "ranking_metrics",
    "evaluate_cold_start",
    "cold_start_popularity",
    "top_k_unplayed",
    "as_plays",
)


def __getattr__(name: str) -> Any:  # the method API, imported on first use (scikit-learn)
    if name in _METHOD:
        from audiopipe.stages.recommend import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Recommend(Stage):
    """Fit on the listens, evaluate cold start, write recommendations."""

    name = "recommend"
    summary = (
        "Implicit ALS on listens + audio → factor regression for cold-start clips; "
        "table `recommendations` (top k unplayed clips per user)."
    )
    params = (
        Param("listens", "path", None,
              "CSV or Parquet of user, clip (a clip id, or a path ending a clip's uri), plays"),
        Param("simulate", "str", None,
              "instead of listens: simulate tastes that depend on this label column"),
        Param("n_users", "int", 200, "simulated users", low=1),
        Param("n_factors", "int", 16, "latent factors", low=1),
        Param("regularization", "float", 0.1,
              "ALS regularisation (> 0: without it the per-user solve is singular)",
              low=0, low_open=True),
        Param("alpha", "float", 5.0, "confidence weight: c = 1 + alpha log1p(plays)", low=0),
        Param("ridge_alpha", "float", 100.0, "regularisation of audio → factors", low=0),
        Param("regressor", "str", "ridge", "audio → factors regression", choices=("ridge", "knn")),
        Param("iterations", "int", 15, "ALS sweeps", low=1),
        Param("cold_fraction", "float", 0.2, "clips hidden for the cold-start evaluation",
              low=0.01, high=0.9),
        Param("k", "int", 10, "recommendations per user and the cut-off of recall/NDCG", low=1),
        Param("features", "list", None, "frame features whose clip statistics are used"),
        Param("segments", "int", 3, "time segments of pooled frame features", low=0),
        Param("random_state", "int", 0, "seed of ALS, the hidden clips and the simulation"),
    )
    tables = ("recommendations", "listens_simulated")
    version = "2"  # sparse ALS, top-k by blocks of users, evaluation on at most 5000 users

    def check(self, params: dict[str, Any]) -> list[str]:
        if not params["listens"] and not params["simulate"]:
            return [
                "needs param 'listens' (a CSV/Parquet of user, clip, plays) or 'simulate' "
                "(a label column)"
            ]
        return []

    def _listens(self, ctx: StageContext, clip_ids: list[str]) -> Any:
        import pandas as pd

        from audiopipe.stages._common import (
            StageInputError,
            read_frame_file,
            refuse_rows,
            uri_matcher,
            warn_unmatched,
        )

        path, ds = ctx.params["listens"], ctx.ds
        df = read_frame_file(ds, path, "listens", ("user", "clip"))
        if "plays" not in df.columns:
            df["plays"] = 1
        plays = pd.to_numeric(df["plays"], errors="coerce")
        refuse_rows(ds, path, "listens", df, plays.isna(), "have no number of plays")
        for col in ("user", "clip"):
            refuse_rows(ds, path, "listens", df,
                        df[col].isna() | (df[col].astype(str).str.strip() == ""), f"have no {col}")
        refuse_rows(ds, path, "listens", df, plays < 0, "have negative plays")
        df["plays"] = plays
        pos = {c: i for i, c in enumerate(clip_ids)}
        match = uri_matcher(ds)
        cache: dict[str, int] = {}

        def find(c: Any) -> int:
            c = str(c)
            if c not in cache:
                cid = c if c in pos else match(c)
                cache[c] = pos[cid] if cid is not None else -1
            return cache[c]

        df["item"] = [find(c) for c in df["clip"]]
        users = set(df["user"])
        if (df["item"] >= 0).any():  # none: refused below
            warn_unmatched(ds, path, "listens", df["clip"], df["item"] >= 0)
        df = df[df["item"] >= 0]
        if len(lost := users - set(df["user"])) and not df.empty:
            warnings.warn(f"dataset {ds.name!r}: {len(lost)} of {len(users)} users of listens "
                          f"file {path} have no listen of a clip of the dataset: left out",
                          UserWarning, stacklevel=2)
        if df.empty:
            raise StageInputError(
                f"dataset {ds.name!r}: no clip of listens file {path} is in the dataset"
            )
        return df.groupby(["user", "item"], as_index=False)["plays"].sum()

    def run(self, ctx: StageContext) -> StageOutput:
        import pyarrow as pa
        import scipy.sparse as sp

        from audiopipe.stages._clipfeatures import clip_features
        from audiopipe.stages._common import label_column, metric_rows, stable_id
        from audiopipe.stages.recommend.model import (
            ContentRecommender,
            evaluate_cold_start,
            simulate_listens,
            top_k_unplayed,
        )

        p, ds = ctx.params, ctx.ds
        rs, k = p["random_state"], p["k"]
        clip_ids = ctx.clip_ids()
        simulated = not p["listens"]
        if not simulated:
            listens = self._listens(ctx, clip_ids)
        else:
            classes = label_column(ds, p["simulate"])
            listens = simulate_listens(
                np.asarray([str(c) for c in classes], dtype=object), n_users=p["n_users"],
                random_state=rs,
            )
        users = sorted(set(listens["user"]))
        upos = {u: i for i, u in enumerate(users)}
        # users × clips plays, sparse (duplicates summed): never a dense users × clips matrix
        R = sp.csr_array(
            (
                listens["plays"].to_numpy(np.float64),
                (np.array([upos[u] for u in listens["user"]]), listens["item"].to_numpy()),
            ),
            shape=(len(users), len(clip_ids)),
        )
        X, _ = clip_features(ds, clip_ids, p["features"], p["segments"])
        model = ContentRecommender(
            n_factors=p["n_factors"], regularization=p["regularization"], alpha=p["alpha"],
            iterations=p["iterations"], ridge_alpha=p["ridge_alpha"], regressor=p["regressor"],
            random_state=rs,
        )
        ev = evaluate_cold_start(R, X, model, p["cold_fraction"], k=k, random_state=rs)
        final = model.fit(R, X)
        played = np.asarray(R.sum(axis=0)).ravel() > 0
        V = final.item_factors_.copy()
        if (~played).any():
            V[~played] = final.predict_factors(X[~played])
        u_idx, i_idx, score, rank = top_k_unplayed(final.user_factors_, V, R, k)
        rows_user = [str(users[u]) for u in u_idx]
        rows_clip = [clip_ids[i] for i in i_idx]
        model_id = stable_id("recommend", model.get_params(), k, p["simulate"], p["listens"])
        split = "cold_start_simulated" if simulated else "cold_start"
        gain = ev["model"][f"ndcg@{k}"] - ev["popularity"][f"ndcg@{k}"]
        note = _note(ev, k)
        mrows = []
        for name, m in ev.items():
            mid = model_id if name == "model" else f"{name}-baseline"
            if name == "model":
                m = {**m, f"ndcg_gain_over_popularity@{k}": gain}
            mrows += metric_rows("recommend", mid, m, evaluation="holdout", split=split,
                                 run_id=ctx.run_id)
        tables = {
            "recommendations": pa.table(
                {
                    "user": pa.array(rows_user, pa.string()),
                    "clip_id": pa.array(rows_clip, pa.string()),
                    "score": pa.array(score, pa.float64()),
                    "rank": pa.array(rank.astype(np.int32), pa.int32()),
                    "run_id": pa.array([ctx.run_id] * len(rows_user), pa.string()),
                }
            )
        }
        if simulated:
            sim = listens.assign(clip_id=[clip_ids[i] for i in listens["item"]])
            tables["listens_simulated"] = pa.Table.from_pandas(
                sim[["user", "clip_id", "plays"]], preserve_index=False
            )
        title = f"{ds.name}: cold-start items ({'simulated' if simulated else 'listens'})"
        return StageOutput(
            tables=tables,
            metrics=mrows,
            model=final,
            model_name="recommend",
            model_id=model_id,
            plots={"recommend-eval": lambda fh: _plot(fh, ev, k, title, note)},
            report={
                "simulated": simulated,
                "note": note,
                "n_users": len(users),
                "evaluation": {n: {a: round(b, 4) for a, b in m.items()} for n, m in ev.items()},
            },
            n_clips=len(clip_ids),
        )


def _note(ev: dict[str, dict[str, float]], k: int) -> str:
    """One plain sentence: does the content model beat the popularity baseline, and if not, why."""
    a, b = ev["model"][f"ndcg@{k}"], ev["popularity"][f"ndcg@{k}"]
    n = int(ev["model"]["n_users"])
    if a > b:
        return (
            f"content model beats the popularity baseline on held-out clips: NDCG@{k} "
            f"{a:.3f} vs {b:.3f} ({n} users)"
        )
    return (
        f"content model does NOT beat the popularity baseline on held-out clips: NDCG@{k} "
        f"{a:.3f} vs {b:.3f} ({n} users). The audio features predict which clips are popular "
        "at least as well as they predict each user's taste: tastes here do not follow what "
        "the features capture (or too few plays to learn them); use popularity for cold clips"
    )


def _plot(fh: Any, ev: dict[str, dict[str, float]], k: int, title: str, note: str = "") -> None:
    import textwrap

    from audiopipe.stages._common import pyplot

    plt = pyplot()
    names = list(ev)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    x = np.arange(len(names))
    labels = {
        "model": "content model",
        "popularity": "popularity\n(from audio)",
        "random": "random",
    }
    for dx, metric in ((-0.2, f"recall@{k}"), (0.2, f"ndcg@{k}")):
        vals = [ev[n][metric] for n in names]
        bars = ax.bar(x + dx, vals, 0.4, label=metric.replace("ndcg", "NDCG"))
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [labels.get(n, n) for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out clips (no plays seen)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    if note:
        fig.text(0.01, 0.01, "\n".join(textwrap.wrap(note, 110)[:3]), fontsize=6.5, va="bottom")
    fig.tight_layout(rect=(0, 0.12 if note else 0, 1, 1))
    fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)



"""What every stage shares: inputs from a dataset, metrics rows, safe model files, plots.

Examples
--------
>>> import numpy as np
>>> rows = metric_rows("classify", "m1", {"accuracy": 0.9}, split="cv", run_id="r")
>>> rows[0]["metric"], rows[0]["value"]
('accuracy', 0.9)
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from audiopipe.store.dataset import Dataset

__all__ = [
    "StageInputError",
    "new_stage_run_id",
    "label_column",
    "feature_matrix",
    "metric_rows",
    "write_metrics",
    "save_model",
    "load_model",
    "plot_path",
    "METRICS_SCHEMA",
]


class StageInputError(ValueError):
    """A stage cannot run on this dataset (missing column, one class, no labels ...)."""


def new_stage_run_id(stage: str) -> str:
    return f"{stage}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def label_column(ds: Dataset, column: str, *, min_classes: int = 2) -> np.ndarray:
    """Values of a label column of ``clips``, aligned with ``clips`` order; checks it is usable."""
    clips = ds.table("clips")
    if column not in clips.column_names:
        raise StageInputError(
            f"dataset {ds.name!r} has no label column {column!r} in its clips table "
            f"(columns: {', '.join(c for c in clips.column_names)})"
        )
    vals = np.asarray(clips.column(column).to_pylist(), dtype=object)
    present = [v for v in vals if v not in (None, "")]
    if not present:
        raise StageInputError(f"dataset {ds.name!r}: label column {column!r} is empty")
    if len(set(present)) < min_classes:
        raise StageInputError(
            f"dataset {ds.name!r}: label column {column!r} has {len(set(present))} class(es); "
            f"at least {min_classes} are needed"
        )
    return vals


def feature_matrix(
    ds: Dataset, features: list[str] | None = None, stats: tuple[str, ...] = ("mean", "std")
) -> tuple[np.ndarray, list[str], list[str]]:
    """Clip-level features as ``X`` (n_clips, n_cols) in ``clips`` order, clip ids, column names.

    ``features`` selects frame features by name (default: all in the table); each
    listed statistic's scalar or vector is flattened into columns.
    """
    clips = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    ft = ds.table("features")
    if ft.num_rows == 0:
        raise StageInputError(f"dataset {ds.name!r} has no features: ingest it first")
    by_id = {c: i for i, c in enumerate(ft.column("clip_id").to_pylist())}
    cols = [
        c
        for c in ft.column_names
        if any(c.endswith(f"_{s}") for s in stats)
        and (features is None or any(c == f"{f}_{s}" for f in features for s in stats))
    ]
    if not cols:
        raise StageInputError(
            f"dataset {ds.name!r}: none of the features {features} are in the features table"
        )
    blocks, names = [], []
    for c in cols:
        col = ft.column(c)
        if pa.types.is_list(col.type):
            arr = np.asarray(col.to_pylist(), dtype=np.float32)
            names += [f"{c}[{i}]" for i in range(arr.shape[1])]
        else:
            arr = np.asarray(col.to_pylist(), dtype=np.float32)[:, None]
            names.append(c)
        blocks.append(arr)
    X_all = np.concatenate(blocks, axis=1)
    rows = [by_id[c] for c in clips if c in by_id]
    ids = [c for c in clips if c in by_id]
    return X_all[rows], ids, names


METRICS_SCHEMA = pa.schema(
    [
        ("stage", pa.string()),
        ("model_id", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("split", pa.string()),
        ("run_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
    ]
)


def metric_rows(
    stage: str, model_id: str, metrics: Mapping[str, float], *, split: str, run_id: str
) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "stage": stage,
            "model_id": model_id,
            "metric": k,
            "value": float(v),
            "split": split,
            "run_id": run_id,
            "time": now,
        }
        for k, v in metrics.items()
    ]


def write_metrics(ds: Dataset, rows: list[dict[str, Any]]) -> None:
    """Append rows to the dataset's ``metrics`` table (stage, model id, metric, value, split, run)."""
    if rows:
        ds.write_table("metrics", pa.Table.from_pylist(rows, schema=METRICS_SCHEMA), mode="append")


def _local(path: str) -> str:
    if "://" in path and not path.startswith("file://"):
        raise NotImplementedError(
            "models and plots are written to local storage roots only for now"
        )
    return path


def save_model(ds: Dataset, name: str, model: Any) -> str:
    """Persist ``model`` with skops under ``<dataset>/models/<name>.skops``; returns the path."""
    import skops.io as sio

    path = _local(ds.path("models", f"{name}.skops"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sio.dump(model, path)
    return path


def load_model(path: str, trusted: list[str] | None = None) -> Any:
    """Load a skops model file, refusing anything else and any type not explicitly trusted.

    Only the types skops reports as untrusted *and* listed in ``trusted`` (the
    stage's own classes) are allowed; a pickle, a damaged file or a file that
    carries other types raises :class:`StageInputError`.
    """
    import zipfile

    import skops.io as sio

    if not os.path.isfile(path):
        raise StageInputError(f"model file {path} does not exist: fit the stage first")
    if not zipfile.is_zipfile(path):
        raise StageInputError(f"{path} is not a skops model file (refusing to load it)")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # noqa: BLE001
        raise StageInputError(f"{path} is not a valid skops model file: {err}") from None
    allowed = set(trusted or [])
    bad = [t for t in untrusted if t not in allowed]
    if bad:
        raise StageInputError(f"{path} contains types that are not trusted: {', '.join(bad)}")
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as err:  # noqa: BLE001
        raise StageInputError(f"{path} could not be loaded as a skops model: {err}") from None


def plot_path(ds: Dataset, name: str) -> str:
    """Where a stage's PNG goes: ``<dataset>/plots/<name>.png`` (folder created)."""
    path = _local(ds.path("plots", f"{name}.png"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

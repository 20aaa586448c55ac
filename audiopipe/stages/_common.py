"""What several stages share: label columns, clip features, metric rows, model files, inputs.

Everything here reads and writes through the dataset's storage location (local folder
or ``s3://``), never through ``open``/``os`` on a path.

``metrics`` table (one row per figure; appended by every stage run):

=============  ==============================================================================
column         meaning
=============  ==============================================================================
stage          the stage that computed it
run_id         the stage run (a ``runs`` row)
model_id       the model scored (or the method, for stages without a model)
metric         name, e.g. ``accuracy``, ``f1[tonal]``, ``recall@10``
value          float
evaluation     how the figure was obtained: ``cv`` (out-of-fold predictions of a
               cross-validation), ``holdout`` (items held out of fitting, e.g. cold-start
               clips), ``predict`` (a saved model's predictions on new clips whose truth is
               known), ``reference`` (outputs compared with reference annotations, nothing
               fitted on them), ``count`` (bookkeeping: clips, errors, beats)
split          which clips: ``all``, ``cold_start``, ``new``, a group, ...
time           when it was written (UTC)
=============  ==============================================================================

Examples
--------
>>> rows = metric_rows("classify", "m1", {"accuracy": 0.9}, evaluation="cv", run_id="r")
>>> rows[0]["metric"], rows[0]["value"], rows[0]["evaluation"]
('accuracy', 0.9, 'cv')
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from audiopipe.stages.base import StageContext
    from audiopipe.store.dataset import Dataset

__all__ = [
    "StageInputError",
    "EVALUATIONS",
    "label_column",
    "feature_matrix",
    "metrics_schema",
    "metric_rows",
    "save_model",
    "load_model",
    "read_bytes",
    "read_frame_file",
    "refuse_rows",
    "warn_unmatched",
    "figure_writer",
    "error_row",
    "stable_id",
    "uri_matcher",
    "check_recipe",
    "overlap_problem",
    "median_kernel_problem",
]

#: values of ``metrics.evaluation`` (see the module docstring)
EVALUATIONS = ("cv", "holdout", "predict", "reference", "count")


class StageInputError(ValueError):
    """A stage cannot run on this dataset (missing column, one class, no labels ...)."""


def overlap_problem(n_fft: int, hop_length: int) -> str | None:
    """Why an STFT of ``n_fft`` and ``hop_length`` cannot be masked and inverted (None: it can).

    ``audiopipe.features.stft`` uses a (periodic) Hann window and ``istft`` divides the
    overlap-add by the window's sum of squares. With ``hop_length <= n_fft // 2`` (>= 50%
    overlap) that sum is >= 0.5 everywhere; with less overlap it nears 0 between frames, so
    a masked STFT's stems blow up there (HPSS at n_fft 256: hop 192 gave peaks 10x those of
    hop 128), and with ``hop_length >= n_fft`` samples between frames are not covered at all
    (zeros in the stems).

    Examples
    --------
    >>> overlap_problem(2048, 512) is None
    True
    >>> overlap_problem(256, 512)[:40]
    'hop_length (512) must be <= n_fft // 2 ('
    """
    if hop_length <= n_fft // 2:
        return None
    return (
        f"hop_length ({hop_length}) must be <= n_fft // 2 ({n_fft // 2}): the Hann window's "
        "overlap-add rebuilds every sample only with at least 50% overlap"
    )


def median_kernel_problem(size: int) -> str | None:
    """Why ``size`` is no median filter length (None: it is one): at least 3.

    A length of 1 returns its input (HPSS then gives two equal halves of the mixture), one of
    2 the larger of a pair (no median at all). An even length of 4 or more is accepted, as
    librosa does: scipy's filter takes the upper of its two middle values, half a bin off
    centre.

    Examples
    --------
    >>> median_kernel_problem(30) is None, median_kernel_problem(2)[:28]
    (True, 'kernel_size (2) must be >= 3')
    """
    if size >= 3:
        return None
    return (f"kernel_size ({size}) must be >= 3: a median filter of 1 returns its input, one "
            "of 2 the larger of a pair")


def stable_id(prefix: str, *parts: Any) -> str:
    """A short deterministic id from JSON-able parts (same inputs → same model id).

    Examples
    --------
    >>> stable_id("m", 1, [2, 3]) == stable_id("m", 1, [2, 3])
    True
    """
    import hashlib
    import json

    h = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{prefix}-{h}"


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
    import pyarrow as pa

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
        col = ft.column(c).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
            # straight from Arrow's buffers (no Python list per clip: 1M clips in ~0.1 s)
            arr = _list_column(col, c)
            names += [f"{c}[{i}]" for i in range(arr.shape[1])]
        else:
            arr = col.to_numpy(zero_copy_only=False).astype(np.float32)[:, None]
            names.append(c)
        blocks.append(arr)
    X_all = np.concatenate(blocks, axis=1)
    rows = [by_id[c] for c in clips if c in by_id]
    ids = [c for c in clips if c in by_id]
    return X_all[rows], ids, names


def _list_column(col: Any, name: str = "") -> np.ndarray:
    """A list column of equal-length rows as ``(n_rows, width)`` float32, read from Arrow's
    buffers (no Python list per clip: a million clips in a fraction of a second)."""
    import pyarrow.compute as pc

    n = len(col)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    lengths = pc.list_value_length(col).fill_null(-1).to_numpy()
    width = int(lengths[0])
    if col.null_count or not (lengths == width).all():
        raise StageInputError(f"features column {name!r} has missing or unequal-length rows")
    return pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, width)


def metrics_schema() -> pa.Schema:
    """Schema of the ``metrics`` table (see the module docstring)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("stage", pa.string()),
            ("run_id", pa.string()),
            ("model_id", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("evaluation", pa.string()),
            ("split", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
        ]
    )


def metric_rows(
    stage: str,
    model_id: str,
    metrics: Mapping[str, float],
    *,
    evaluation: str,
    run_id: str,
    split: str = "all",
) -> list[dict[str, Any]]:
    """Rows of the ``metrics`` table for ``metrics`` obtained by ``evaluation``."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "stage": stage,
            "run_id": run_id,
            "model_id": model_id,
            "metric": k,
            "value": float(v),
            "evaluation": evaluation,
            "split": split,
            "time": now,
        }
        for k, v in metrics.items()
    ]


def read_bytes(ds: Dataset, uri: str) -> bytes:
    """Bytes of a file: local, or remote through fsspec with the dataset's storage options."""
    from audiopipe.uri import open_uri

    try:
        with open_uri(uri, ds.location.fsspec_options) as f:
            return f.read()
    except FileNotFoundError:
        raise StageInputError(f"dataset {ds.name!r}: file {uri} does not exist") from None


def read_frame_file(ds: Dataset, uri: str, what: str, columns: tuple[str, ...]) -> Any:
    """A CSV or Parquet input file (events, listens, reference) as pandas, columns checked."""
    import pandas as pd

    data = io.BytesIO(read_bytes(ds, uri))
    df = pd.read_parquet(data) if str(uri).endswith(".parquet") else pd.read_csv(data)
    for c in columns:
        if c not in df.columns:
            raise StageInputError(
                f"dataset {ds.name!r}: {what} file {uri} has no column {c!r} "
                f"(columns: {', '.join(map(str, df.columns))})"
            )
    return df


def refuse_rows(ds: Dataset, uri: str, what: str, df: Any, bad: Any, problem: str) -> None:
    """Raise :class:`StageInputError` naming ``what`` file ``uri`` and its rows where ``bad``.

    Rows are counted from 1 after the header, blank lines not counted (the reader skips
    them); the message shows the first three with their values and says what is wrong with them.
    """
    idx = np.flatnonzero(np.asarray(bad, dtype=bool))
    if len(idx):

        def show(i: int) -> str:
            vals = (f"{c}={v.item() if isinstance(v, np.generic) else v!r}"
                    for c, v in df.iloc[i].items())
            return f"row {i + 1} ({', '.join(vals)})"

        shown = "; ".join(show(i) for i in idx[:3])
        raise StageInputError(
            f"dataset {ds.name!r}: {what} file {uri}: {len(idx)} row(s) {problem}: {shown}"
            f"{' ...' if len(idx) > 3 else ''}"
        )


def warn_unmatched(ds: Dataset, uri: str, what: str, names: Any, found: Any) -> str | None:
    """Warn that rows of ``what`` file ``uri`` name no clip of ``ds``; the warning, or None.

    ``names`` are the rows' clip names, ``found`` whether each matched a clip; the warning
    gives the count of rows and of distinct names, and three of them.
    """
    import warnings

    miss = [str(n) for n, f in zip(names, found, strict=True) if not f]
    if not miss:
        return None
    distinct = list(dict.fromkeys(miss))
    note = (
        f"dataset {ds.name!r}: {len(miss)} of {len(found)} rows of {what} file {uri} name no "
        f"clip of the dataset ({len(distinct)} distinct names, e.g. "
        f"{', '.join(map(repr, distinct[:3]))}): those rows are ignored"
    )
    warnings.warn(note, UserWarning, stacklevel=3)
    return note


def save_model(ctx: StageContext, name: str, model: Any) -> str:
    """Persist ``model`` with skops as ``<name>.skops`` in the run's folder; returns its uri."""
    import skops.io as sio

    return ctx.write_bytes(sio.dumps(model), f"{name}.skops")


def load_model(ds: Dataset, uri: str, trusted: tuple[str, ...] | list[str] = ()) -> Any:
    """Load a skops model file, refusing anything else and any type not explicitly trusted.

    Only the types skops reports as untrusted *and* listed in ``trusted`` (the
    stage's own classes) are allowed; a pickle, a damaged file or a file that
    carries other types raises :class:`StageInputError`.
    """
    import zipfile

    import skops.io as sio

    data = read_bytes(ds, uri)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise StageInputError(f"{uri} is not a skops model file (refusing to load it)")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as err:  # noqa: BLE001
        raise StageInputError(f"{uri} is not a valid skops model file: {err}") from None
    bad = [t for t in untrusted if t not in set(trusted)]
    if bad:
        raise StageInputError(f"{uri} contains types that are not trusted: {', '.join(bad)}")
    try:
        return sio.loads(data, trusted=list(untrusted))
    except Exception as err:  # noqa: BLE001
        raise StageInputError(f"{uri} could not be loaded as a skops model: {err}") from None


def check_recipe(
    ds: Dataset, recorded: str | None, what: str, fix: str, *, stage: str | None = None,
    run_id: str | None = None, model: str | None = None,
) -> str | None:
    """Refuse ``what`` (a saved model or index) computed under another feature recipe than the
    one ``ds`` has now (``audiopipe rebuild`` with another recipe, or features code).

    ``recorded`` is the recipe hash stored with it. One stored before recipes were recorded
    has none: the recipe is then the one of the successful ``stage`` run that wrote it (run
    ``run_id``, or the run whose model file is ``model``): every stage run records its
    dataset's recipe hash. Raises :class:`StageInputError` naming both recipes and ``fix``
    when they differ. When neither tells the recipe (a model file from elsewhere stored
    before recipes were recorded) it cannot be checked: warns and returns the warning's
    text (for the run's report). None when the recipes agree.
    """
    import json
    import warnings

    current = (ds.run or {}).get("recipe_hash")
    how = "recorded with it"
    if recorded is None and stage is not None:
        from audiopipe.store.runs import stage_runs

        for r in stage_runs(ds.location, stage):
            if r.status == "ok" and (r.run_id == run_id or (
                    model is not None and json.loads(r.artifacts or "{}").get("model") == model)):
                recorded, how = r.recipe_hash, f"by run {r.run_id} that wrote it"
    if recorded is None or current is None:
        msg = (f"{what} records no feature recipe (stored before recipes were recorded): "
               f"cannot check that it fits the features of dataset {ds.name!r} (recipe "
               f"{current}); if the dataset was rebuilt with another recipe since, {fix}")
        warnings.warn(msg, UserWarning, stacklevel=3)
        return msg
    if recorded != current:
        raise StageInputError(
            f"{what} was computed under feature recipe {recorded} ({how}), but dataset "
            f"{ds.name!r} has recipe {current} now (rebuilt since): its features are not "
            f"those it was computed on; {fix}")
    return None


def figure_writer(fig: Any, dpi: int = 100) -> Any:
    """A writer ``f(fh)`` that saves ``fig`` as PNG into ``fh`` and closes it."""

    def write(fh: IO[bytes]) -> None:
        import matplotlib.pyplot as plt

        fig.savefig(fh, format="png", dpi=dpi)
        plt.close(fig)

    return write


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def error_row(stage: str, clip_id: str, uri: str, err: BaseException, run_id: str) -> dict:
    """A row of the ``errors`` table for a clip a stage could not process."""
    return {
        "run_id": run_id,
        "uri": uri,
        "clip_id": clip_id,
        "step": stage,
        "error_type": getattr(err, "kind", None) or type(err).__name__,
        "message": str(err),
        "time": dt.datetime.now(dt.UTC),
    }


def uri_tails(uri: str) -> list[str]:
    """Every trailing part of ``uri``: ``a/b/c.wav``, ``b/c.wav``, ``c.wav``."""
    parts = uri.split("/")
    return ["/".join(parts[k:]) for k in range(len(parts))]


def uri_matcher(ds: Dataset, keys: Any = uri_tails) -> Any:
    """A function ``path -> clip_id | None``: the clip whose uri is ``path`` or ends with it.

    Paths in events, references and listens files name clips by their path relative to
    some folder; ``keys(uri)`` gives the names a clip answers to (every trailing part of
    its uri). A name that more than one clip answers to (``c.wav`` in two folders) matches
    none, with a warning naming two of them: a reference is never given to the wrong clip.
    """
    import warnings

    t = ds.table("clips", ["clip_id", "uri"]).to_pydict()
    index: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    for cid, uri in zip(t["clip_id"], t["uri"], strict=True):
        for k in dict.fromkeys(keys(uri)):
            first = index.setdefault(k, cid)
            if first != cid:
                ambiguous.setdefault(k, [first]).append(cid)

    def match(path: Any) -> str | None:
        p = str(path)
        for k in (p, p.lstrip("/")):
            if k in ambiguous:
                uris = [ds.clip_uri(c) for c in ambiguous[k][:2]]
                warnings.warn(f"{k!r} names {len(ambiguous[k])} clips ({', '.join(map(str, uris))}"
                              "...): not used; name it by a longer path", stacklevel=2)
                return None
            if k in index:
                return index[k]
        return None

    return match

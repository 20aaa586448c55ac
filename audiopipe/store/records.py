"""Typed rows of the ingest tables; each record class defines its table's Arrow schema.

One definition per table: writers build records and turn a list of them into an Arrow table
with :meth:`Record.table`; readers turn a stored table back into records with
:meth:`Record.rows`. A record's fields carry their Arrow types (:func:`column`), so the
schema, the writer and the reader cannot drift apart.

Two tables have columns that depend on the dataset, handled explicitly:

- ``clips`` has one string column per label column of the dataset (:class:`ClipRow`'s
  ``labels``; a label whose name collides with a fixed column is stored as ``label_<name>``);
- ``features`` has one column per (feature, statistic) of the recipe (:class:`FeaturesRow`'s
  ``stats``; scalars as float32, vectors as lists of float32).

Examples
--------
>>> row = FramesIndexRow("c1", "p.zarr", 0, 10, 10, 22050, 512, "h", "r")
>>> t = FramesIndexRow.table([row])
>>> t.num_rows, t.schema.field("start").type
(1, DataType(int64))
>>> FramesIndexRow.rows(t) == [row]
True
>>> ClipRow.schema(["genre", "split"]).names[-2:]
['genre', 'label_split']
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any, ClassVar, Self

import pyarrow as pa

__all__ = [
    "Record",
    "column",
    "ClipRow",
    "FeaturesRow",
    "FramesIndexRow",
    "ErrorRow",
    "RunRow",
    "label_column_name",
]


def column(arrow_type: pa.DataType, doc: str = "", **kw: Any) -> Any:
    """A record field stored as a table column of ``arrow_type`` (``doc`` says what it holds)."""
    return field(metadata={"arrow": arrow_type, "doc": doc}, **kw)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Record:
    """Base of the typed rows: the fields made with :func:`column` are the table's columns."""

    @classmethod
    @cache
    def fixed_schema(cls) -> pa.Schema:
        """The columns every table of this kind has (in field order)."""
        return pa.schema(
            [pa.field(f.name, f.metadata["arrow"]) for f in fields(cls) if "arrow" in f.metadata]
        )

    @classmethod
    def schema(cls) -> pa.Schema:
        """The table's schema (records with dataset-dependent columns take arguments)."""
        return cls.fixed_schema()

    def values(self) -> dict[str, Any]:
        """This row as ``{column: value}`` for the table's columns."""
        return {name: getattr(self, name) for name in self.fixed_schema().names}

    @classmethod
    def table(cls, rows: Iterable[Record], schema: pa.Schema | None = None) -> pa.Table:
        """An Arrow table of ``rows`` (with ``schema``, default :meth:`schema`)."""
        schema = schema if schema is not None else cls.schema()
        vals = [r.values() for r in rows]
        return pa.Table.from_pydict(
            {name: [v.get(name) for v in vals] for name in schema.names}, schema=schema
        )

    @classmethod
    def rows(cls, table: pa.Table) -> list[Self]:
        """The records of a stored table (columns the record does not know are ignored)."""
        names = [n for n in cls.fixed_schema().names if n in table.column_names]
        return [cls(**row) for row in _pylist(table.select(names))]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _pylist(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, with UTC timestamps converted here: pyarrow converts a
    timestamp with a time zone through pandas, whose import costs a quick command
    (``audiopipe status``) about a third of its start."""
    utc = [
        i
        for i, f in enumerate(table.schema)
        if pa.types.is_timestamp(f.type) and f.type.tz in ("UTC", "+00:00")
    ]
    if not utc:
        return table.to_pylist()
    cols = {}
    for i in utc:
        f = table.schema.field(i)
        # the stored integers, read as int64 (no cast: a cast imports pyarrow.compute, ~0.1 s)
        raw = [v for c in table.column(i).chunks for v in c.view(pa.int64()).to_pylist()]
        mul, div = {"s": (10**6, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}[f.type.unit]
        cols[f.name] = [
            None if v is None else _EPOCH + dt.timedelta(microseconds=v * mul // div) for v in raw
        ]
    rest = table.drop_columns(list(cols)).to_pylist()
    return [{**r, **{k: v[j] for k, v in cols.items()}} for j, r in enumerate(rest)]


def label_column_name(name: str) -> str:
    """Label columns keep their CSV name unless it collides with a fixed ``clips`` column.

    >>> label_column_name("genre"), label_column_name("split")
    ('genre', 'label_split')
    """
    return f"label_{name}" if name in ClipRow.fixed_schema().names else name


@dataclass(frozen=True)
class ClipRow(Record):
    """A row of ``clips``: one audio file that was ingested."""

    clip_id: str = column(
        pa.string(), "the file's id: BLAKE2b-128 of its content hash and uri (hex)"
    )
    uri: str = column(pa.string())
    bytes: int = column(pa.int64(), "file size")
    mtime: float = column(pa.float64(), "modification time (seconds since the epoch)")
    format: str = column(pa.string(), "container, as libsndfile names it (WAV, FLAC, MP3...)")
    subtype: str = column(pa.string(), "sample encoding (PCM_16, FLOAT, MPEG_LAYER_III...)")
    native_sr: int = column(pa.int32(), "the file's sample rate")
    channels: int = column(pa.int32(), "the file's channel count")
    frames: int = column(pa.int64(), "native-rate samples per channel actually decoded")
    duration_s: float = column(pa.float64(), "seconds of audio decoded")
    sr: int = column(pa.int32(), "rate the features were computed at")
    split: str = column(pa.string(), "train/valid/test: the labels' split or fold, else by uri")
    run_id: str = column(pa.string(), "the run that ingested the file")
    content_hash: str | None = column(
        pa.string(), "BLAKE2b-128 of the file's bytes (hex): equal for copies of a file",
        default=None,
    )  # fmt: skip
    #: label column (as named in the labels file) -> value; one string column each
    labels: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def schema(cls, label_columns: Iterable[str] = ()) -> pa.Schema:  # type: ignore[override]
        """The fixed columns, then a string column per label column of the dataset."""
        fixed = cls.fixed_schema()
        names = [label_column_name(c) for c in label_columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"label columns {dup} would be stored twice (a label named like a fixed clips "
                "column is stored as label_<name>): rename one in the labels file"
            )
        return pa.schema(list(fixed) + [(n, pa.string()) for n in names])

    def values(self) -> dict[str, Any]:
        out = super().values()
        out.update({label_column_name(k): v for k, v in self.labels.items()})
        return out

    @classmethod
    def table(
        cls, rows: Iterable[Record], schema: pa.Schema | None = None, label_columns: Sequence[str] = ()
    ) -> pa.Table:
        return super().table(rows, schema if schema is not None else cls.schema(label_columns))

    @classmethod
    def rows(cls, table: pa.Table, label_columns: Sequence[str] = ()) -> list[Self]:
        """The records of a stored ``clips`` table with its ``label_columns`` (as in the labels
        file) read back into ``labels``."""
        stored = {label_column_name(c): c for c in label_columns}
        fixed = set(cls.fixed_schema().names)
        out = []
        for row in table.to_pylist():
            labels = {stored[k]: v for k, v in row.items() if k in stored}
            out.append(cls(**{k: v for k, v in row.items() if k in fixed}, labels=labels))
        return out

    def with_labels(self, labels: Mapping[str, str | None], **changes: Any) -> ClipRow:
        """A copy with new labels (and any fixed field changed)."""
        return replace(self, labels=dict(labels), **changes)


@dataclass(frozen=True)
class FeaturesRow(Record):
    """A row of ``features``: clip-level statistics of every frame feature of a clip."""

    STATS: ClassVar[tuple[str, ...]] = ("mean", "std", "min", "max")

    clip_id: str = column(pa.string())
    n_frames: int = column(pa.int64())
    recipe_hash: str = column(pa.string(), "hash of the feature recipe the frames come from")
    run_id: str = column(pa.string())
    #: ``"<feature>_<stat>"`` -> float (1-dimensional features) or list of floats
    stats: Mapping[str, float | list[float]] = field(default_factory=dict)

    @staticmethod
    def stat_column(feature: str, stat: str) -> str:
        return f"{feature}_{stat}"

    @classmethod
    def schema(  # type: ignore[override]
        cls, dims: Mapping[str, int] | None = None, stats: Iterable[str] = STATS
    ) -> pa.Schema:
        """The fixed columns, then per feature of the recipe (``{name: n_dims}``) and statistic
        a float32 (one dimension) or a list of float32."""
        extra = [
            (cls.stat_column(k, s), pa.float32() if d == 1 else pa.list_(pa.float32()))
            for k, d in (dims or {}).items()
            for s in stats
        ]
        return pa.schema(list(cls.fixed_schema()) + extra)

    def values(self) -> dict[str, Any]:
        return {**super().values(), **self.stats}

    @classmethod
    def table(
        cls, rows: Iterable[Record], schema: pa.Schema | None = None, dims: Mapping[str, int] | None = None
    ) -> pa.Table:
        return super().table(rows, schema if schema is not None else cls.schema(dims))

    @classmethod
    def rows(cls, table: pa.Table) -> list[Self]:
        fixed = set(cls.fixed_schema().names)
        return [
            cls(
                **{k: v for k, v in r.items() if k in fixed},
                stats={k: v for k, v in r.items() if k not in fixed},
            )
            for r in table.to_pylist()
        ]


@dataclass(frozen=True)
class FramesIndexRow(Record):
    """A row of ``frames_index``: where a clip's frames are in the Zarr frame store."""

    clip_id: str = column(pa.string())
    part: str = column(pa.string(), "Zarr group, relative to <dataset>/frames/")
    start: int = column(pa.int64(), "first row of the clip in the part's arrays")
    stop: int = column(pa.int64(), "one past its last row")
    n_frames: int = column(pa.int64())
    sr: int = column(pa.int32())
    hop_length: int = column(pa.int32())
    recipe_hash: str = column(pa.string())
    run_id: str = column(pa.string())


@dataclass(frozen=True)
class ErrorRow(Record):
    """A row of ``errors``: a file or clip that failed a step, with a reason a person reads."""

    run_id: str = column(pa.string())
    uri: str | None = column(pa.string())
    clip_id: str | None = column(pa.string())
    step: str = column(pa.string(), "discover | read | decode | features | shard | publish | stage")
    error_type: str = column(pa.string(), "the error's kind (e.g. truncated) or class name")
    message: str = column(pa.string())
    time: dt.datetime = column(pa.timestamp("us", tz="UTC"), default_factory=_now)
    # what the file was when it failed, and under which settings: a file that failed is not
    # retried while all three stay the same (audiopipe.ingest.plan)
    bytes: int | None = column(pa.int64(), "the file's size when it failed", default=None)
    mtime: float | None = column(pa.float64(), "its modification time then", default=None)
    settings_hash: str | None = column(
        pa.string(), "hash of the decode settings, limits and recipe it failed under",
        default=None,
    )  # fmt: skip

    @classmethod
    def of(
        cls,
        run_id: str,
        uri: str | None,
        clip_id: str | None,
        step: str,
        err: BaseException,
        **file: Any,
    ) -> ErrorRow:
        """The row for ``err``: its ``kind`` attribute (e.g. ``AudioError.kind``) or class name
        as the type, its text (or class name) as the message; ``file`` sets ``bytes``,
        ``mtime`` and ``settings_hash``."""
        return cls(
            run_id=run_id,
            uri=uri,
            clip_id=clip_id,
            step=step,
            error_type=getattr(err, "kind", None) or type(err).__name__,
            message=str(err) or type(err).__name__,
            **file,
        )


@dataclass(frozen=True)
class RunRow(Record):
    """A row of ``runs``: one publishing run of a dataset and the table versions it left."""

    run_id: str = column(pa.string())
    dataset: str = column(pa.string())
    kind: str = column(pa.string(), "ingest | rebuild | stage")
    status: str = column(pa.string(), "ok | failed")
    config_hash: str | None = column(pa.string(), default=None)
    recipe_hash: str | None = column(pa.string(), default=None)
    code_version: str | None = column(pa.string(), default=None)
    started: dt.datetime | None = column(pa.timestamp("us", tz="UTC"), default=None)
    finished: dt.datetime | None = column(pa.timestamp("us", tz="UTC"), default=None)
    files_found: int | None = column(pa.int64(), default=None)
    files_new: int | None = column(pa.int64(), default=None)
    files_changed: int | None = column(pa.int64(), default=None)
    files_removed: int | None = column(pa.int64(), default=None)
    files_processed: int | None = column(pa.int64(), default=None)
    files_failed: int | None = column(pa.int64(), default=None)
    clips_total: int | None = column(pa.int64(), default=None)
    audio_seconds: float | None = column(pa.float64(), default=None)
    wall_seconds: float | None = column(pa.float64(), default=None)
    shards: int | None = column(pa.int64(), default=None)
    table_versions: str | None = column(
        pa.string(), "JSON {table: version} visible after this run", default=None
    )
    message: str | None = column(pa.string(), default=None)
    # stage runs (kind "stage"; null for ingest/rebuild; added later: older tables gain
    # them on the next append, see audiopipe.store.runs.append_run)
    stage: str | None = column(pa.string(), "the stage's name", default=None)
    params: str | None = column(pa.string(), "JSON of the resolved parameters", default=None)
    params_hash: str | None = column(pa.string(), default=None)
    input_versions: str | None = column(
        pa.string(), "JSON {table or file:<uri>: version or content hash}", default=None
    )
    model_id: str | None = column(pa.string(), default=None)
    artifacts: str | None = column(
        pa.string(), 'JSON {"folder", "model", "plots", "files"}', default=None
    )
    timings: str | None = column(pa.string(), "JSON {phase: seconds}", default=None)
    # an ingest capped by max_files_per_run (added later, null in older rows): what the pass
    # of capped runs it belongs to removed so far (audiopipe.ingest.removals)
    removal_pass: str | None = column(
        pa.string(), 'JSON {"removed", "redone", "failed"}; null: the pass ended', default=None
    )

    # (added later, null in older rows: audiopipe.store.anew checks those by commit time)
    table_ids: str | None = column(
        pa.string(), "JSON {table: Delta metadata id} of table_versions' tables", default=None
    )

    def versions(self) -> dict[str, int | None]:
        """``table_versions`` parsed: ``{table: version}`` ({} when absent)."""
        return {
            k: (None if v is None else int(v))
            for k, v in json.loads(self.table_versions or "{}").items()
        }

    def tables(self) -> dict[str, int | None]:
        """``{table: version}`` of the tables this run wrote and, a stage run, read."""
        own = self.versions()
        if self.kind == "stage":
            inputs = json.loads(self.input_versions or "{}")
            own = {
                **{k: v for k, v in inputs.items() if not k.startswith(("file:", "model"))},
                **own,
            }
        return own

    def to_dict(self) -> dict[str, Any]:
        return self.values()

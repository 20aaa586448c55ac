"""Delta Lake tables: schemas of the fixed tables and small helpers over ``deltalake``.

Examples
--------
>>> import pyarrow as pa
>>> t = conform(pa.table({"clip_id": ["a"]}), ERRORS_SCHEMA)
>>> t.column_names[:3]
['run_id', 'uri', 'clip_id']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from audiopipe.store.location import Location

__all__ = [
    "CLIPS_SCHEMA",
    "FRAMES_INDEX_SCHEMA",
    "ERRORS_SCHEMA",
    "RUNS_SCHEMA",
    "conform",
    "open_table",
    "table_version",
    "read_table",
    "scan_table",
    "replace_where",
    "append",
    "sql_in",
]

CLIPS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),  # BLAKE2b-128 of the file's bytes (hex)
        ("uri", pa.string()),
        ("bytes", pa.int64()),
        ("mtime", pa.float64()),
        ("format", pa.string()),
        ("subtype", pa.string()),
        ("native_sr", pa.int32()),
        ("channels", pa.int32()),
        ("frames", pa.int64()),  # native-rate samples per channel actually decoded
        ("duration_s", pa.float64()),
        ("sr", pa.int32()),  # rate the features were computed at
        ("split", pa.string()),
        ("run_id", pa.string()),
    ]
)

FRAMES_INDEX_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("part", pa.string()),  # Zarr group, relative to <dataset>/frames/
        ("start", pa.int64()),
        ("stop", pa.int64()),
        ("n_frames", pa.int64()),
        ("sr", pa.int32()),
        ("hop_length", pa.int32()),
        ("recipe_hash", pa.string()),
        ("run_id", pa.string()),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("uri", pa.string()),
        ("clip_id", pa.string()),
        ("step", pa.string()),  # discover | decode | features | shard | publish | stage
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("dataset", pa.string()),
        ("kind", pa.string()),  # ingest | rebuild | stage
        ("status", pa.string()),  # ok | failed
        ("config_hash", pa.string()),
        ("recipe_hash", pa.string()),
        ("code_version", pa.string()),
        ("started", pa.timestamp("us", tz="UTC")),
        ("finished", pa.timestamp("us", tz="UTC")),
        ("files_found", pa.int64()),
        ("files_new", pa.int64()),
        ("files_changed", pa.int64()),
        ("files_removed", pa.int64()),
        ("files_processed", pa.int64()),
        ("files_failed", pa.int64()),
        ("clips_total", pa.int64()),
        ("audio_seconds", pa.float64()),
        ("wall_seconds", pa.float64()),
        ("shards", pa.int64()),
        ("table_versions", pa.string()),  # JSON {table: version} visible after this run
        ("message", pa.string()),
        # stage runs (kind "stage"; null for ingest/rebuild; added later: older tables gain
        # them on the next append, see audiopipe.store.runs.append_run)
        ("stage", pa.string()),
        ("params", pa.string()),  # JSON of the resolved parameters
        ("params_hash", pa.string()),
        ("input_versions", pa.string()),  # JSON {table or file:<uri>: version or content hash}
        ("model_id", pa.string()),
        ("artifacts", pa.string()),  # JSON {"folder", "model", "plots", "files"}
        ("timings", pa.string()),  # JSON {phase: seconds}
    ]
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder/cast ``table`` to ``schema``; missing columns become nulls, extras are kept after."""
    cols, names = [], []
    n = table.num_rows
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(n, f.type))
        names.append(f.name)
    for name in table.column_names:
        if name not in names:
            cols.append(table.column(name))
            names.append(name)
    return pa.table(cols, names=names)


def open_table(loc: Location, name: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table ``name`` of a dataset (at ``version``), or None if it does not exist."""
    try:
        return DeltaTable(
            loc.table_uri(name), version=version, storage_options=loc.storage_options or None
        )
    except TableNotFoundError:
        return None


def table_version(loc: Location, name: str) -> int | None:
    dt = open_table(loc, name)
    return None if dt is None else dt.version()


def read_table(
    loc: Location, name: str, version: int | None = None, columns: list[str] | None = None
) -> pa.Table | None:
    dt = open_table(loc, name, version)
    if dt is None:
        return None
    return dt.to_pyarrow_table(columns=columns)


def scan_table(
    loc: Location, name: str, version: int | None = None, columns: list[str] | None = None
) -> pa.Table | None:
    """Rows of a table in no particular order, read by delta-rs's own engine (DataFusion).

    For reads where order does not matter (runs, counts, lookups): it does not import
    ``pyarrow.dataset`` (and through it pandas), ~0.6 s of a command's start. View types
    (``string_view``) come back as their plain types.
    """
    dt = open_table(loc, name, version)
    if dt is None:
        return None
    t = pa.RecordBatchReader.from_stream(dt.scan(columns=columns)).read_all()
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    if any(f.type in plain for f in t.schema):
        t = t.cast(pa.schema([f.with_type(plain.get(f.type, f.type)) for f in t.schema]))
    return t


def sql_in(column: str, values: Iterable[str]) -> str:
    """A SQL ``column IN (...)`` predicate with quotes escaped."""
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})"


def append(
    loc: Location, name: str, data: pa.Table | Any, schema_mode: str | None = "merge"
) -> int:
    """Append rows in one commit; returns the new version."""
    write_deltalake(
        loc.table_uri(name),
        data,
        mode="append",
        schema_mode=schema_mode,
        storage_options=loc.storage_options or None,
    )
    return table_version(loc, name)  # type: ignore[return-value]


def replace_where(
    loc: Location, name: str, data: pa.Table, column: str, keys: Iterable[str]
) -> int | None:
    """Replace the rows whose ``column`` is in ``keys`` by ``data``, in one commit.

    Creates the table when absent. ``data`` rows must all have their key in ``keys``.
    Returns the new version (or the current one when there is nothing to do).
    """
    keys = set(keys)
    dt = open_table(loc, name)
    if dt is None:
        if data.num_rows == 0 and not keys:
            return None
        write_deltalake(
            loc.table_uri(name), data, mode="append", storage_options=loc.storage_options or None
        )
        return table_version(loc, name)
    if not keys and data.num_rows == 0:
        return dt.version()
    if not keys:
        return append(loc, name, data)
    if data.num_rows == 0:
        data = dt.to_pyarrow_table().slice(0, 0)
    write_deltalake(
        dt,
        data,
        mode="overwrite",
        predicate=sql_in(column, keys),
        schema_mode="merge",
        storage_options=loc.storage_options or None,
    )
    return table_version(loc, name)

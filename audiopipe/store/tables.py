"""Delta Lake tables: small helpers over ``deltalake`` (schemas: :mod:`audiopipe.store.records`).

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
import pyarrow.fs as pa_fs
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from audiopipe.store._log import GONE, CommitTimes, log_entry
from audiopipe.store.location import Location
from audiopipe.store.records import ErrorRow

__all__ = [
    "APPEND_RETRIES",
    "ERRORS_SCHEMA",
    "conform",
    "open_table",
    "native_filesystem",
    "table_version",
    "rows_changed_since",
    "table_exists",
    "read_table",
    "scan_table",
    "scan_delta",
    "column_to_numpy",
    "string_codes",
    "replace_where",
    "append",
    "sql_in",
]

#: the ``errors`` schema (defined by :class:`~audiopipe.store.records.ErrorRow`), for stages
#: that append their own errors rows
ERRORS_SCHEMA = ErrorRow.schema()


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


def native_filesystem(loc: Location, name: str) -> pa_fs.FileSystem | None:
    """pyarrow's own (C++) filesystem rooted at table ``name``, or None for other stores.

    deltalake reads Parquet through a Python-implemented filesystem by default, with
    pre-buffering: Arrow's I/O threads then hold Python buffers, and one still finishing a
    read when the interpreter exits needs the GIL during finalisation and aborts the process
    ("terminate called without an active exception", exit 134, seen in 1 of 4-12 runs of
    ``audiopipe status``). Native local and S3 filesystems hold no Python objects.
    """
    uri = loc.table_uri(name)
    if "://" not in uri or uri.startswith("file://"):
        return pa_fs.SubTreeFileSystem(uri.removeprefix("file://"), pa_fs.LocalFileSystem())
    scheme, _, path = uri.partition("://")
    if scheme not in ("s3", "s3a"):
        return None
    o = loc.storage_options
    kw: dict[str, Any] = {"region": o.get("AWS_REGION") or "us-east-1"}
    if o.get("AWS_ACCESS_KEY_ID"):
        kw.update(access_key=o["AWS_ACCESS_KEY_ID"], secret_key=o.get("AWS_SECRET_ACCESS_KEY"),
                  session_token=o.get("AWS_SESSION_TOKEN"))
    endpoint = o.get("AWS_ENDPOINT_URL")
    if endpoint:
        ep_scheme, _, host = endpoint.partition("://")
        kw.update(endpoint_override=host.rstrip("/") or ep_scheme,
                  scheme=ep_scheme if host else "https")
    return pa_fs.SubTreeFileSystem(path, pa_fs.S3FileSystem(**kw))


class _Table(DeltaTable):
    """A ``DeltaTable`` whose pyarrow reads use :func:`native_filesystem` when one applies."""

    _native_fs: pa_fs.FileSystem | None = None

    def to_pyarrow_dataset(self, *args: Any, filesystem: Any = None, **kw: Any) -> Any:
        return super().to_pyarrow_dataset(*args, filesystem=filesystem or self._native_fs, **kw)


def open_table(loc: Location, name: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table ``name`` of a dataset (at ``version``), or None if it does not exist."""
    try:
        dt = _Table(
            loc.delta_uri(name), version=version, storage_options=loc.storage_options or None
        )
    except TableNotFoundError:
        return None
    except DeltaError as err:  # (a damaged log): say which table, the message does not
        err.add_note(f"cannot read table {name!r} of dataset {loc.dataset!r} ({loc.table_uri(name)})")
        raise
    dt._native_fs = native_filesystem(loc, name)
    return dt


def table_exists(loc: Location, name: str) -> bool:
    """Whether table ``name`` has a Delta log on storage (local folders are checked without
    fsspec, whose import costs a quick command ~0.1 s)."""
    log = f"{loc.table_uri(name)}/_delta_log"
    if not loc.is_remote:
        import os

        return os.path.isdir(log.removeprefix("file://"))
    return bool(loc.fs.exists(log))


def table_as_of(loc: Location, name: str, when: Any) -> DeltaTable | None:
    """Table ``name`` at its last commit made by ``when`` (a UTC datetime; None: its latest
    version), or None when it has no commit by then (or does not exist)."""
    dt = open_table(loc, name)
    if dt is None:
        return None
    v = version_as_of(loc, name, dt, when)
    if v is not None and v != dt.version():
        dt.load_as_version(v)
    return None if v is None else dt


def version_as_of(loc: Location, name: str, dt: DeltaTable, when: Any) -> int | None:
    """The version of table ``name`` (``dt``, as loaded) last committed by ``when`` (None: the
    loaded one), or None when it has no commit by then.

    The commits' times are read from their log entries, newest first, one GET each (delta-rs's
    ``history`` lists the log, which timed out against the tests' S3 server), each entry once
    per process while the table's history is unchanged (:class:`~audiopipe.store._log.
    CommitTimes`: a pinned open and every run a vacuum keeps ask again); only when an entry
    has been cleaned up after a checkpoint is ``history`` asked.
    """
    if when is None:
        return dt.version()
    limit = when.timestamp() * 1000
    times = CommitTimes(loc, name, dt)
    for v in range(dt.version(), -1, -1):
        stamp = times(v)
        if stamp is GONE:
            by = [c["version"] for c in dt.history() if c["timestamp"] <= limit]
            return max(by, default=None)
        if stamp is not None and stamp <= limit:
            return v
    return None


def table_version(loc: Location, name: str) -> int | None:
    dt = open_table(loc, name)
    return None if dt is None else dt.version()


#: Delta operations that change no row (a vacuum deletes unreferenced files, and logs it)
MAINTENANCE_OPERATIONS = frozenset({"VACUUM START", "VACUUM END"})


def rows_changed_since(loc: Location, name: str, version: int) -> bool:
    """Whether table ``name`` has a commit after ``version`` that can change its rows
    (:data:`MAINTENANCE_OPERATIONS` do not; a table gone, or older than ``version``, has)."""
    import json

    dt = open_table(loc, name)
    if dt is None or dt.version() < version:
        return True
    for v in range(version + 1, dt.version() + 1):
        text = log_entry(loc, name, v)
        if text is None:
            return True  # (cleaned up after a checkpoint: unknown)
        actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        ops = [a["commitInfo"].get("operation") for a in actions if "commitInfo" in a]
        if not ops or any(op not in MAINTENANCE_OPERATIONS for op in ops):
            return True
    return False


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
    return None if dt is None else scan_delta(dt, columns)


def scan_delta(dt: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """:func:`scan_table` of a table already opened (at the version it was opened at).

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from deltalake import DeltaTable, write_deltalake
    >>> d = tempfile.mkdtemp()
    >>> write_deltalake(d, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    >>> scan_delta(DeltaTable(d), ["b"]).column_names
    ['b']
    """
    reader = pa.RecordBatchReader.from_stream(dt.scan(columns=columns))
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    if any(f.type in plain for f in reader.schema):
        # the reader casts each batch in C++; Table.cast would import pyarrow.compute (~0.1 s)
        reader = reader.cast(
            pa.schema([f.with_type(plain.get(f.type, f.type)) for f in reader.schema])
        )
    return reader.read_all()


def sql_in(column: str, values: Iterable[str]) -> str:
    """A SQL ``column IN (...)`` predicate with quotes escaped."""
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})"


#: times an append is tried again when another writer's commit came first in a way delta-rs
#: does not resolve itself (two first writes of a table: "Metadata changed since last commit")
APPEND_RETRIES = 6


def append(
    loc: Location, name: str, data: pa.Table | Any, schema_mode: str | None = "merge"
) -> int:
    """Append rows in one commit; returns the version of that commit.

    Several runs append to the shared tables (``metrics``, ``errors``, ``runs``) at once.
    delta-rs resolves concurrent appends to an existing table itself, but not two first
    writes (each creates the table: one fails with ``CommitFailedError``), nor a schema
    merge racing another commit: those are tried again, after a short random pause, up to
    :data:`APPEND_RETRIES` times. (A failed commit published nothing: its data files are
    unreferenced, and a vacuum removes them.) The version is found by a token the commit
    carries (the table's latest version may already be another writer's).
    """
    import random
    import time
    import uuid

    from deltalake import CommitProperties

    if isinstance(data, pa.RecordBatchReader):
        data = data.read_all()  # (read once: a retry writes it again)
    token = uuid.uuid4().hex
    for attempt in range(APPEND_RETRIES + 1):
        try:
            write_deltalake(
                loc.delta_uri(name),
                data,
                mode="append",
                schema_mode=schema_mode,
                storage_options=loc.storage_options or None,
                commit_properties=CommitProperties(custom_metadata={_TOKEN: token}),
            )
            break
        except CommitFailedError:
            if attempt == APPEND_RETRIES:
                raise
            time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
    return _commit_version(loc, name, token)


#: the commit-info key of :func:`append`'s token
_TOKEN = "audiopipe_commit"


def _commit_version(loc: Location, name: str, token: str) -> int:
    """The version of the commit of table ``name`` that carries ``token``: its log entries are
    read newest first. (delta-rs's ``history`` numbers commits from the snapshot it opened,
    and gave negative versions when another writer committed meanwhile.)"""
    dt = open_table(loc, name)
    assert dt is not None
    for v in range(dt.version(), -1, -1):
        text = log_entry(loc, name, v)
        if text is None:
            break  # (older entries cleaned up after a checkpoint)
        if token in text:
            return v
    raise LookupError(f"table {name!r}: no commit carries token {token} (just committed)")


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
        if data.num_rows == 0:  # nothing to remove from a table that does not exist
            return None
        write_deltalake(
            loc.delta_uri(name), data, mode="append", storage_options=loc.storage_options or None
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
    return table_version(loc, name)  # (a stage's own table: one writer, its stage's lock)


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> Any:
    """A fixed-width column without nulls as a numpy array, without importing pandas.

    pyarrow's ``to_numpy`` goes through its pandas conversion and imports pandas (~0.5 s of a
    quick command such as ``audiopipe identify``); this reads the value buffers directly.
    Columns with nulls, or of other types, take pyarrow's path.

    Examples
    --------
    >>> column_to_numpy(pa.chunked_array([[1, 2], [3]], pa.int64())).tolist()
    [1, 2, 3]
    """
    import numpy as np

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)) or column.null_count:
        return column.to_numpy()
    dtype = np.dtype(t.to_pandas_dtype())
    parts = [
        np.frombuffer(c.buffers()[1], dtype, len(c), c.offset * dtype.itemsize)
        for c in chunks
        if len(c)
    ]
    if not parts:
        return np.zeros(0, dtype)
    return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


def string_codes(column: pa.ChunkedArray) -> tuple[list[str], Any]:
    """``(names, codes)`` of a string column without nulls: its distinct values sorted, and
    each row's index into them (int64), so ``names[codes[i]]`` is row ``i``'s value.

    Fixed-length values (hex ids) are sorted as bytes in numpy (UTF-8 byte order is code
    point order, so the same order as Python's); others go through pyarrow's dictionary
    encoding, which imports ``pyarrow.compute`` (~0.1 s of a quick command).

    Examples
    --------
    >>> names, codes = string_codes(pa.chunked_array([["b", "a"], ["b"]]))
    >>> names, codes.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    import numpy as np

    parts = []
    for c in column.chunks:
        if c.null_count or not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
            parts = None
            break
        odt = np.int64 if pa.types.is_large_string(c.type) else np.int32
        off = np.frombuffer(c.buffers()[1], odt, len(c) + 1, c.offset * np.dtype(odt).itemsize)
        data = c.buffers()[2]
        if data is not None and not np.frombuffer(data, np.uint8).all():
            parts = None  # a NUL byte: numpy's fixed-width bytes would drop a trailing one
            break
        parts.append((off, data))
    widths = {int(w) for off, _ in parts or [] for w in np.unique(np.diff(off))}
    if parts is not None and len(widths) <= 1 and widths != {0}:
        width = widths.pop() if widths else 1
        rows = [
            np.frombuffer(data, f"S{width}", len(off) - 1, int(off[0]))
            for off, data in parts
            if len(off) > 1
        ]
        values = np.concatenate(rows) if rows else np.zeros(0, f"S{width}")
        uniq, codes = np.unique(values, return_inverse=True)
        return [u.decode() for u in uniq.tolist()], codes.astype(np.int64).reshape(-1)
    enc = column.combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    order = np.argsort(np.array(names, dtype=object)) if names else np.zeros(0, np.int64)
    rank = np.empty(len(names), np.int64)
    rank[order] = np.arange(len(names))
    return [names[i] for i in order], rank[column_to_numpy(enc.indices)]

"""Staged shards: a worker's rows wait under ``_staging/<shard>/`` until the run publishes them.

A staged shard is ``<table>.parquet`` per table plus ``_SUCCESS`` (the shard's
:class:`~audiopipe.ingest.shard.ShardResult` as JSON), written last: a shard without the marker
is incomplete and is recomputed; one with it is reused by the next attempt or run.

Examples
--------
>>> import tempfile, pyarrow as pa
>>> from audiopipe.store.location import Location
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> load_result(loc, "k") is None
True
>>> write_tables(loc, "k", {"clips": pa.table({"uri": ["/a.wav"]})})
>>> load_result(loc, "k") is None  # not complete yet
True
>>> write_success(loc, "k", ShardResult("k", files_ok=1))
>>> load_result(loc, "k").files_ok, read_staged(loc, ["k"], "clips").num_rows
(1, 1)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields

import pyarrow as pa
import pyarrow.parquet as pq

from audiopipe.ingest.shard import ShardResult
from audiopipe.store.location import Location
from audiopipe.store.staged import SUCCESS
from audiopipe.uri import remove

__all__ = ["SUCCESS", "write_tables", "write_success", "load_result", "read_staged", "clean"]


def write_tables(loc: Location, key: str, tables: Mapping[str, pa.Table]) -> None:
    """Stage a shard's tables (not yet complete: :func:`write_success` marks it so)."""
    fs = loc.fs
    fs.makedirs(loc.staging_uri(key), exist_ok=True)
    for name, t in tables.items():
        with fs.open(loc.staging_uri(key, f"{name}.parquet"), "wb") as f:
            pq.write_table(t, f)


def write_success(loc: Location, key: str, result: ShardResult) -> None:
    """Write the ``_SUCCESS`` marker (the shard's result): written last, it makes the shard
    complete."""
    with loc.fs.open(loc.staging_uri(key, SUCCESS), "w") as f:
        json.dump(asdict(result), f)


def load_result(loc: Location, key: str) -> ShardResult | None:
    """The result of a completely staged shard (``reused`` set), or None."""
    fs = loc.fs
    marker = loc.staging_uri(key, SUCCESS)
    if not fs.exists(marker):
        return None
    with fs.open(marker, "r") as f:
        saved = json.load(f)
    known = {f.name for f in fields(ShardResult)}  # a marker staged by another version
    res = ShardResult(**{k: v for k, v in saved.items() if k in known})
    res.reused = True
    return res


def read_staged(loc: Location, keys: Iterable[str], name: str) -> pa.Table | None:
    """Table ``name`` of the staged shards ``keys``, concatenated (None when none has it)."""
    fs = loc.fs
    tables = []
    for k in keys:
        p = loc.staging_uri(k, f"{name}.parquet")
        if fs.exists(p):
            with fs.open(p, "rb") as f:
                tables.append(pq.read_table(f))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def clean(loc: Location, keys: Iterable[str]) -> None:
    """Remove staged shards (after publishing; what cannot be removed is left for vacuum)."""
    fs = loc.fs
    for k in keys:
        p = loc.staging_uri(k)
        try:
            if fs.exists(p):
                remove(fs, p, recursive=True)
        except OSError:
            pass

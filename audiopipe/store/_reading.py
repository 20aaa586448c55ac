"""Helpers of :class:`~audiopipe.store.dataset.Dataset`'s table reads: the ingest tables'
fixed schemas, empty tables, column checks and ``clips``' content order."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from audiopipe.store.records import ClipRow, ErrorRow, FeaturesRow, FramesIndexRow, RunRow

#: the fixed schemas of the ingest tables: a table not written yet (every file failed) reads
#: as 0 rows of these columns (label and feature-statistic columns come with the first rows)
SCHEMAS = {
    "clips": ClipRow.schema,
    "features": FeaturesRow.schema,
    "frames_index": FramesIndexRow.schema,
    "errors": ErrorRow.schema,
    "runs": RunRow.schema,
}


def check_columns(
    name: str, have: list[str], columns: list[str] | None, note: str = ""
) -> None:
    """``KeyError`` naming the columns of ``columns`` that table ``name`` lacks, and its columns
    (instead of pyarrow's error, which lists the scanner's internal fields)."""
    if columns is None:
        return
    unknown = [c for c in columns if c not in set(have)]
    if unknown:
        raise KeyError(
            f"table {name!r} has no column {', '.join(map(repr, unknown))} "
            f"(has: {', '.join(have)}){note}"
        )


def select_columns(name: str, t: pa.Table, columns: list[str] | None) -> pa.Table:
    check_columns(name, t.column_names, columns)
    return t if columns is None else t.select(columns)


def empty_table(name: str, columns: list[str] | None) -> pa.Table:
    """0 rows of table ``name`` not written yet: its schema (ingest tables), else the asked
    columns with no type (a stage's table, whose schema only its rows give)."""
    if name not in SCHEMAS:
        return pa.table({c: pa.nulls(0) for c in columns or []})
    schema = SCHEMAS[name]()
    check_columns(
        name, schema.names, columns,
        " (the table has no rows yet: label and feature columns come with its first rows)",
    )  # fmt: skip
    t = pa.Table.from_batches([], schema=schema)  # (Schema.empty_table imports pandas, ~0.5 s)
    return t if columns is None else t.select(columns)


def in_content_order(dt: Any, columns: list[str] | None) -> pa.Table:
    """``clips`` rows sorted by (content hash, clip id): the order every stage's folds,
    shuffles and held-out splits start from then depends on the recordings alone, not on
    the order they arrived in (incremental ingestion appends) nor where the dataset lives
    (a clip id hashes the uri; two copies of one recording tie on the hash and keep an
    order by id)."""
    keys = ["content_hash", "clip_id"]
    names = {f.name for f in dt.schema().fields}
    if not all(k in names for k in keys):
        return dt.to_pyarrow_table(columns=columns)
    want = None if columns is None else list(dict.fromkeys([*columns, *keys]))
    t = dt.to_pyarrow_table(columns=want)
    if t.num_rows > 1:
        t = t.sort_by([(k, "ascending") for k in keys])
    return t if columns is None else t.select(columns)

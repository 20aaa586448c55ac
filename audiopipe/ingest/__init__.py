"""Ingestion as plain functions: plan a run, extract its shards, publish it.

``flows/`` composes these into Prefect flows; they run just as well from a notebook or a
plain Dask client:

>>> from audiopipe.config import load_config
>>> from audiopipe.ingest import extract_shard, plan_ingest, publish
>>> plan = plan_ingest(load_config("datasets.yaml"), "demo")           # doctest: +SKIP
>>> publish(plan, [extract_shard(s, plan.context) for s in plan.shards])  # doctest: +SKIP

The steps, one module each: :mod:`~audiopipe.ingest.plan` (discover files, join their
labels, diff them against the store, refuse a run that would empty the dataset, skip files
that failed unchanged, group the work into balanced shards), :mod:`~audiopipe.ingest.shard`
(the shard, the context a worker gets, the result it returns), :mod:`~audiopipe.ingest.reader` (hash, check
and decode a shard's files), :mod:`~audiopipe.ingest.pool` (with a spare core, two threads
extracting whole files, handed back in file order), :mod:`~audiopipe.ingest.extract`
(features, frames and rows of each file),
:mod:`~audiopipe.ingest.staging` (a shard's rows wait for the run to publish them),
:mod:`~audiopipe.ingest.publish` (one commit per table, then the ``runs`` row; a run whose
removals, files gone and stored files that now fail, exceed ``max_removed_share`` is not
published), :mod:`~audiopipe.ingest.turn` (the dataset's lock held from plan to publish; no
data published while a stage runs). The rows are
typed records of :mod:`audiopipe.store.records`; run records live in
:mod:`audiopipe.store.runs`.

Consistency model
-----------------
Workers write immutable things only: a Zarr frames part per shard and staged
Parquet rows under ``_staging/<shard>/`` with a ``_SUCCESS`` marker written
last. :func:`publish` commits each table once (Delta replace-where: removals
and additions of a run in one commit), then appends the run to ``runs`` with
the version of every table. :func:`audiopipe.store.open_dataset` reads the
tables at the versions of the last successful run, so a run killed half-way
through publishing is invisible; :func:`audiopipe.store.runs.recover` restores the tables to
those versions before the next run (``errors``: it deletes the unfinished runs' rows, the
rows stages appended stay). Staged shards whose ``_SUCCESS`` exists are not
recomputed, so a re-run after a crash only does the missing work.
"""

from audiopipe.catalog import LabelsError
from audiopipe.ingest.extract import extract_shard
from audiopipe.ingest.plan import (
    EmptySourceError,
    IngestPlan,
    RecipeChangedError,
    RemovalRefusedError,
    plan_ingest,
    plan_shards,
)
from audiopipe.ingest.publish import publish, record_failed_run
from audiopipe.ingest.shard import IngestContext, Shard, ShardResult

__all__ = [
    "EmptySourceError",
    "LabelsError",
    "RemovalRefusedError",
    "IngestContext",
    "IngestPlan",
    "RecipeChangedError",
    "Shard",
    "ShardResult",
    "extract_shard",
    "plan_ingest",
    "plan_shards",
    "publish",
    "record_failed_run",
]

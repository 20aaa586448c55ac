"""Publish a run: commit the staged shards' rows, then the ``runs`` row that makes them visible.

Each table gets one Delta commit: ``clips`` rows are replaced by uri (new, changed, relabeled and
removed files), ``features`` and ``frames_index`` rows by clip id (a rebuild overwrites them), and
``errors`` rows are appended. The ``runs`` row, appended last with the version of every table,
is what readers pin to (:func:`audiopipe.store.runs.pinned_versions`): a run killed before it
is invisible, and :func:`audiopipe.store.runs.recover` undoes its commits before the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from audiopipe import __version__
from audiopipe import features as F
from audiopipe.catalog import FileEntry
from audiopipe.ingest import staging
from audiopipe.ingest.extract import split_for
from audiopipe.ingest.plan import IngestPlan, RemovalRefusedError, retried_failure
from audiopipe.ingest.removals import check_removals
from audiopipe.ingest.shard import Shard, ShardResult
from audiopipe.store.lease import check_lease
from audiopipe.store.location import Location
from audiopipe.store.lock import LOCK_DIR
from audiopipe.store.records import ClipRow, ErrorRow, FeaturesRow, FramesIndexRow, RunRow
from audiopipe.store.runs import append_run
from audiopipe.store.tables import append, open_table, read_table, replace_where, table_version

__all__ = ["publish", "record_failed_run", "worker_timings"]


def publish(plan: IngestPlan, results: Sequence[ShardResult | BaseException]) -> dict[str, Any]:
    """Commit a run: one Delta commit per table, then the ``runs`` row.

    ``results`` holds one entry per shard of the plan, in order: a
    :class:`ShardResult`, or the exception that made the shard fail (its files
    are recorded in ``errors`` and will be retried by the next run).

    A stored file processed again (changed, or any file in a rebuild) that now fails is
    removed like a file gone: its old rows described other audio than the file now holds.
    In an ingest, a stored file whose shard was lost (a worker died: nothing is known of its
    bytes) keeps its rows as they were and is retried by the next run; a rebuild, which
    replaces every row, removes it too. Removals are guarded: when, with the files gone,
    they are more than the plan's ``max_removed_share`` of the stored clips - the failures
    counted over the runs of a pass capped by ``max_files_per_run`` (files gone for their
    run only), with the share of its stored files
    that failed carried over the stored files still deferred (:mod:`audiopipe.ingest.removals`)
    - and the plan does not ``allow_removals``, nothing is published, a ``failed`` run row
    says why, and :class:`~audiopipe.ingest.plan.RemovalRefusedError` is raised; an ingest's staged shards
    stay for the rerun to reuse (a rebuild's are removed: its rerun computes new ones).
    A run that lost the lease of the dataset's lock it holds (another run took it over:
    :mod:`audiopipe.store.lease`) commits nothing and raises
    :class:`~audiopipe.store.lease.LeaseLost`.

    Returns the ``runs`` row as a dict, with ``publish_seconds``, ``worker_timings`` (the
    seconds the shards computed in this run spent per phase, summed: see
    :data:`audiopipe.ingest.extract.PHASES`) and ``shard_spans`` (``(worker, started_at,
    seconds)`` per shard) added.
    """
    t0 = time.perf_counter()
    loc = plan.context.location
    pairs = list(zip(plan.shards, results, strict=True))
    ok = [r for _, r in pairs if isinstance(r, ShardResult)]
    ok_keys = [r.key for r in ok]
    failed = [(s, r) for s, r in pairs if isinstance(r, BaseException)]
    clips, same = _new_clips(plan, ok)
    errors = _errors(plan, loc, ok_keys, failed)
    # shards lost to the infrastructure (not a decoder crash, which speaks of its files)
    lost = {f.uri for s, e in failed if retried_failure("shard", _error_type(e)) for f in s.files}
    kept = lost if plan.kind == "ingest" else set()  # rows left as they were, retried next run
    dropped = [u for u in _failed_stored(plan, clips, same) if u not in kept]
    try:  # before any commit: refused, nothing changes
        removal_pass = check_removals(plan, dropped, errors, lost, kept)
    except RemovalRefusedError as err:
        record_failed_run(plan, str(err))
        if plan.kind == "rebuild":  # its shard keys hold its run id: no rerun reuses them
            staging.clean(loc, ok_keys)
        raise
    check_lease(loc.join(LOCK_DIR))  # (a run whose lock was taken over commits nothing)
    versions = dict(plan.base_versions)
    versions.update(_publish_data(plan, ok, clips, same, kept))
    if errors is not None:
        versions["errors"] = append(loc, "errors", errors)
    run = _run_row(plan, ok, sum(len(s.files) for s, _ in failed), versions, dropped,
                   len(kept & set(plan.stored_clips)))
    run = replace(run, removal_pass=removal_pass)
    append_run(loc, run)
    staging.clean(loc, ok_keys)
    return {
        **run.to_dict(),
        "publish_seconds": time.perf_counter() - t0,
        "worker_timings": worker_timings(ok),
        "shard_spans": [(r.worker, r.started_at, r.seconds) for r in ok if not r.reused],
    }


def _error_type(err: BaseException) -> str:
    """The ``error_type`` of ``err``'s ``errors`` rows (as :meth:`ErrorRow.of` names it)."""
    return getattr(err, "kind", None) or type(err).__name__


def worker_timings(results: Sequence[ShardResult]) -> dict[str, float]:
    """Seconds per phase summed over the shards computed (not reused) in this run.

    >>> worker_timings([ShardResult("a", timings={"decode": 1.0}),
    ...                 ShardResult("b", timings={"decode": 0.5, "zarr": 0.25})])
    {'decode': 1.5, 'zarr': 0.25}
    """
    out: dict[str, float] = {}
    for r in results:
        if not r.reused:
            for k, v in r.timings.items():
                out[k] = out.get(k, 0.0) + v
    return out


def _new_clips(plan: IngestPlan, ok: list[ShardResult]) -> tuple[pa.Table | None, pa.Table | None]:
    """The staged ``clips`` rows of the run (labels of now), and the stored rows of changed
    files whose bytes did not change (None when there are none)."""
    loc = plan.context.location
    clips = staging.read_staged(loc, [r.key for r in ok if not r.reused], "clips")
    reused = staging.read_staged(loc, [r.key for r in ok if r.reused], "clips")
    if reused is not None:  # staged by an earlier, killed run: the labels may have changed since
        clips = _concat(clips, _labelled_now(plan, reused, {f.uri: f for f in plan.diff.to_process}))
    return clips, _same_bytes_rows(plan, ok)


def _failed_stored(plan: IngestPlan, clips: pa.Table | None, same: pa.Table | None) -> list[str]:
    """Uris of stored files processed again that have no row now (they failed, or their
    shard was lost): they are removed from the dataset."""
    done = set() if clips is None else set(clips.column("uri").to_pylist())
    done |= set() if same is None else set(same.column("uri").to_pylist())
    return [f.uri for f in plan.diff.to_process if f.uri in plan.stored_clips and f.uri not in done]


def _publish_data(
    plan: IngestPlan,
    ok: list[ShardResult],
    clips: pa.Table | None,
    same: pa.Table | None,
    kept: frozenset[str] | set[str] = frozenset(),
) -> dict[str, int | None]:
    """Commit ``clips``, ``features`` and ``frames_index`` (``clips`` and ``same``: see
    :func:`_new_clips`; the rows of files in ``kept`` stay as they are); their new versions."""
    loc = plan.context.location
    keys = [r.key for r in ok]
    replaced_uris = {f.uri for f in plan.diff.to_process if f.uri not in kept}
    replaced_uris |= set(plan.diff.removed)
    replaced_uris |= {f.uri for f in plan.diff.relabeled}
    # clip ids that stop being referenced (changed or removed files), unless still used
    old_ids = {plan.stored_clips[u][2] for u in replaced_uris if u in plan.stored_clips}
    new_ids = set(clips.column("clip_id").to_pylist()) if clips is not None else set()
    still_used = set() if plan.kind == "rebuild" else {f.clip_id for f in plan.diff.unchanged}
    if same is not None:  # touched or copied over: the stored rows stay, with the new mtime
        still_used |= set(same.column("clip_id").to_pylist())
        clips = _concat(clips, same)
    # (changed files that failed: their old rows go, like a removed file's; publish counted them)
    drop_ids = (old_ids - still_used) | new_ids
    relabeled = _restated_rows(plan, {f.uri: f for f in plan.diff.relabeled})
    if relabeled is not None:  # labels changed, audio did not: new clips rows, same features
        clips = _concat(clips, relabeled)

    versions: dict[str, int | None] = {}
    if clips is not None or replaced_uris:
        if clips is None:
            clips = ClipRow.table([])
        versions["clips"] = replace_where(loc, "clips", clips, "uri", replaced_uris)
    for name, empty in (("features", FeaturesRow.table([])), ("frames_index", FramesIndexRow.table([]))):
        t = staging.read_staged(loc, keys, name)
        if plan.kind == "rebuild" and t is not None:  # a new version, this recipe's columns only
            write_deltalake(
                loc.delta_uri(name),
                _dedupe(t, "clip_id"),
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=loc.storage_options or None,
            )
            versions[name] = table_version(loc, name)
        elif t is not None or drop_ids:  # (a rebuild whose every shard was lost: rows dropped)
            t = empty if t is None else _dedupe(t, "clip_id")
            versions[name] = replace_where(loc, name, t, "clip_id", drop_ids)
    return versions


def _same_bytes_rows(plan: IngestPlan, results: list[ShardResult]) -> pa.Table | None:
    """Stored ``clips`` rows of changed files whose bytes did not change, with the new
    size, mtime and labels (None when there are none)."""
    same = {u: (size, mtime) for r in results for u, size, mtime in r.same_bytes}
    if not same:
        return None
    entries = {f.uri: f for f in plan.diff.changed if f.uri in same}
    return _restated_rows(plan, entries, {u: {"bytes": b, "mtime": m} for u, (b, m) in same.items()})


def _restated_rows(
    plan: IngestPlan,
    entries: dict[str, FileEntry],
    changes: dict[str, dict[str, Any]] | None = None,
) -> pa.Table | None:
    """The stored ``clips`` rows of ``entries`` (``{uri: entry}``) with their labels now, the
    split that follows from them and ``changes[uri]`` (None when there are none)."""
    if not entries:
        return None
    base = read_table(plan.context.location, "clips", version=plan.base_versions.get("clips"))
    stored = base.filter(pc.is_in(base["uri"], value_set=pa.array(sorted(entries))))
    return _labelled_now(plan, stored, entries, changes)


def _labelled_now(
    plan: IngestPlan,
    clips: pa.Table,
    entries: dict[str, FileEntry],
    changes: dict[str, dict[str, Any]] | None = None,
) -> pa.Table:
    """``clips`` rows with the labels of their ``entries`` now, the split that follows from
    them and ``changes[uri]`` (a row without an entry keeps its labels)."""
    cols = plan.context.label_columns
    rows = []
    for r in ClipRow.rows(clips, cols):
        e = entries.get(r.uri)
        if e is not None:
            labels = e.labels
            r = r.with_labels(
                {c: labels.get(c) for c in cols},
                split=split_for(r.uri, labels),
                **(changes or {}).get(r.uri, {}),
            )
        rows.append(r)
    return ClipRow.table(rows, label_columns=cols)


def _concat(a: pa.Table | None, b: pa.Table) -> pa.Table:
    return b if a is None else pa.concat_tables([a, b], promote_options="permissive")


def _dedupe(t: pa.Table, key: str) -> pa.Table:
    """The first row of each ``key`` (a shard retried after staging may repeat clips)."""
    seen: set[str] = set()
    keep = []
    for i, v in enumerate(t.column(key).to_pylist()):
        if v not in seen:
            seen.add(v)
            keep.append(i)
    return t.take(keep) if len(keep) != t.num_rows else t


def _errors(
    plan: IngestPlan,
    loc: Location,
    ok_keys: list[str],
    failed: list[tuple[Shard, BaseException]],
) -> pa.Table | None:
    """The run's ``errors`` rows: files' (staged by the shards) and failed shards' files."""
    parts = []
    run_id = plan.context.run_id
    staged = staging.read_staged(loc, ok_keys, "errors")
    if staged is not None and staged.num_rows:
        # rows of a shard staged by a killed or refused run carry that run's id: stamped with
        # the publishing run's, as their clips are (a reader showed only rows of finished
        # runs, so they were hidden, and a later recover() could take them for a killed run's)
        i = staged.schema.get_field_index("run_id")
        parts.append(staged.set_column(i, "run_id", pa.array([run_id] * staged.num_rows,
                                                             pa.string())))
    rows = [
        ErrorRow.of(
            run_id, f.uri, None, "shard", err,
            bytes=f.size, mtime=f.mtime, settings_hash=plan.context.settings_hash,
        )  # fmt: skip
        for s, err in failed
        for f in s.files
    ]
    if rows:
        parts.append(ErrorRow.table(rows))
    return pa.concat_tables(parts) if parts else None


def _run_row(
    plan: IngestPlan,
    ok: list[ShardResult],
    shard_failures: int,
    versions: dict[str, int | None],
    dropped: Sequence[str] = (),
    n_kept: int = 0,
) -> RunRow:
    loc = plan.context.location
    d = plan.diff
    n_same = sum(len(r.same_bytes) for r in ok)
    # (at the version the row records: a plan made while a stage runs leaves a killed run's
    # later commits in place until the next turn recovers them)
    clips = open_table(loc, "clips", versions["clips"]) if versions.get("clips") is not None else None
    n_dropped = len(dropped)
    # (the failed files are among the removed: the message's count is files_removed)
    message = replace(d, removed=[*d.removed, *dropped]).summary()
    if n_same:
        message += f"; {n_same} changed files had the same bytes (features kept)"
    if n_dropped:
        message += (
            f"; {n_dropped} changed {'file' if n_dropped == 1 else 'files'} failed and "
            f"{'was' if n_dropped == 1 else 'were'} removed"
        )
    if n_kept:
        message += (f"; {n_kept} stored {'file' if n_kept == 1 else 'files'} of lost shards "
                    "kept as before (retried by the next run)")
    message = "; ".join([message, *plan.notes])
    row = _run(plan, "ok", versions, message)
    return replace(
        row,
        files_found=len(d.unchanged) + len(d.to_process) + len(d.failed_before),
        files_new=len(d.new),
        files_changed=len(d.changed),
        files_removed=len(d.removed) + n_dropped,
        files_processed=sum(r.files_ok for r in ok) + n_same,
        files_failed=sum(r.files_failed for r in ok) + shard_failures,
        clips_total=0 if clips is None else clips.to_pyarrow_table(columns=["uri"]).num_rows,
        audio_seconds=float(sum(r.audio_seconds for r in ok)),
        wall_seconds=(row.finished - plan.started).total_seconds(),
        shards=len(plan.shards),
    )


def _run(plan: IngestPlan, status: str, versions: dict[str, int | None], message: str) -> RunRow:
    """The ``runs`` row of the plan's run, finished now, without its counts."""
    ctx = plan.context
    return RunRow(
        run_id=ctx.run_id,
        dataset=ctx.dataset,
        kind=plan.kind,
        status=status,
        config_hash=plan.config_hash,
        recipe_hash=ctx.recipe_hash,
        code_version=f"audiopipe {__version__} features {F.FEATURES_VERSION}",
        started=plan.started,
        finished=dt.datetime.now(dt.UTC),
        table_versions=json.dumps(versions, sort_keys=True),
        message=message,
    )


def record_failed_run(plan: IngestPlan, message: str) -> None:
    """Append a ``failed`` run row (tables untouched; nothing of the run is visible)."""
    append_run(plan.context.location, _run(plan, "failed", plan.base_versions, message[:2000]))

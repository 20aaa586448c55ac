"""Run records: the ``runs`` table that pins what a dataset's readers see.

Every pipeline step that publishes (ingest, rebuild, a stage) appends one row to ``runs``
with the versions of the tables it left behind. Readers open the tables at the versions of
the last successful run (:func:`pinned_versions`), so a run killed half-way through is
invisible; :func:`recover` restores the ingest tables to those versions before the next run
(and deletes the ``errors`` rows of unfinished ingest runs: the stages' rows stay).

Examples
--------
>>> new_run_id()[:2] == "20"
True
>>> summarize(RunRow(dataset="d", kind="ingest", status="ok", run_id="r", message="2 new",
...                  files_processed=2, files_failed=0, clips_total=2,
...                  wall_seconds=1.25, audio_seconds=3600.0))
'd: ingest r — 2 new; processed 2 files (1.00 h of audio), 0 failed; 2 clips in the dataset; 1.2 s'
"""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from audiopipe.store.location import Location
from audiopipe.store.lock import DatasetLocked, dataset_lock
from audiopipe.store.records import RunRow
from audiopipe.store.tables import append, open_table, scan_table, sql_in, table_exists

__all__ = [
    "DATA_TABLES",
    "INGEST_STEPS",
    "new_run_id",
    "read_runs",
    "last_run",
    "newest_run",
    "pinned_versions",
    "recover",
    "append_run",
    "stage_runs",
    "last_stage_run",
    "written_versions",
    "table_writers",
    "read_versions",
    "run_tables",
    "legacy_cutoff",
    "lost_data_tables",
    "summarize",
]

#: the tables an ingest run publishes
DATA_TABLES = ("clips", "features", "frames_index", "errors")
#: the ``errors`` steps ingestion writes (``read``: a file that could not be read at all, see
#: ``audiopipe.ingest.extract._file_error``); the other steps' rows are the stages'
INGEST_STEPS = frozenset({"discover", "read", "decode", "features", "shard", "publish"})
#: the tables :func:`recover` restores to the last ingest's versions (``errors`` is shared
#: with the stages: only the rows of unfinished ingest runs are deleted from it)
RESTORED_TABLES = ("clips", "features", "frames_index")


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{now}-{uuid.uuid4().hex[:6]}"


def read_runs(loc: Location) -> list[RunRow]:
    """Every row of the dataset's ``runs`` table, in no particular order ([] when none)."""
    t = scan_table(loc, "runs")
    return [] if t is None else RunRow.rows(t)


def newest_run(
    rows: list[RunRow], kinds: tuple[str, ...] = ("ingest", "rebuild")
) -> RunRow | None:
    """The newest successful row of the given kinds among ``runs`` rows, or None."""
    ok = [r for r in rows if r.status == "ok" and r.kind in kinds]
    return max(ok, key=lambda r: (r.finished, r.run_id)) if ok else None


def last_run(loc: Location, kinds: tuple[str, ...] = ("ingest", "rebuild")) -> RunRow | None:
    """The newest successful run of the given kinds, or None."""
    return newest_run(read_runs(loc), kinds)


def pinned_versions(loc: Location) -> dict[str, int | None]:
    """Table versions published by the last successful run ({} for a new dataset)."""
    prev = last_run(loc)
    return {} if prev is None else prev.versions()


def recover(loc: Location) -> dict[str, int]:
    """Undo commits that a killed run made after the last successful run.

    The ingest tables (:data:`RESTORED_TABLES`) are restored to the versions recorded by the
    last successful ingest or rebuild (a table created by a run that never finished is
    emptied). ``errors`` is not restored: stage runs append their own rows to it after an
    ingest, and those are no ingest's to undo; only the rows of ingest steps
    (:data:`INGEST_STEPS`) committed since by runs that did not finish are deleted. Returns
    ``{table: restored_to}`` for the tables it changed (``errors``: the version of the delete).
    """
    pinned = pinned_versions(loc)
    done: dict[str, int] = {}
    for name in RESTORED_TABLES:
        dtab = open_table(loc, name)
        if dtab is None:
            continue
        want = pinned.get(name)
        if want is None:
            if dtab.to_pyarrow_table().num_rows:
                empty = dtab.to_pyarrow_table().slice(0, 0)
                from deltalake import write_deltalake

                write_deltalake(
                    dtab, empty, mode="overwrite", storage_options=loc.storage_options or None
                )
                done[name] = -1
        elif dtab.version() > want:
            dtab.restore(want)
            done[name] = want
    v = _drop_unfinished_ingest_errors(loc, pinned.get("errors"))
    if v is not None:
        done["errors"] = v
    return done


def _drop_unfinished_ingest_errors(loc: Location, want: int | None) -> int | None:
    """Delete the ``errors`` rows of ingest steps committed after version ``want`` (the last
    successful ingest's; None: every version), which no successful ingest published: those of
    a killed one. Returns the new version, or None when there were none.

    They are told by run id: ids with more ingest-step rows now than at ``want`` and none at
    ``want``. (Datasets published before the publishing run stamped its id on reused staged
    shards' rows hold rows carrying a refused run's id: an id with rows at ``want`` is left
    alone rather than deleting its published rows with the new ones.)
    """
    from collections import Counter

    dtab = open_table(loc, "errors")
    if dtab is None or (want is not None and dtab.version() <= want):
        return None

    def ingest_ids(version: int | None) -> Counter[str | None]:
        t = scan_table(loc, "errors", version, ["step", "run_id"])
        rows = zip(t["step"].to_pylist(), t["run_id"].to_pylist(), strict=True)
        return Counter(r for s, r in rows if s in INGEST_STEPS)

    before = ingest_ids(want) if want is not None else Counter()
    ids = Counter({i: n for i, n in (ingest_ids(None) - before).items() if i not in before})
    if not ids:
        return None
    who = [i for i in ids if i is not None]
    cond = " OR ".join(([sql_in("run_id", who)] if who else []) +
                       (["run_id IS NULL"] if None in ids else []))
    dtab.delete(f"{sql_in('step', INGEST_STEPS)} AND ({cond})")
    return open_table(loc, "errors").version()


def append_run(loc: Location, row: RunRow) -> int | None:
    """Append one run row; returns the ``runs`` version.

    A ``runs`` table written before the stage columns existed gains them here (Delta
    schema merge; its older rows read them as null), so existing datasets keep opening.
    A successful row gets the metadata ids of the tables it recorded (``table_ids``, see
    :mod:`audiopipe.store.anew`) when it has none.
    """
    from audiopipe.store.anew import with_table_ids

    row = with_table_ids(loc, row)
    version = append(loc, "runs", RunRow.table([row]), schema_mode="merge")
    return _compact(loc) or version


#: a ``runs`` table of more files than this is compacted (one file per run otherwise: every
#: command that reads it - open_dataset, status, a stage's skip check - would open them all)
MAX_RUN_FILES = 48
#: the lock folder one compaction of ``runs`` at a time holds (not the dataset's: an ingest
#: holds that one while it records its run)
COMPACT_LOCK = "_lock_runs"


def _compact(loc: Location) -> int | None:
    """Merge the ``runs`` table's small files into one (a new version) when there are many.

    One process at a time, under :data:`COMPACT_LOCK`, on a snapshot read inside it: delta-rs
    commits two OPTIMIZEs of the same files made at once (its conflict check lets a rewrite
    that changes no data through), and every row would then be there twice. When another
    process holds the lock it is compacting: this one leaves it to it (None).
    """
    dt = open_table(loc, "runs")
    if dt is None or len(dt.file_uris()) <= MAX_RUN_FILES:
        return None
    try:
        with dataset_lock(loc, "compact runs", name=COMPACT_LOCK):
            dt = open_table(loc, "runs")  # (what a compaction that just ended left)
            if dt is None or len(dt.file_uris()) <= MAX_RUN_FILES:
                return None
            dt.optimize.compact()
            return open_table(loc, "runs").version()
    except DatasetLocked as err:
        if len(dt.file_uris()) > 2 * MAX_RUN_FILES:  # (not one compaction's while: a lock left)
            warnings.warn(
                f"the runs table of dataset {loc.dataset!r} has {len(dt.file_uris())} files and "
                f"is not compacted (every command reads them all): {err}",
                RuntimeWarning,
                stacklevel=3,
            )
        return None


def stage_runs(loc: Location, stage: str | None = None) -> list[RunRow]:
    """Rows of stage runs (of ``stage``, or all), oldest first."""
    rows = [r for r in read_runs(loc) if r.kind == "stage" and r.stage is not None]
    if stage is not None:
        rows = [r for r in rows if r.stage == stage]
    rows.sort(key=lambda r: (r.finished or r.started, r.run_id))
    return rows


def last_stage_run(
    loc: Location, stage: str, where: Callable[[RunRow], bool] | None = None
) -> RunRow | None:
    """The newest successful run of ``stage`` (for which ``where(row)`` holds), or None."""
    ok = [r for r in stage_runs(loc, stage) if r.status == "ok" and (where is None or where(r))]
    return ok[-1] if ok else None


#: tables every stage appends to (the runner's ``SHARED_TABLES``): concurrent runs of two
#: stages may record their versions out of finishing order, so the highest recorded counts
APPENDED_TABLES = ("metrics", "errors")


def written_versions(rows: list[RunRow]) -> dict[str, int | None]:
    """``{table: version}`` each table was left at by the newest of the successful ``rows``
    that recorded it (stage outputs included); for :data:`APPENDED_TABLES`, the highest
    version recorded (every one of those commits is an append).

    "Newest" is by (finished, run id): a table deleted and written anew restarts its versions,
    and the run that wrote it again is the newest. A stage holds its lock while it runs, so
    the runs that write one stage's tables finish in the order they wrote them.
    """
    out: dict[str, int | None] = {}
    ok = [r for r in rows if r.status == "ok" and r.finished is not None]
    for r in sorted(ok, key=lambda r: (r.finished, r.run_id)):
        for name, v in r.versions().items():
            if name in APPENDED_TABLES and v is not None and out.get(name) is not None:
                v = max(v, out[name] or 0)
            out[name] = v
    return out


def table_writers(rows: list[RunRow]) -> dict[str, RunRow]:
    """``{table: run}``: the newest of the successful ``rows`` that recorded each table."""
    ok = [r for r in rows if r.status == "ok" and r.finished is not None]
    return {n: r for r in sorted(ok, key=lambda r: (r.finished, r.run_id)) for n in r.versions()}


def read_versions(rows: list[RunRow], run: RunRow | None = None) -> dict[str, int | None]:
    """``{table: version}`` an open of the dataset reads, from its ``runs`` rows (what
    :class:`~audiopipe.store.Dataset` reads, and what :func:`~audiopipe.store.vacuum.vacuum`
    keeps for it); {} when no ingest or rebuild succeeded.

    A default open (``run`` None): the tables of the newest successful ingest or rebuild at
    its versions, every other table as the newest successful run that recorded it left it
    (:func:`written_versions`). Pinned to ``run``: the tables it read (a stage run's inputs)
    and wrote at their versions, the others as the successful runs finished by its end left
    them. ``None``: a table not written yet.
    """
    row = newest_run(rows) if run is None else run
    if row is None:
        return {}
    done = [r for r in rows if r.status == "ok" and r.finished is not None]
    if run is not None:
        end = (row.finished or row.started, row.run_id)  # (a failed run's row may lack an end)
        done = [r for r in done if end[0] is not None and (r.finished, r.run_id) <= end]
    return {**written_versions(done), **run_tables(row)}


def run_tables(row: RunRow) -> dict[str, int | None]:
    """``{table: version}`` of the tables run ``row`` wrote and, a stage run, read."""
    return row.tables()


def legacy_cutoff(rows: list[RunRow], run: RunRow | None = None) -> dt.datetime | None:
    """When an open (default, or pinned to ``run``) stops seeing commits no run it sees
    recorded: the start of the dataset's first stage run (commits before it are of stage code
    older than the runner), or the pinned run's end when earlier; None: no stage run yet."""
    starts = [r.started or r.finished for r in rows if r.kind == "stage"]
    ends = [t for t in [min(filter(None, starts), default=None)] if t is not None]
    if run is not None and run.finished is not None:
        ends.append(run.finished)
    return min(ends) if ends else None


def lost_data_tables(loc: Location, base: Mapping[str, int | None]) -> dict[str, int]:
    """``{table: version}`` of the data tables whose version in ``base`` (the last ingest's or
    rebuild's, :func:`pinned_versions`) storage has lost: the table not there, or made anew
    since (:mod:`audiopipe.store.anew`; one GET each).

    >>> import tempfile
    >>> lost_data_tables(Location(tempfile.mkdtemp(), "d"), {})
    {}
    """
    from audiopipe.store.anew import outputs_made_anew

    gone = {t: v for t, v in base.items()
            if t in DATA_TABLES and v is not None and not table_exists(loc, t)}
    last = last_run(loc) if base else None
    for t in [] if last is None else outputs_made_anew(loc, last, skip=gone):
        v = base.get(t)
        if t in DATA_TABLES and v is not None:
            gone[t] = v
    return dict(sorted(gone.items()))


def summarize(row: RunRow | Mapping[str, Any]) -> str:
    """One line for the terminal about a published run (a :class:`RunRow` or its dict)."""
    r = row.to_dict() if isinstance(row, RunRow) else row
    if r.get("kind") == "stage":
        return (
            f"{r['dataset']}: stage {r['stage']} {r['run_id']} ({r['status']}) — "
            f"{r['message']}; {r.get('wall_seconds') or 0:.1f} s"
        )
    hours = (r.get("audio_seconds") or 0.0) / 3600
    return (
        f"{r['dataset']}: {r['kind']} {r['run_id']} — {r['message']}; "
        f"processed {r['files_processed']} files ({hours:.2f} h of audio), "
        f"{r['files_failed']} failed; {r['clips_total']} clips in the dataset; "
        f"{r['wall_seconds']:.1f} s"
    )

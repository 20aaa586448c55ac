"""Reclaim storage: delete what no retained run can read any more.

Every ingestion, rebuild and stage run publishes new table versions and Zarr parts; the
old ones stay readable (``open_dataset(root, name, run_id=...)``, Delta time travel) until
they are vacuumed. :func:`vacuum` keeps

- every run that finished less than ``retain_hours`` ago, the latest ingest or rebuild and
  the latest run of each stage: the table versions an open pinned to one of them reads, and
  those a default :func:`~audiopipe.open_dataset` reads (each stage table as the newest
  successful run that recorded it left it, which may be an older run of its stage:
  :func:`~audiopipe.store.runs.read_versions`; a table of stage code older than the runner
  as its last commit before the first stage run), by Delta ``vacuum(keep_versions=...)``,
  and the Zarr parts their ``frames_index`` names;
- shards staged by an interrupted run that a run can still use (the next run reuses them)
  and their parts;

and deletes the rest: table files removed from the tables more than ``retain_hours`` ago,
frame parts no kept run refers to (parts of replaced or rebuilt clips, and parts
orphaned by killed attempts) whose last write is older than ``retain_hours`` and an hour
(:data:`~audiopipe.store.staged.MIN_AGE_S`: a worker orphaned by a killed run may still be
writing one, then stage its shard, which the next run would publish without frames), and staged
shards no run can use any more (their files were published by another run, changed or
removed since, told by listing the dataset's sources as an ingest does:
:mod:`audiopipe.store.staged`) whose last write is older than ``retain_hours`` and an hour;
a shard it cannot decide (a source not listed) is kept and counted. It holds the
dataset lock, so no ingestion runs meanwhile, and refuses while a stage runs (it may read, or
be about to commit, files a vacuum would delete; a stage does not start during a vacuum).
Older runs stay listed in ``runs``; opening one afterwards raises
:class:`~audiopipe.store.dataset.DatasetNotFound` saying it was vacuumed (the marker saying
which runs it kept is written before it deletes anything, so a vacuum that fails half-way
is said too). A table version a kept run reads that cannot be opened, or that is another
table than the run recorded (made anew since: :mod:`audiopipe.store.anew`), makes it refuse
before deleting anything (:class:`~audiopipe.store.errors.TableMissing` naming the table).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from audiopipe.store.errors import TableMissing
from audiopipe.uri import remove

from . import staged
from .anew import Recorded, made_anew, recorded, recording_runs
from .location import Location
from .lock import STAGES_WAIT_S, dataset_lock
from .records import RunRow
from .runs import DATA_TABLES, legacy_cutoff, read_runs, read_versions
from .tables import open_table, version_as_of

__all__ = ["VacuumReport", "vacuum", "VACUUM_MARKER", "vacuumed_before"]

#: JSON at the dataset's base recording the last vacuum: ``{"at", "retain_hours",
#: "cutoff", "kept_runs", "done"}``, written before it deletes anything (``done`` false) and
#: again when it has finished
VACUUM_MARKER = "_vacuum.json"


@dataclass
class VacuumReport:
    """What :func:`vacuum` removed (or, with ``dry_run``, would remove)."""

    dataset: str
    dry_run: bool
    retain_hours: float
    kept_runs: list[str] = field(default_factory=list)
    table_files: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    #: shards staged by killed runs that no run can use (:mod:`audiopipe.store.staged`)
    staged: list[str] = field(default_factory=list)
    #: staged shards kept because whether a run can use them could not be decided: why
    staged_undecided: dict[str, str] = field(default_factory=dict)
    bytes_freed: int = 0

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        files = sum(self.table_files.values())
        undecided = ""
        if self.staged_undecided:
            why = sorted(set(self.staged_undecided.values()))
            undecided = (
                f"; kept {len(self.staged_undecided)} staged shards it could not check "
                f"({why[0]}{'; ...' if len(why) > 1 else ''})"
            )
        return (
            f"{self.dataset}: {verb} {files} table files and {len(self.parts)} frame parts, "
            f"and {len(self.staged)} staged shards of killed runs that no run can use "
            f"({self.bytes_freed / 1e6:.1f} MB); kept {len(self.kept_runs)} runs "
            f"(finished in the last {self.retain_hours:g} h, and the latest){undecided}"
        )


def _kept_runs(runs: list[RunRow], cutoff: datetime) -> list[RunRow]:
    ok = [r for r in runs if r.status == "ok" and r.finished is not None]
    keep = {r.run_id: r for r in ok if r.finished >= cutoff}

    def group(r: RunRow) -> str:  # ingest and rebuild both publish the data tables
        if r.kind == "stage" and r.stage:
            return f"stage:{r.stage}"  # the latest run of each stage
        return "data" if r.kind in ("ingest", "rebuild") else r.kind

    for g in {group(r) for r in ok}:
        latest = max((r for r in ok if group(r) == g), key=lambda r: (r.finished, r.run_id))
        keep[latest.run_id] = latest
    return list(keep.values())


def _read_versions(
    loc: Location, rows: list[RunRow], kept: list[RunRow], names: list[str]
) -> dict[str, set[int]]:
    """``{table: versions}`` a default open or one pinned to a ``kept`` run reads: those the
    runs recorded (:func:`~audiopipe.store.runs.read_versions`), and of a table no run it sees
    recorded, the last commit before runs recorded stage outputs (pre-runner stage code)."""
    out: dict[str, set[int]] = {}
    legacy: dict[str, Any] = {}
    for r in [None, *kept]:
        reads = read_versions(rows, r)
        for name, v in reads.items():
            if v is not None:
                out.setdefault(name, set()).add(int(v))
        when = legacy_cutoff(rows, r)
        for name in set(names) - set(reads) - {*DATA_TABLES, "runs"}:
            if name not in legacy:
                legacy[name] = open_table(loc, name)
            v = None if legacy[name] is None else version_as_of(loc, name, legacy[name], when)
            if v is not None:
                out.setdefault(name, set()).add(v)
    return out


def _size(fs: Any, path: str) -> int:
    try:
        return int(sum(fs.du(path, total=False).values()))
    except Exception:  # noqa: BLE001 - sizes are for the report only
        return 0


def vacuum(
    loc: Location,
    retain_hours: float = 168.0,
    dry_run: bool = False,
    sources: Sequence[str] | None = None,
) -> VacuumReport:
    """Delete table files and Zarr parts that no run kept by ``retain_hours`` can read.

    Parameters
    ----------
    loc : Location
        The dataset.
    retain_hours : float
        Runs that finished within this many hours stay readable (plus, always, the latest
        ingest or rebuild and the latest run of each stage). 0 keeps only those; finite
        (``ValueError`` otherwise); longer ago than dates go keeps every run.
    dry_run : bool
        Report what would be removed, remove nothing.
    sources : sequence of str, optional
        The dataset's sources as its config resolves them (``Config.resolve``): a staged
        shard whose file changed or was removed since is told by listing them as an ingest
        does. Without them (or when one cannot be listed) such shards are kept, and counted
        in :attr:`VacuumReport.staged_undecided`.

    Returns
    -------
    VacuumReport

    Raises
    ------
    TableMissing
        Before deleting anything, when a table version a kept run reads cannot be opened (the
        table lost, or written anew since and its log shorter) or is another table than the
        run recorded (written anew since, its log as long), naming the table and the runs.

    Examples
    --------
    >>> import tempfile
    >>> loc = Location(tempfile.mkdtemp(), "empty")
    >>> r = vacuum(loc, retain_hours=24)
    >>> r.parts, r.table_files, r.bytes_freed
    ([], {}, 0)
    """
    if not retain_hours >= 0 or math.isinf(retain_hours):  # (nan is not >= 0)
        raise ValueError(f"retain_hours: must be a finite number >= 0, got {retain_hours}")
    report = VacuumReport(loc.dataset, dry_run, float(retain_hours))
    fs = loc.fs
    if not fs.exists(loc.base):
        return report
    with dataset_lock(loc, "vacuum", no_stages=True, stages_wait_s=STAGES_WAIT_S):
        now = datetime.now(UTC)
        try:
            cutoff = now - timedelta(hours=retain_hours)
        except OverflowError:  # further back than datetime goes: every run is kept
            cutoff = datetime.min.replace(tzinfo=UTC)
        rows = read_runs(loc)
        kept = _kept_runs(rows, cutoff)
        report.kept_runs = sorted(r.run_id for r in kept)
        tables = loc.join("tables")
        names = (
            [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(tables, detail=False)]
            if fs.exists(tables)
            else []
        )
        pinned = _read_versions(loc, rows, kept, names)
        _check_openable(loc, rows, kept, pinned)  # (before anything is deleted)
        if not dry_run:  # first: a step failing below leaves what it deleted said
            _write_marker(loc, now, retain_hours, cutoff, report.kept_runs, done=False)

        # Zarr parts: those named by a kept run's frames_index, or by a staged shard
        keep_parts: set[str] = set()
        fi = open_table(loc, "frames_index")
        if fi is not None:
            for v in sorted(pinned.get("frames_index", set()) | {fi.version()}):
                fi.load_as_version(v)
                parts = fi.to_pyarrow_table(columns=["part"]).column("part")
                keep_parts.update(parts.to_pylist())
        old_enough = time.time() - retain_hours * 3600
        # shards staged by killed runs: those no run can use go (and then their parts)
        staged_keys = set(staged.staged_keys(loc))
        report.staged, report.staged_undecided = staged.unusable(
            loc, sorted(staged_keys), cutoff=old_enough, sources=sources
        )
        for key in report.staged:
            report.bytes_freed += _size(fs, loc.staging_uri(key))
            if not dry_run:
                remove(fs, loc.staging_uri(key), recursive=True)
        staged_keys -= set(report.staged)
        frames = loc.join("frames")
        if fs.exists(frames):
            for path in sorted(fs.ls(frames, detail=False)):
                part = path.rstrip("/").rsplit("/", 1)[-1]
                if part in keep_parts or part.rsplit("-", 1)[0] in staged_keys:
                    continue
                if staged.newest_write(fs, path) > min(old_enough, time.time() - staged.MIN_AGE_S):
                    continue  # written recently: maybe by a worker of a killed run, still going
                report.parts.append(part)
                report.bytes_freed += _size(fs, path)
                if not dry_run:
                    remove(fs, path, recursive=True)

        # Delta tables (all of them, stage outputs included; `runs` is append-only)
        for name in sorted(n for n in names if n != "runs"):
            dt = open_table(loc, name)
            if dt is None:
                continue
            kw = {
                "retention_hours": int(math.floor(retain_hours)),
                "enforce_retention_duration": False,
                "keep_versions": sorted(pinned.get(name, set())) or None,
            }
            doomed = dt.vacuum(dry_run=True, **kw)
            report.table_files[name] = len(doomed)
            report.bytes_freed += sum(_size(fs, f"{loc.table_uri(name)}/{f}") for f in doomed)
            if doomed and not dry_run:
                dt.vacuum(dry_run=False, **kw)

        if not dry_run:
            _write_marker(loc, now, retain_hours, cutoff, report.kept_runs, done=True)
    return report


def _check_openable(
    loc: Location, rows: list[RunRow], kept: list[RunRow], pinned: dict[str, set[int]]
) -> None:
    """Refuse (:class:`~audiopipe.store.errors.TableMissing`, naming the table) when a table
    version a kept run (or a default open) reads cannot be opened, or is another table than
    the one it recorded: the table was lost (and maybe written anew, its log shorter, or as
    long: told as an open tells it, :mod:`audiopipe.store.anew`). The vacuum decides what to
    delete from those records; with them and storage disagreeing it would delete frame parts
    and table files a restore needs (or fail on that table in delta-rs)."""
    from deltalake.exceptions import DeltaError

    # what each reader (a default open, an open pinned to a kept run) recorded of a version
    recs: dict[tuple[str, int], set[Recorded]] = {}
    for r in [None, *kept]:
        seen = recording_runs(rows, r)
        for name, v in read_versions(rows, r).items():
            rec = None if v is None else recorded(seen, name, v)
            if rec is not None:
                recs.setdefault((name, v), set()).add(rec)
    for name in sorted(pinned):
        dt = open_table(loc, name)
        end = None if dt is None else dt.version()
        bad: dict[int, str] = {}
        anew: set[int] = set()  # (of those: versions another table than recorded)
        for v in sorted(pinned[name]):
            if dt is None:
                bad[v] = "the table is not on storage"
            elif v > end:
                bad[v] = (f"its log on storage ends at version {end}: the table was lost and "
                          "written anew since")
            else:
                try:
                    dt.load_as_version(v)
                except DeltaError as err:
                    bad[v] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                    continue
                if any(made_anew(loc, name, v, rec, dt) for rec in recs.get((name, v), ())):
                    bad[v] = ("another table than the run recorded is at that version: the "
                              "table was lost and written anew since")
                    anew.add(v)
        if not bad:
            continue
        # the runs that read it (less those that recorded the table now there, of a version
        # bad only as made anew: they read it as they recorded it)
        now_id = None if dt is None else str(dt.metadata().id)
        by = sorted({r.run_id for r in rows if r.status == "ok" and r.tables().get(name) in bad
                     and not (r.tables()[name] in anew
                              and json.loads(r.table_ids or "{}").get(name) == now_id)})
        fix = (f"`audiopipe rebuild {loc.dataset}`" if name in DATA_TABLES
               else "rerun the stage that wrote it")
        raise TableMissing(
            f"dataset {loc.dataset!r}: vacuum refused, nothing deleted: table {name!r} version "
            f"{', '.join(map(str, bad))}, read by run {', '.join(by[:3])}"
            f"{' ...' if len(by) > 3 else ''}, cannot be read as recorded "
            f"({next(iter(bad.values()))}; {loc.table_uri(name)}); restore the table from a "
            f"copy of the dataset, or {fix} and vacuum with a retain_hours that keeps none of "
            "those runs"
        )


def _write_marker(loc: Location, now: datetime, retain_hours: float, cutoff: datetime,
                  kept_runs: list[str], done: bool) -> None:
    marker = {
        "at": now.isoformat(),
        "retain_hours": retain_hours,
        "cutoff": cutoff.isoformat(),
        "kept_runs": kept_runs,
        "done": done,
    }
    with loc.fs.open(loc.join(VACUUM_MARKER), "w") as f:
        json.dump(marker, f)


def vacuumed_before(loc: Location, run: dict[str, Any]) -> str | None:
    """A message if ``run``'s data was vacuumed (not kept by the last vacuum), else None."""
    fs = loc.fs
    path = loc.join(VACUUM_MARKER)
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        m = json.load(f)
    if run["run_id"] in m.get("kept_runs", []):
        return None
    if run["finished"] is not None and run["finished"] >= datetime.fromisoformat(m["cutoff"]):
        return None  # finished after that vacuum's cutoff: untouched by it
    if m.get("done", True) is False:  # (written before it deleted anything; older: no key)
        return (
            f"run {run['run_id']} of dataset {loc.dataset!r} was vacuumed on {m['at']} "
            f"(retain_hours={m['retain_hours']}) by a vacuum that did not finish; its table "
            "versions and frames may be partly gone (run the vacuum again to finish it)"
        )
    return (
        f"run {run['run_id']} of dataset {loc.dataset!r} was vacuumed on {m['at']} "
        f"(retain_hours={m['retain_hours']}); its table versions and frames are gone"
    )

"""Plan a run: discover files, diff them against the store, group the work into shards.

Examples
--------
>>> from audiopipe.catalog import FileEntry
>>> files = [FileEntry(f"/c/{i}.wav", 100, 1.0) for i in range(5)]
>>> [len(s.files) for s in plan_shards(files, max_files=2, max_bytes=10**9, salt="s")]
[2, 1, 2]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from audiopipe import features as F
from audiopipe.catalog import Diff, FileEntry, LabelsError, diff, discover, load_labels
from audiopipe.config import Config, DatasetConfig, config_hash
from audiopipe.config_files import check_files
from audiopipe.fanout import balanced_runs
from audiopipe.ingest.outputs import datasets_outputs, outputs_excluded
from audiopipe.ingest.shard import DECODER_HOOK_ENV, IngestContext, Shard
from audiopipe.store.dataset import TableMissing
from audiopipe.store.location import Location
from audiopipe.store.records import ClipRow, label_column_name
from audiopipe.store.runs import (
    last_run,
    lost_data_tables,
    new_run_id,
    pinned_versions,
    recover,
)
from audiopipe.store.tables import open_table, read_table, table_version

__all__ = [
    "EmptySourceError",
    "IngestPlan",
    "RecipeChangedError",
    "RemovalRefusedError",
    "plan_ingest",
    "plan_shards",
    "settings_hash",
    "spare_core",
    "stored_clips",
]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecipeChangedError(RuntimeError):
    """Ingest refused: the recipe differs from the stored features' recipe."""


class RemovalRefusedError(RuntimeError):
    """Ingest refused: the run would remove more than ``max_removed_share`` of the dataset
    (an empty or unmounted source folder, a glob that stopped matching, files emptied in place
    that now fail: those are known when the run publishes)."""


class EmptySourceError(FileNotFoundError):
    """A dataset with no clip yet whose sources match no audio file."""


@dataclass
class IngestPlan:
    """The work of one run, decided before any of it starts."""

    kind: str
    context: IngestContext
    diff: Diff
    shards: list[Shard]
    stored_clips: dict[str, tuple[int, float, str]]
    base_versions: dict[str, int | None]
    config_hash: str
    started: dt.datetime = field(default_factory=_now)
    #: what a person should know about the run's inputs (a source that matched nothing, label
    #: rows matching no file, files without a label row...): added to the run's message
    notes: list[str] = field(default_factory=list)
    #: the share of the stored clips a run may remove (files gone, and changed or rebuilt
    #: files that now fail, known at publish time), and whether this run may remove more
    max_removed_share: float = 1.0
    allow_removals: bool = False

    @property
    def n_files(self) -> int:
        return sum(len(s.files) for s in self.shards)

    @property
    def changes_data(self) -> bool:
        """Whether publishing it commits to the data tables (files to extract, clips to drop
        or relabel); False: it records only its ``runs`` row."""
        return bool(self.shards or self.diff.removed or self.diff.relabeled)


def plan_shards(
    files: list[FileEntry], max_files: int, max_bytes: int, salt: str, min_shards: int = 1
) -> list[Shard]:
    """Group files (sorted by uri) into balanced shards of at most ``max_files`` / ``max_bytes``.

    The number of shards is the least that respects the caps, and at least ``min_shards``
    (when there are that many files); the files are then cut into that many runs of
    consecutive uris with as equal bytes as whole files allow (a file goes to the shard its
    middle byte falls in), so no shard is a small leftover: 15 equal files for 2 workers
    (``min_shards`` 4) become shards of 4, 4, 4 and 3 files, not 3, 3, 3, 3 and 3, and the
    two workers finish together. A corpus of 10,000 short files on the defaults becomes ~20
    shards of ~500 files, not 157 tasks each dominated by Prefect's per-task cost.

    The shard key hashes the files' identity (uri, size, mtime) with ``salt``
    (recipe and decode settings), so the same work gets the same key: a re-run
    finds a shard staged by a killed run and reuses it.
    """
    files = sorted(files, key=lambda e: e.uri)
    if not files:
        return []
    weights = [f.size + 1 for f in files]  # +1: empty files count too
    total = sum(weights)
    k = max(min(min_shards, len(files)), -(-total // max(1, max_bytes)), -(-len(files) // max_files))
    groups = balanced_runs(files, weights, k)
    while len(groups) < min(min_shards, len(files)):  # a big file left a run empty: split one
        i = max((j for j, g in enumerate(groups) if len(g) > 1), key=lambda j: _bytes(groups[j]))
        groups[i : i + 1] = balanced_runs(groups[i], [f.size + 1 for f in groups[i]], 2)
    groups = [part for g in groups for part in _capped(g, max_files, max_bytes)]
    return [Shard(key=_shard_key(g, salt), files=tuple(g)) for g in groups]


def _bytes(files: list[FileEntry]) -> int:
    return sum(f.size for f in files)


def _capped(files: list[FileEntry], max_files: int, max_bytes: int) -> list[list[FileEntry]]:
    """A run split where it would exceed the configured caps (a bigger file stays alone)."""
    out: list[list[FileEntry]] = [[]]
    for f in files:
        cur = out[-1]
        if cur and (len(cur) >= max_files or _bytes(cur) + f.size > max_bytes):
            out.append(cur := [])
        cur.append(f)
    return out


def _shard_key(files: list[FileEntry], salt: str) -> str:
    h = hashlib.blake2b(salt.encode(), digest_size=10)
    for f in files:
        h.update(f"{f.uri}\0{f.size}\0{f.mtime!r}\n".encode())
    return h.hexdigest()


def stored_clips(loc: Location, version: int | None = None) -> dict[str, tuple[int, float, str]]:
    """``{uri: (bytes, mtime, clip_id)}`` of the stored ``clips`` (at ``version``)."""
    t = read_table(loc, "clips", version=version, columns=["uri", "bytes", "mtime", "clip_id"])
    if t is None:
        return {}
    d = t.to_pydict()
    return {
        u: (int(b), float(m), c)
        for u, b, m, c in zip(d["uri"], d["bytes"], d["mtime"], d["clip_id"], strict=True)
    }


def spare_core(n_workers: int = 1, threads_per_worker: int = 1) -> bool:
    """Whether this machine has a second core for each of ``n_workers`` x ``threads``."""
    return (os.cpu_count() or 1) >= 2 * n_workers * threads_per_worker


def _check_recipe_unchanged(loc: Location, name: str, recipe_hash: str) -> None:
    prev = last_run(loc)
    if prev is not None and prev.recipe_hash not in (None, recipe_hash):
        raise RecipeChangedError(
            f"dataset {name!r}: the feature recipe changed since the last run "
            f"({prev.recipe_hash} -> {recipe_hash}); run `audiopipe rebuild {name}` to "
            "recompute every clip with the new recipe"
        )


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _examples(uris: list[str], n: int = 3) -> str:
    names = [u.rsplit("/", 1)[-1] for u in sorted(uris)[:n]]
    return ", ".join(names) + (", ..." if len(uris) > n else "")


def _discover(
    cfg: Config, ds: DatasetConfig, notes: list[str]
) -> tuple[list[FileEntry], tuple[str, ...], str | None]:
    """The dataset's files with their labels, its label columns, and the note saying how
    many files were left out as datasets' outputs (None when none was).

    What a person should know about the listing and the labels join goes to ``notes`` (a
    source that matched nothing, files left out as outputs, label rows matching no file,
    files without a label row, duplicated rows); a labels file that matches no file at all
    raises :class:`LabelsError`.
    """
    seen: dict[str, FileEntry] = {}
    sources = [cfg.resolve(s) for s in ds.source]
    in_outputs, bases = datasets_outputs(cfg)
    n_outputs = 0
    for src in sources:  # one source at a time: say which one matched nothing
        listed = discover([src], storage_options=None)
        got = [f for f in listed if not in_outputs(f.uri)]
        n_outputs += len(listed) - len(got)
        if not got and len(sources) > 1:
            notes.append(f"source {src!r} matched no audio file")
        for f in got:
            seen.setdefault(f.uri, f)
    excluded = outputs_excluded(n_outputs, bases) if n_outputs else None
    if excluded:
        notes.append(excluded)
    found = [seen[k] for k in sorted(seen)]
    if ds.labels is None or not found:
        return found, (), excluded
    path = cfg.resolve(ds.labels.path)
    labels = load_labels(path, ds.labels.on, cfg.resolve(ds.labels.root) if ds.labels.root else None)
    for f in found:
        f.labels = labels.rows.get(f.uri, {})
    unmatched = sorted(set(labels.rows) - set(seen))
    if len(unmatched) == len(labels.rows):
        example = f" (its first path is {unmatched[0]!r}" if unmatched else " ("
        raise LabelsError(
            f"labels file {path}: none of its {len(labels.rows)} rows matches a file of dataset "
            f"{ds.name!r}{example}, a file found is {found[0].uri!r}): check labels.on and "
            "labels.root (paths are relative to the labels file's folder by default)"
        )
    if unmatched:
        notes.append(
            f"{_plural(len(unmatched), 'label row matches', 'label rows match')} no file "
            f"({_examples(unmatched)})"
        )
    if labels.n_duplicated:
        notes.append(
            f"{_plural(labels.n_duplicated, 'duplicated label row')} (same values, kept once)"
        )
    missing = [f.uri for f in found if f.uri not in labels.rows]
    if missing:
        notes.append(
            f"{_plural(len(missing), 'file has', 'files have')} no label row "
            f"({_examples(missing)}; label columns left empty)"
        )
    columns = labels.columns
    ClipRow.schema(columns)  # two label columns stored under one name: refused before any work
    return found, columns, excluded


def _relabeled(
    loc: Location, version: int | None, unchanged: list[FileEntry], columns: tuple[str, ...]
) -> list[FileEntry]:
    """The unchanged files whose stored label values differ from their labels now (a label
    column no longer in the labels file counts as emptied)."""
    if not unchanged:
        return []
    dt_ = open_table(loc, "clips", version)
    fixed = set(ClipRow.fixed_schema().names)
    stored_cols = [n for n in dt_.schema().to_arrow().names if n not in fixed]
    key_of = {label_column_name(c): c for c in columns}  # stored name -> labels file's name
    if not stored_cols and not key_of:
        return []
    t = dt_.to_pyarrow_table(columns=["uri", *stored_cols]).to_pydict()
    row_of = {u: i for i, u in enumerate(t["uri"])}
    compare = [(t.get(c), key_of.get(c)) for c in sorted(set(stored_cols) | set(key_of))]
    out = []
    for f in unchanged:
        i = row_of.get(f.uri)
        for stored, key in compare:
            before = None if stored is None or i is None else stored[i]
            if before != (None if key is None else f.labels.get(key)):
                out.append(f)
                break
    return out


#: read failures that say nothing about the file: it was gone when read (a share unmounted
#: while the run read it) or the storage failed (``io_error``); always retried, as is a shard
#: lost with its worker (step ``shard``) unless a file of it crashed the decoder
_TRANSIENT_READS = {"missing", "io_error"}


def retried_failure(step: str, error_type: str) -> bool:
    """Whether a failure (its ``step``, ``error_type``) is retried by the next run."""
    if step == "shard":
        return error_type != "decoder_crashed"
    return step == "read" and error_type in _TRANSIENT_READS


def _failed_before(
    loc: Location, version: int | None, new: list[FileEntry], settings: str
) -> set[str]:
    """Uris of ``new`` files whose last failure was on these bytes (size, mtime) with these
    settings: retrying them would fail the same way and record the same error again. (A
    changed file that failed was removed from the dataset: it is new the next run.)"""
    if not new:
        return set()
    dt_ = open_table(loc, "errors", version)
    if dt_ is None:
        return set()
    cols = ["uri", "step", "error_type", "bytes", "mtime", "settings_hash", "time"]
    if not set(cols) <= set(dt_.schema().to_arrow().names):  # errors of an older version
        return set()
    t = dt_.to_pyarrow_table(columns=cols)
    t = t.filter(pc.is_in(t["uri"], value_set=pa.array(sorted({f.uri for f in new}))))
    ingest_rows = pc.and_(pc.is_valid(t["settings_hash"]), pc.is_valid(t["time"]))  # no stages'
    t = t.filter(ingest_rows).sort_by("time").drop_columns(["time"]).to_pydict()
    last: dict[str, int] = {u: i for i, u in enumerate(t["uri"])}  # uri -> its latest failure
    out = set()
    for f in new:
        i = last.get(f.uri)
        if i is None or t["settings_hash"][i] != settings or t["bytes"][i] != f.size:
            continue
        if retried_failure(t["step"][i], t["error_type"][i]):
            continue
        mtime = t["mtime"][i]
        if mtime is not None and abs(mtime - f.mtime) < 1e-6:
            out.add(f.uri)
    return out


def settings_hash(ds: DatasetConfig, recipe_hash: str) -> str:
    """Hash of what decides whether a file ingests: decode settings (``block_seconds``
    included: a block too big for memory fails every file), limits, feature recipe and code
    (a failure recorded under other settings is retried)."""
    payload = [
        config_hash(ds), recipe_hash, F.FEATURES_VERSION, ds.limits.model_dump(), ds.block_seconds,
    ]  # fmt: skip
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()


def _check_removals(ds: DatasetConfig, kind: str, d: Diff, n_stored: int, allow: bool) -> None:
    """Refuse a run that would remove more than ``max_removed_share`` of the clips."""
    n = len(d.removed)
    if allow or not n_stored or n <= ds.max_removed_share * n_stored:
        return
    raise RemovalRefusedError(
        f"dataset {ds.name!r}: this run would remove {n} of its {n_stored} clips "
        f"(more than max_removed_share={ds.max_removed_share:g}), because their files are no "
        f"longer found under {', '.join(ds.source)} (e.g. {_examples(d.removed)}). Is a share "
        "unmounted or a glob wrong? Nothing was done. If the files really are gone, run "
        f"`audiopipe {kind} {ds.name} --allow-removals` once, or raise "
        f"datasets.{ds.name}.max_removed_share"
    )


def _check_tables_present(name: str, loc: Location, gone: dict[str, int]) -> None:
    """Refuse an ingest over data tables the last run recorded but storage has lost (``gone``,
    maybe written anew since by a killed run): it would take every file for new (or forget
    every failure) and publish over the hole."""
    if gone:
        lost = ", ".join(f"{t!r} version {v}" for t, v in sorted(gone.items()))
        raise TableMissing(
            f"dataset {name!r} is broken: {lost}, recorded by its last run, missing on storage (or "
            f"written anew since) "
            f"({loc.table_uri(next(iter(sorted(gone))))}); nothing was ingested: restore the "
            f"tables from a copy of the dataset, or run `audiopipe rebuild {name}` to recompute them"
        )


def plan_ingest(
    cfg: Config,
    dataset: str | None = None,
    *,
    kind: str = "ingest",
    run_id: str | None = None,
    n_workers: int = 1,
    read_ahead: bool | None = None,
    allow_removals: bool = False,
    retry_failed: bool = False,
    recover_first: bool = True,
) -> IngestPlan:
    """Discover files, diff them against the store and plan shards.

    ``n_workers`` (the cluster's size) sets the default ``shard.min_shards``: two per
    worker, so every worker has work and a slow shard does not leave the others idle.

    ``read_ahead``: workers extract the files of a shard in two threads, whole files each
    (:mod:`audiopipe.ingest.pool`); worth it when each worker has a core to spare. ``None``
    decides for workers on this machine: on when it has at least two cores per worker (in
    process: two cores). Flows on a cluster pass what the cluster has.

    Refused before any work: a dataset whose last run's data tables are not all on
    storage (:class:`~audiopipe.store.TableMissing`: a rebuild recomputes them); a dataset
    with no clip whose sources match no file (:class:`EmptySourceError`); a run that would
    remove more than the dataset's ``max_removed_share`` of its clips because their files
    are gone (:class:`RemovalRefusedError`; ``allow_removals`` lets it through); a local
    labels file that is not there (``FileNotFoundError`` naming ``datasets.X.labels.path``),
    or one matching no file or listing a path twice with different values
    (:class:`~audiopipe.catalog.LabelsError`). A stored file that is processed again
    (changed, or any in a rebuild) and now fails is removed too: :func:`publish` counts
    those with the files gone and refuses the same way, publishing nothing.

    A file that failed before and has not changed (same size and mtime, same settings) is not
    retried (``retry_failed`` retries it). An unchanged file whose labels changed has its
    ``clips`` row rewritten, nothing recomputed (:attr:`Diff.relabeled`).

    ``kind="rebuild"`` plans every file again (a new table version replaces
    the dataset's features; old versions stay readable until vacuumed); a data table lost
    (or written anew since) is started over from what storage has, every file recomputed.

    ``recover_first`` (default): undo a killed run's commits first
    (:func:`~audiopipe.store.runs.recover`); off, the plan only reads (while a stage runs:
    :mod:`audiopipe.ingest.turn`), and such a plan must publish no data.
    """
    ds: DatasetConfig = cfg.dataset(dataset)
    check_files(cfg, ds.name, labels=True)  # a local labels file not there: named by its key
    loc = Location(cfg.storage_root, ds.name)
    if recover_first:
        recover(loc)
    recipe = ds.recipe()
    rhash = F.recipe_hash(recipe)
    run_id = run_id or new_run_id()
    base = pinned_versions(loc)
    lost = lost_data_tables(loc, base)
    if kind == "ingest":
        _check_tables_present(ds.name, loc, lost)
    # a rebuild starts a lost table over from what storage has (its recorded version is gone)
    base.update({t: table_version(loc, t) for t in lost})
    stored = stored_clips(loc, base.get("clips"))
    leftover = set(stored) if "clips" in lost else set()  # rows no successful run published
    stored = {} if "clips" in lost else stored
    if kind == "ingest" and stored:
        _check_recipe_unchanged(loc, ds.name, rhash)

    notes: list[str] = []
    found, label_columns, excluded = _discover(cfg, ds, notes)
    if not found and not stored:
        where = ", ".join(ds.source)
        raise EmptySourceError(
            f"dataset {ds.name!r}: its sources ({where}) hold no audio file to ingest: "
            f"{excluded}; is a source inside a dataset's output folder (storage/<dataset>/)?"
            if excluded
            else f"dataset {ds.name!r}: its sources matched no audio file ({where}): check that "
            "the folder is there (a share mounted) and the glob right"
        )
    settings = settings_hash(ds, rhash)
    if kind == "rebuild":
        present = {f.uri for f in found}
        gone = sorted((set(stored) | leftover) - present)
        d = Diff(new=[], changed=list(found), removed=gone, unchanged=[])
    else:
        d = diff(found, stored)
        if not retry_failed:
            skip = _failed_before(loc, base.get("errors"), d.new, settings)
            d.failed_before = [f for f in d.new if f.uri in skip]
            d.new = [f for f in d.new if f.uri not in skip]
        if stored:
            d.relabeled = _relabeled(loc, base.get("clips"), d.unchanged, label_columns)
        d = d.capped(ds.max_files_per_run)
    _check_removals(ds, kind, d, len(stored), allow_removals)
    ctx = IngestContext(
        root=cfg.storage_root,
        dataset=ds.name,
        storage_options=loc.storage_options,
        run_id=run_id,
        sample_rate=ds.sample_rate,
        channels=ds.channels,
        block_seconds=ds.block_seconds,
        recipe=recipe,
        recipe_hash=rhash,
        limits=ds.limits.model_dump(),
        label_columns=label_columns,
        decoder_hook=os.environ.get(DECODER_HOOK_ENV) or None,
        read_ahead=spare_core(n_workers) if read_ahead is None else read_ahead,
        settings_hash=settings,
    )
    # a rebuild's shards are new work even for unchanged files: its run id salts the keys
    salt_extra = run_id if kind == "rebuild" else ""
    salt = json.dumps([config_hash(ds), rhash, F.FEATURES_VERSION, salt_extra], sort_keys=True)
    shards = plan_shards(
        d.to_process,
        ds.shard.max_files,
        ds.shard.max_mb * 1024 * 1024,
        salt,
        ds.shard.min_shards or 2 * max(1, n_workers),
    )
    return IngestPlan(
        kind=kind,
        context=ctx,
        diff=d,
        shards=shards,
        stored_clips=stored,
        base_versions=base,
        config_hash=config_hash(ds),
        notes=notes,
        max_removed_share=ds.max_removed_share,
        allow_removals=allow_removals,
    )

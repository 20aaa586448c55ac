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
from collections.abc import Mapping
from dataclasses import dataclass, field

from audiopipe import features as F
from audiopipe.catalog import Diff, FileEntry, diff, discover, read_labels
from audiopipe.config import Config, DatasetConfig, config_hash
from audiopipe.fanout import balanced_runs
from audiopipe.ingest.shard import DECODER_HOOK_ENV, IngestContext, Shard
from audiopipe.store.location import Location
from audiopipe.store.records import ClipRow
from audiopipe.store.runs import last_run, new_run_id, pinned_versions, recover
from audiopipe.store.tables import read_table

__all__ = ["IngestPlan", "RecipeChangedError", "plan_ingest", "plan_shards", "spare_core", "stored_clips"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecipeChangedError(RuntimeError):
    """Ingest refused: the recipe differs from the stored features' recipe."""


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

    @property
    def n_files(self) -> int:
        return sum(len(s.files) for s in self.shards)


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


def _label_columns(labels: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """The label columns of a dataset, in the order they first appear."""
    cols: dict[str, None] = {}
    for row in labels.values():
        cols.update(dict.fromkeys(row))
    return tuple(cols)


def _check_recipe_unchanged(loc: Location, name: str, recipe_hash: str) -> None:
    prev = last_run(loc)
    if prev is not None and prev.recipe_hash not in (None, recipe_hash):
        raise RecipeChangedError(
            f"dataset {name!r}: the feature recipe changed since the last run "
            f"({prev.recipe_hash} -> {recipe_hash}); run `audiopipe rebuild {name}` to "
            "recompute every clip with the new recipe"
        )


def _discover(cfg: Config, ds: DatasetConfig) -> tuple[list[FileEntry], tuple[str, ...]]:
    """The dataset's files with their labels, and its label columns."""
    found = discover([cfg.resolve(s) for s in ds.source], storage_options=None)
    if ds.labels is None:
        return found, ()
    labels = read_labels(
        cfg.resolve(ds.labels.path),
        ds.labels.on,
        cfg.resolve(ds.labels.root) if ds.labels.root else None,
    )
    for f in found:
        f.labels = labels.get(f.uri, {})
    columns = _label_columns(labels)
    ClipRow.schema(columns)  # two label columns stored under one name: refused before any work
    return found, columns


def plan_ingest(
    cfg: Config,
    dataset: str | None = None,
    *,
    kind: str = "ingest",
    run_id: str | None = None,
    n_workers: int = 1,
    read_ahead: bool | None = None,
) -> IngestPlan:
    """Discover files, diff them against the store and plan shards.

    ``n_workers`` (the cluster's size) sets the default ``shard.min_shards``: two per
    worker, so every worker has work and a slow shard does not leave the others idle.

    ``read_ahead``: workers decode in a second thread, ahead of the feature extraction
    (:func:`audiopipe.ingest.reader.read_ahead`); worth it when each worker has a core to
    spare. ``None`` decides for workers on this machine: on when it has at least two cores per
    worker (in process: two cores). Flows on a cluster pass what the cluster has.

    ``kind="rebuild"`` plans every file again (a new table version replaces
    the dataset's features; old versions stay readable until vacuumed).
    """
    ds: DatasetConfig = cfg.dataset(dataset)
    loc = Location(cfg.storage_root, ds.name)
    recover(loc)
    recipe = ds.recipe()
    rhash = F.recipe_hash(recipe)
    run_id = run_id or new_run_id()
    base = pinned_versions(loc)
    stored = stored_clips(loc, base.get("clips"))
    if kind == "ingest" and stored:
        _check_recipe_unchanged(loc, ds.name, rhash)

    found, label_columns = _discover(cfg, ds)
    if kind == "rebuild":
        present = {f.uri for f in found}
        d = Diff(new=[], changed=list(found), removed=sorted(set(stored) - present), unchanged=[])
    else:
        d = diff(found, stored).capped(ds.max_files_per_run)
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
    )

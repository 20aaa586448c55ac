"""The ingestion steps as plain functions: plan, extract a shard, publish.

``flows/`` composes these into Prefect flows; they run just as well from a
notebook or a plain Dask client:

>>> from audiopipe.config import load_config
>>> from audiopipe import pipeline
>>> cfg = load_config("datasets.yaml")                      # doctest: +SKIP
>>> plan = pipeline.plan_ingest(cfg, "demo")                # doctest: +SKIP
>>> results = [pipeline.extract_shard(s, plan.context) for s in plan.shards]  # doctest: +SKIP
>>> pipeline.publish(plan, results)                         # doctest: +SKIP

Consistency model
-----------------
Workers write immutable things only: a Zarr frames part per shard and staged
Parquet rows under ``_staging/<shard>/`` with a ``_SUCCESS`` marker written
last. :func:`publish` commits each table once (Delta replace-where: removals
and additions of a run in one commit), then appends the run to ``runs`` with
the version of every table. :func:`audiopipe.store.open_dataset` reads the
tables at the versions of the last successful run, so a run killed half-way
through publishing is invisible; :func:`audiopipe.store.runs.recover` restores the tables to those
versions before the next run. Staged shards whose ``_SUCCESS`` exists are not
recomputed, so a re-run after a crash only does the missing work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audiopipe import __version__
from audiopipe import features as F
from audiopipe.audio import AudioError, AudioInfo, check_header, stream
from audiopipe.audio import info as audio_info
from audiopipe.catalog import Diff, FileEntry, diff, discover, hash_file, read_labels
from audiopipe.config import Config, DatasetConfig, config_hash
from audiopipe.store.frames import FrameWriter
from audiopipe.store.location import Location
from audiopipe.store.runs import append_run, last_run, new_run_id, pinned_versions, recover
from audiopipe.store.tables import (
    CLIPS_SCHEMA,
    ERRORS_SCHEMA,
    FRAMES_INDEX_SCHEMA,
    append,
    open_table,
    read_table,
    replace_where,
)

__all__ = [
    "IngestContext",
    "Shard",
    "ShardResult",
    "IngestPlan",
    "plan_ingest",
    "plan_shards",
    "extract_shard",
    "publish",
    "record_failed_run",
]

STATS = ("mean", "std", "min", "max")
SUCCESS = "_SUCCESS"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class IngestContext:
    """Everything a worker needs to process a shard (small, picklable)."""

    root: str
    dataset: str
    storage_options: dict[str, str]
    run_id: str
    sample_rate: int
    channels: str | int
    block_seconds: float
    recipe: dict[str, Any]
    recipe_hash: str
    limits: dict[str, Any]
    label_columns: tuple[str, ...] = ()
    decoder_hook: str | None = None  # "module:function" called with each uri before decoding

    @property
    def location(self) -> Location:
        return Location(self.root, self.dataset, dict(self.storage_options))


@dataclass(frozen=True)
class Shard:
    """A unit of distributed work: a few tens of files; key = content of the work."""

    key: str
    files: tuple[FileEntry, ...]

    @property
    def n_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class ShardResult:
    """What a shard produced (counts only: the rows are staged on storage)."""

    key: str
    files_ok: int = 0
    files_failed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    reused: bool = False
    failed_uris: list[str] = field(default_factory=list)
    #: changed files whose bytes are those already ingested: ``[uri, size, mtime]``; their
    #: stored rows are kept (with the new size/mtime), nothing is decoded
    same_bytes: list[list[Any]] = field(default_factory=list)


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
    discover_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return sum(len(s.files) for s in self.shards)


def plan_shards(
    files: list[FileEntry], max_files: int, max_bytes: int, salt: str, min_shards: int = 1
) -> list[Shard]:
    """Group files (sorted by uri) into shards of at most ``max_files`` / ``max_bytes``.

    Within those caps the bytes are balanced so that there are at least ``min_shards``
    shards (when there are that many files): a corpus of 10,000 short files on the
    defaults becomes ~20 shards of ~500 files, not 157 tasks each dominated by Prefect's
    per-task cost, and a 300-file corpus still keeps 16 workers busy.

    The shard key hashes the files' identity (uri, size, mtime) with ``salt``
    (recipe and decode settings), so the same work gets the same key: a re-run
    finds a shard staged by a killed run and reuses it.
    """
    shards: list[Shard] = []
    cur: list[FileEntry] = []
    cur_bytes = 0
    if files:
        total = sum(f.size for f in files)
        n_min = min(min_shards, len(files))
        max_bytes = max(1, min(max_bytes, -(-total // n_min)))  # ceil: n_min shards by bytes
        max_files = min(max_files, -(-len(files) // n_min))  # ... and by count

    def close() -> None:
        nonlocal cur, cur_bytes
        if cur:
            h = hashlib.blake2b(salt.encode(), digest_size=10)
            for f in cur:
                h.update(f"{f.uri}\0{f.size}\0{f.mtime!r}\n".encode())
            shards.append(Shard(key=h.hexdigest(), files=tuple(cur)))
        cur, cur_bytes = [], 0

    for f in sorted(files, key=lambda e: e.uri):
        if cur and (len(cur) >= max_files or cur_bytes + f.size > max_bytes):
            close()
        cur.append(f)
        cur_bytes += f.size
    close()
    return shards


def _label_columns(labels: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    cols: list[str] = []
    for row in labels.values():
        for k in row:
            if k not in cols:
                cols.append(k)
    return tuple(cols)


def clips_schema(label_columns: Iterable[str]) -> pa.Schema:
    """The ``clips`` schema with a string column per label column of the dataset."""
    return pa.schema(
        list(CLIPS_SCHEMA) + [(label_column_name(c), pa.string()) for c in label_columns]
    )


def label_column_name(name: str) -> str:
    """Label columns keep their CSV name unless it collides with a fixed column."""
    return f"label_{name}" if name in CLIPS_SCHEMA.names else name


def stored_clips(loc: Location, version: int | None = None) -> dict[str, tuple[int, float, str]]:
    t = read_table(loc, "clips", version=version, columns=["uri", "bytes", "mtime", "clip_id"])
    if t is None:
        return {}
    d = t.to_pydict()
    return {
        u: (int(b), float(m), c)
        for u, b, m, c in zip(d["uri"], d["bytes"], d["mtime"], d["clip_id"], strict=True)
    }


def plan_ingest(
    cfg: Config,
    dataset: str | None = None,
    *,
    kind: str = "ingest",
    run_id: str | None = None,
    n_workers: int = 1,
) -> IngestPlan:
    """Discover files, diff them against the store and plan shards.

    ``n_workers`` (the cluster's size) sets the default ``shard.min_shards``: two per
    worker, so every worker has work and a slow shard does not leave the others idle.

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
        prev = last_run(loc)
        if prev is not None and prev.get("recipe_hash") not in (None, rhash):
            raise RecipeChangedError(
                f"dataset {ds.name!r}: the feature recipe changed since the last run "
                f"({prev['recipe_hash']} -> {rhash}); run `audiopipe rebuild {ds.name}` to recompute "
                "every clip with the new recipe"
            )

    sources = [cfg.resolve(s) for s in ds.source]
    found = discover(sources, storage_options=None)
    labels: dict[str, dict[str, str]] = {}
    if ds.labels is not None:
        labels = read_labels(
            cfg.resolve(ds.labels.path),
            ds.labels.on,
            cfg.resolve(ds.labels.root) if ds.labels.root else None,
        )
        for f in found:
            f.labels = labels.get(f.uri, {})
    if kind == "rebuild":
        d = Diff(
            new=[],
            changed=list(found),
            removed=sorted(set(stored) - {f.uri for f in found}),
            unchanged=[],
        )
        salt_extra = run_id
    else:
        d = diff(found, stored).capped(ds.max_files_per_run)
        salt_extra = ""
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
        label_columns=_label_columns(labels),
        decoder_hook=os.environ.get(DECODER_HOOK_ENV) or None,
    )
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


class RecipeChangedError(RuntimeError):
    """Ingest refused: the recipe differs from the stored features' recipe."""


# --------------------------------------------------------------------------- extract


class _Stats:
    """Running mean/std/min/max per feature dimension over frames (float64 sums)."""

    def __init__(self, dims: Mapping[str, int]) -> None:
        self.n = 0
        self.s = {k: np.zeros(d) for k, d in dims.items()}
        self.ss = {k: np.zeros(d) for k, d in dims.items()}
        self.lo = {k: np.full(d, np.inf) for k, d in dims.items()}
        self.hi = {k: np.full(d, -np.inf) for k, d in dims.items()}

    def add(self, block: Mapping[str, np.ndarray]) -> None:
        n = None
        for k in self.s:
            x = np.asarray(block[k], dtype=np.float64)
            if x.ndim == 1:
                x = x[None, :]
            if x.shape[1] == 0:
                continue
            n = x.shape[1]
            self.s[k] += x.sum(axis=1)
            self.ss[k] += np.square(x).sum(axis=1)
            self.lo[k] = np.minimum(self.lo[k], x.min(axis=1))
            self.hi[k] = np.maximum(self.hi[k], x.max(axis=1))
        self.n += n or 0

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = max(self.n, 1)
        for k in self.s:
            mean = self.s[k] / n
            var = np.maximum(self.ss[k] / n - mean**2, 0.0)
            vals = {"mean": mean, "std": np.sqrt(var), "min": self.lo[k], "max": self.hi[k]}
            for stat, v in vals.items():
                v = v.astype(np.float32)
                out[f"{k}_{stat}"] = float(v[0]) if v.shape[0] == 1 else v.tolist()
        return out


def features_schema(dims: Mapping[str, int], stats: Iterable[str] = STATS) -> pa.Schema:
    """Schema of the ``features`` table for a recipe: scalars as float32, vectors as lists."""
    fields = [
        ("clip_id", pa.string()),
        ("n_frames", pa.int64()),
        ("recipe_hash", pa.string()),
        ("run_id", pa.string()),
    ]
    for k, d in dims.items():
        for s in stats:
            fields.append((f"{k}_{s}", pa.float32() if d == 1 else pa.list_(pa.float32())))
    return pa.schema(fields)


def _split_for(uri: str, labels: Mapping[str, str]) -> str:
    for key in ("split", "fold"):
        if labels.get(key):
            return str(labels[key])
    h = int(hashlib.blake2b(uri.encode(), digest_size=4).hexdigest(), 16) % 100
    return "train" if h < 80 else ("valid" if h < 90 else "test")


class _Limits:
    def __init__(self, d: Mapping[str, Any]) -> None:
        self.__dict__.update(d)


def _error_row(
    ctx: IngestContext, uri: str, clip_id: str | None, step: str, err: BaseException
) -> dict:
    kind = getattr(err, "kind", None)
    return {
        "run_id": ctx.run_id,
        "uri": uri,
        "clip_id": clip_id,
        "step": step,
        "error_type": kind or type(err).__name__,
        "message": str(err) or type(err).__name__,
        "time": _now(),
    }


DecoderHook = Callable[[str], None]
DECODER_HOOK_ENV = "AUDIOPIPE_DECODER_HOOK"


def load_decoder_hook(spec: str | None) -> DecoderHook | None:
    """Import a decoder hook named ``"module:function"`` (None for no hook).

    The hook is called with each file's uri before it is decoded, in the worker
    process. It is how fault-injection tests (and users' own checks) reach the
    decoding step of a cluster run: set ``AUDIOPIPE_DECODER_HOOK`` where the flow
    plans the run (it travels in the :class:`IngestContext`), or on the workers.

    Examples
    --------
    >>> load_decoder_hook("os.path:basename")("/a/b.wav")
    'b.wav'
    """
    if not spec:
        return None
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{DECODER_HOOK_ENV} must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


def extract_shard(
    shard: Shard,
    ctx: IngestContext,
    *,
    progress: Callable[[int], None] | None = None,
    decoder_hook: DecoderHook | None = None,
) -> ShardResult:
    """Decode and extract every file of a shard; stage rows and a frames part.

    A file that fails becomes an ``errors`` row and the others are kept. The
    shard's output is staged under ``_staging/<key>/`` and marked complete by
    ``_SUCCESS``, written last; a staged shard is not recomputed.
    """
    t0 = time.perf_counter()
    if decoder_hook is None:
        decoder_hook = load_decoder_hook(ctx.decoder_hook or os.environ.get(DECODER_HOOK_ENV))
    loc = ctx.location
    fs = loc.fs
    stage_dir = loc.staging_uri(shard.key)
    marker = f"{stage_dir}/{SUCCESS}"
    if fs.exists(marker):
        with fs.open(marker, "r") as f:
            res = ShardResult(**json.load(f))
        res.reused = True
        return res

    ex = F.Extractor(ctx.recipe, ctx.sample_rate)
    limits = _Limits(ctx.limits)
    # one part per attempt: a retried shard, or a task orphaned by a killed flow that is still
    # running on an external cluster, never writes into a part another attempt is writing
    part = f"{shard.key}-{uuid.uuid4().hex[:8]}.zarr"
    writer = FrameWriter(
        loc.frames_uri(part),
        ex.dims,
        storage_options=loc.fsspec_options,
        attributes={"recipe": ctx.recipe, "recipe_hash": ctx.recipe_hash, "sr": ctx.sample_rate},
    )
    clips, feats, index, errors = [], [], [], []
    res = ShardResult(key=shard.key)
    hop = int(ctx.recipe.get("hop_length", 512))
    opts = loc.fsspec_options if shard.files and "://" in shard.files[0].uri else None
    import fsspec

    for entry in shard.files:
        clip_id = None
        try:
            if entry.size == 0:
                raise AudioError("file is empty (0 bytes)", "empty")
            if entry.size > limits.max_bytes:
                raise AudioError(
                    f"file has {entry.size} bytes, over limits.max_bytes={limits.max_bytes}",
                    "limits",
                )
            clip_id = hash_file(entry.uri, opts)
            if entry.prev_clip_id is not None and clip_id == entry.prev_clip_id:
                res.same_bytes.append([entry.uri, entry.size, entry.mtime])
                if progress is not None:
                    progress(1)
                continue
            if decoder_hook is not None:
                decoder_hook(entry.uri)
            with fsspec.open(entry.uri, "rb", **(opts or {})) as fh:
                hdr: AudioInfo = audio_info(fh)
            check_header(hdr, limits)
            stats = _Stats(ex.dims)
            n_out = 0

            def blocks(uri: str = entry.uri) -> Iterable[np.ndarray]:
                # a fresh pass over the file each call: recipes with whole-clip constants
                # (e.g. power_to_db top_db) read the audio twice, still in bounded memory
                nonlocal n_out
                n_out = 0
                with fsspec.open(uri, "rb", **(opts or {})) as fh:
                    for b in stream(
                        fh,
                        ctx.sample_rate,
                        channels=ctx.channels,
                        block_seconds=ctx.block_seconds,
                        limits=limits,
                    ):
                        n_out += b.shape[0]
                        yield b

            for part_out in ex.stream(blocks):
                writer.add(part_out)
                stats.add(part_out)
            native_frames = round(n_out * hdr.sample_rate / ctx.sample_rate)
            duration = n_out / ctx.sample_rate
            if duration < limits.min_duration_s:
                raise AudioError(
                    f"duration {duration:.3f} s is below limits.min_duration_s", "limits"
                )
            start, stop = writer.end_clip()
            if stop == start:
                raise AudioError("no feature frames could be computed (no audio samples)", "empty")
            row = {
                "clip_id": clip_id,
                "uri": entry.uri,
                "bytes": entry.size,
                "mtime": entry.mtime,
                "format": hdr.format,
                "subtype": hdr.subtype,
                "native_sr": hdr.sample_rate,
                "channels": hdr.channels,
                "frames": native_frames,
                "duration_s": duration,
                "sr": ctx.sample_rate,
                "split": _split_for(entry.uri, entry.labels),
                "run_id": ctx.run_id,
            }
            for col in ctx.label_columns:
                row[label_column_name(col)] = entry.labels.get(col)
            clips.append(row)
            feats.append(
                {
                    "clip_id": clip_id,
                    "n_frames": stop - start,
                    "recipe_hash": ctx.recipe_hash,
                    "run_id": ctx.run_id,
                    **stats.row(),
                }
            )
            index.append(
                {
                    "clip_id": clip_id,
                    "part": part,
                    "start": start,
                    "stop": stop,
                    "n_frames": stop - start,
                    "sr": ctx.sample_rate,
                    "hop_length": hop,
                    "recipe_hash": ctx.recipe_hash,
                    "run_id": ctx.run_id,
                }
            )
            res.files_ok += 1
            res.audio_seconds += duration
        except Exception as err:  # noqa: BLE001 - every failure of a file becomes a row
            writer.rollback_clip()
            step = "decode" if isinstance(err, AudioError) else "features"
            if isinstance(err, (OSError, ValueError)) and not isinstance(err, AudioError):
                err = AudioError(f"{type(err).__name__}: {err}", type(err).__name__)
            row = _error_row(ctx, entry.uri, clip_id, step, err)
            if step == "features":
                row["message"] += " | " + traceback.format_exc(limit=3).replace("\n", " ")[-400:]
            errors.append(row)
            res.files_failed += 1
            res.failed_uris.append(entry.uri)
        if progress is not None:
            progress(1)
    writer.close()

    tables = {
        "clips": pa.Table.from_pylist(clips, schema=clips_schema(ctx.label_columns)),
        "features": pa.Table.from_pylist(feats, schema=features_schema(ex.dims)),
        "frames_index": pa.Table.from_pylist(index, schema=FRAMES_INDEX_SCHEMA),
        "errors": pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA),
    }
    fs.makedirs(stage_dir, exist_ok=True)
    for name, t in tables.items():
        with fs.open(f"{stage_dir}/{name}.parquet", "wb") as f:
            pq.write_table(t, f)
    res.seconds = time.perf_counter() - t0
    with fs.open(marker, "w") as f:
        json.dump(asdict(res), f)
    return res


# --------------------------------------------------------------------------- publish


def _same_bytes_rows(plan: IngestPlan, results: list[ShardResult]) -> pa.Table | None:
    """Stored ``clips`` rows of changed files whose bytes did not change, with the new
    size, mtime and labels (None when there are none)."""
    same = {u: (size, mtime) for r in results for u, size, mtime in r.same_bytes}
    if not same:
        return None
    import pyarrow.compute as pc

    base = read_table(plan.context.location, "clips", version=plan.base_versions.get("clips"))
    rows = base.filter(pc.is_in(base["uri"], value_set=pa.array(sorted(same)))).to_pylist()
    entries = {f.uri: f for f in plan.diff.changed}
    for row in rows:
        row["bytes"], row["mtime"] = same[row["uri"]]
        for col in plan.context.label_columns:
            row[label_column_name(col)] = entries[row["uri"]].labels.get(col)
    schema = clips_schema(plan.context.label_columns)
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def _read_staged(loc: Location, keys: Iterable[str], name: str) -> pa.Table | None:
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


def _dedupe(t: pa.Table, key: str) -> pa.Table:
    seen: set[str] = set()
    keep = []
    for i, v in enumerate(t.column(key).to_pylist()):
        if v not in seen:
            seen.add(v)
            keep.append(i)
    return t.take(keep) if len(keep) != t.num_rows else t


def publish(plan: IngestPlan, results: list[ShardResult | BaseException]) -> dict[str, Any]:
    """Commit a run: one Delta commit per table, then the ``runs`` row.

    ``results`` holds one entry per shard of the plan, in order: a
    :class:`ShardResult`, or the exception that made the shard fail (its files
    are recorded in ``errors`` and will be retried by the next run).
    """
    ctx = plan.context
    loc = ctx.location
    t0 = time.perf_counter()
    ok_keys = [
        s.key for s, r in zip(plan.shards, results, strict=True) if isinstance(r, ShardResult)
    ]
    shard_errors = []
    for s, r in zip(plan.shards, results, strict=True):
        if isinstance(r, BaseException):
            for f in s.files:
                shard_errors.append(_error_row(ctx, f.uri, None, "shard", r))

    clips = _read_staged(loc, ok_keys, "clips")
    feats = _read_staged(loc, ok_keys, "features")
    index = _read_staged(loc, ok_keys, "frames_index")
    errs = _read_staged(loc, ok_keys, "errors")

    processed_uris = {f.uri for f in plan.diff.to_process}
    replaced_uris = processed_uris | set(plan.diff.removed)
    # clip ids that stop being referenced (changed or removed files), unless still used
    still_used = {f.clip_id for f in plan.diff.unchanged}
    old_ids = {plan.stored_clips[u][2] for u in replaced_uris if u in plan.stored_clips}
    new_ids = set(clips.column("clip_id").to_pylist()) if clips is not None else set()
    if plan.kind == "rebuild":
        still_used = set()
    same = _same_bytes_rows(plan, [r for r in results if isinstance(r, ShardResult)])
    if same is not None:  # touched or copied over: the stored rows stay, with the new mtime
        still_used |= set(same.column("clip_id").to_pylist())
        clips = (
            same if clips is None else pa.concat_tables([clips, same], promote_options="permissive")
        )
    drop_ids = (old_ids - still_used) | new_ids

    versions = dict(plan.base_versions)
    if clips is not None or replaced_uris:
        if clips is None:
            clips = pa.Table.from_pylist([], schema=CLIPS_SCHEMA)
        # failed changed files: their old rows go (the file is no longer what was ingested)
        versions["clips"] = replace_where(loc, "clips", clips, "uri", replaced_uris)
    if plan.kind == "rebuild":
        from deltalake import write_deltalake

        for name, t in (("features", feats), ("frames_index", index)):
            if t is not None:
                write_deltalake(
                    loc.table_uri(name),
                    _dedupe(t, "clip_id"),
                    mode="overwrite",
                    schema_mode="overwrite",
                    storage_options=loc.storage_options or None,
                )
                from audiopipe.store.tables import table_version

                versions[name] = table_version(loc, name)
    else:
        for name, t in (("features", feats), ("frames_index", index)):
            if t is None and not drop_ids:
                continue
            if t is None:
                t = pa.Table.from_pylist(
                    [], schema=FRAMES_INDEX_SCHEMA
                )  # emptied to the table's schema
            versions[name] = replace_where(loc, name, _dedupe(t, "clip_id"), "clip_id", drop_ids)
    all_errors = [errs] if errs is not None and errs.num_rows else []
    if shard_errors:
        all_errors.append(pa.Table.from_pylist(shard_errors, schema=ERRORS_SCHEMA))
    all_errors += (
        [pa.Table.from_pylist(plan.discover_errors, schema=ERRORS_SCHEMA)]
        if plan.discover_errors
        else []
    )
    if all_errors:
        versions["errors"] = append(loc, "errors", pa.concat_tables(all_errors))

    ok = [r for r in results if isinstance(r, ShardResult)]
    n_same = sum(len(r.same_bytes) for r in ok)
    files_failed = sum(r.files_failed for r in ok) + len(shard_errors)
    clips_total = (
        open_table(loc, "clips").to_pyarrow_table(columns=["uri"]).num_rows
        if versions.get("clips") is not None
        else 0
    )
    finished = _now()
    row = {
        "run_id": ctx.run_id,
        "dataset": ctx.dataset,
        "kind": plan.kind,
        "status": "ok",
        "config_hash": plan.config_hash,
        "recipe_hash": ctx.recipe_hash,
        "code_version": f"audiopipe {__version__} features {F.FEATURES_VERSION}",
        "started": plan.started,
        "finished": finished,
        "files_found": len(plan.diff.unchanged) + len(plan.diff.to_process),
        "files_new": len(plan.diff.new),
        "files_changed": len(plan.diff.changed),
        "files_removed": len(plan.diff.removed),
        "files_processed": sum(r.files_ok for r in ok) + n_same,
        "files_failed": files_failed,
        "clips_total": clips_total,
        "audio_seconds": float(sum(r.audio_seconds for r in ok)),
        "wall_seconds": (finished - plan.started).total_seconds(),
        "shards": len(plan.shards),
        "table_versions": json.dumps(versions, sort_keys=True),
        "message": plan.diff.summary()
        + (f"; {n_same} changed files had the same bytes (features kept)" if n_same else ""),
    }
    append_run(loc, row)
    _clean_staging(loc, ok_keys)
    row["publish_seconds"] = time.perf_counter() - t0
    return row


def record_failed_run(plan: IngestPlan, message: str) -> None:
    """Append a ``failed`` run row (tables untouched; nothing of the run is visible)."""
    ctx = plan.context
    row = {
        "run_id": ctx.run_id,
        "dataset": ctx.dataset,
        "kind": plan.kind,
        "status": "failed",
        "config_hash": plan.config_hash,
        "recipe_hash": ctx.recipe_hash,
        "code_version": f"audiopipe {__version__}",
        "started": plan.started,
        "finished": _now(),
        "table_versions": json.dumps(plan.base_versions, sort_keys=True),
        "message": message[:2000],
    }
    append_run(ctx.location, row)


def _clean_staging(loc: Location, keys: Iterable[str]) -> None:
    fs = loc.fs
    for k in keys:
        p = loc.staging_uri(k)
        try:
            if fs.exists(p):
                fs.rm(p, recursive=True)
        except OSError:
            pass


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")

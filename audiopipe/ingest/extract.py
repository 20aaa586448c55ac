"""Extract a shard: decode every file, compute its frame features, stage its rows.

For each file of a shard, :func:`extract_shard`

1. checks its size against the limits and hashes its bytes (the content hash; the clip id
   hashes it with the uri); a changed file whose id is its stored id (same bytes) keeps its
   stored rows (nothing is decoded);
2. reads the header and checks it against the limits;
3. streams the audio in blocks (decode, mono, resample: :func:`audiopipe.audio.stream`)
   through the feature extractor: frames go to the shard's Zarr part, running statistics to
   the clip's ``features`` row;
4. makes the clip's ``clips``, ``features`` and ``frames_index`` rows, or, when any step
   fails, its ``errors`` row (its frames are rolled back; the other files go on).

Steps 1-3's reading side is :mod:`audiopipe.ingest.reader`. With a spare core for the worker
(``IngestContext.read_ahead``), :data:`POOL_THREADS` threads each take whole files through
steps 1-3 and the statistics (:func:`audiopipe.ingest.pool.ordered_streams`), while this
thread writes their frames and rows in file order: the two cores share the work whatever
each stage costs. The shard's rows are then staged
with a ``_SUCCESS`` marker (:mod:`audiopipe.ingest.staging`) and the time spent per phase is
returned in :attr:`ShardResult.timings`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from audiopipe import features as F
from audiopipe.audio import AudioError
from audiopipe.ingest import staging
from audiopipe.ingest.pool import ordered_streams
from audiopipe.ingest.reader import (
    READ_KINDS,
    Failed,
    Opened,
    Same,
    ShardReader,
    is_local,
    os_error,
)
from audiopipe.ingest.shard import (
    DECODER_HOOK_ENV,
    DecoderHook,
    IngestContext,
    Shard,
    ShardResult,
    load_decoder_hook,
)
from audiopipe.store.frames import FrameWriter
from audiopipe.store.records import ClipRow, ErrorRow, FeaturesRow, FramesIndexRow

__all__ = ["extract_shard", "ClipStats", "PHASES", "split_for"]

#: the phases of :attr:`ShardResult.timings`, in pipeline order. ``wait`` is the writing
#: thread waiting for the pool; ``other`` is what no phase accounts for; ``total`` (added)
#: is the shard's wall time. With a pool, hash ... stats run in the pool's threads, at the
#: same time: the phases add up to more than ``total``.
PHASES = (
    "setup", "hash", "header", "decode", "mix", "resample", "wait", "features", "stats",
    "zarr", "staging", "other",
)  # fmt: skip
#: the phases of the extracting thread (with a pool: setup, wait, zarr, staging)
_MAIN_PHASES = ("setup", "wait", "features", "stats", "zarr", "staging")
#: threads extracting whole files when the worker has a spare core
POOL_THREADS = 2


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
    t0, started_at = time.perf_counter(), time.time()
    loc = ctx.location
    staged = staging.load_result(loc, shard.key)
    if staged is not None:
        return staged
    if decoder_hook is None:
        decoder_hook = load_decoder_hook(ctx.decoder_hook or os.environ.get(DECODER_HOOK_ENV))
    with _one_blas_thread():
        work = _ShardWork(shard, ctx, decoder_hook)
        events = work.reader.events(shard.files)
        pairs = (
            ordered_streams(events, work.in_pool, work.threads)
            if work.threads > 1
            else ((ev, None) for ev in events)
        )
        for ev, results in pairs:
            work.add(ev, results)
            if progress is not None:
                progress(1)
        tables = work.close()
    t1 = time.perf_counter()
    staging.write_tables(loc, shard.key, tables)
    work.timings["staging"] += time.perf_counter() - t1
    res = work.result
    res.worker, res.started_at = f"{socket.gethostname()}:{os.getpid()}", started_at
    res.seconds = time.perf_counter() - t0  # (the marker, written last, is not in the timings)
    both = (work.timings, work.reader.timings, *work.pool_timings())
    res.timings = {k: sum(t.get(k, 0.0) for t in both) for k in PHASES}
    # with a pool, this thread's phases (waiting for the pool included) make its time
    mine = work.timings if work.threads > 1 else res.timings
    res.timings["other"] = res.seconds - sum(mine.values())
    res.timings = {k: max(0.0, res.timings.get(k, 0.0)) for k in PHASES}
    res.timings["total"] = res.seconds
    staging.write_success(loc, shard.key, res)
    return res


_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"users": 0, "limiter": None}


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread while any shard is extracted in this process.

    A shard is one core's work (Dask workers run one task per thread, and their nanny sets
    ``OPENBLAS_NUM_THREADS=1``); in a plain process, the feature library's many small matrix
    products would otherwise start BLAS threads that fight over the cores (measured: 12x
    slower on a loaded 2-core machine). The limit is process-wide, so concurrent shards share
    it: the first sets it, the last restores what was there before.
    """
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                _blas_state["limiter"].restore_original_limits()
                _blas_state["limiter"] = None


class ClipStats:
    """Running mean/std/min/max per feature dimension over frames (float64 sums).

    Examples
    --------
    >>> s = ClipStats({"rms": 1})
    >>> s.add({"rms": np.array([[1.0, 3.0]])}); s.add({"rms": np.array([[2.0]])})
    >>> {k: round(v, 4) for k, v in s.row().items()}
    {'rms_mean': 2.0, 'rms_std': 0.8165, 'rms_min': 1.0, 'rms_max': 3.0}
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        self.n = 0
        self.s = {k: np.zeros(d) for k, d in dims.items()}
        self.ss = {k: np.zeros(d) for k, d in dims.items()}
        self.lo = {k: np.full(d, np.inf) for k, d in dims.items()}
        self.hi = {k: np.full(d, -np.inf) for k, d in dims.items()}

    def add(self, block: Mapping[str, np.ndarray]) -> None:
        """Add a block ``{feature: (n_dims, n_frames)}`` (1-D for one-dimensional features)."""
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

    def row(self) -> dict[str, float | list[float]]:
        """``{"<feature>_<stat>": value}`` as float32 values: the ``features`` row's statistics."""
        out: dict[str, float | list[float]] = {}
        n = max(self.n, 1)
        for k in self.s:
            mean = self.s[k] / n
            var = np.maximum(self.ss[k] / n - mean**2, 0.0)
            vals = {"mean": mean, "std": np.sqrt(var), "min": self.lo[k], "max": self.hi[k]}
            for stat in FeaturesRow.STATS:
                v = vals[stat].astype(np.float32)
                out[FeaturesRow.stat_column(k, stat)] = float(v[0]) if v.shape[0] == 1 else v.tolist()
        return out


def split_for(uri: str, labels: Mapping[str, str]) -> str:
    """The labels' ``split`` (or ``fold``), else 80/10/10 train/valid/test by a hash of the uri."""
    for key in ("split", "fold"):
        if labels.get(key):
            return str(labels[key])
    h = int(hashlib.blake2b(uri.encode(), digest_size=4).hexdigest(), 16) % 100
    return "train" if h < 80 else ("valid" if h < 90 else "test")


#: errno values of an ``OSError`` that mean "this file cannot be read" (not the storage
#: failing: a full disk writing frames stays a traceback under step ``features``)
_READ_ERRNOS = (errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENOENT, errno.EISDIR)


def _file_error(ctx: IngestContext, uri: str, clip_id: str | None, err: Exception) -> ErrorRow:
    """The ``errors`` row of a file that failed.

    An :class:`AudioError` is a problem of the file, with a message for people in one line:
    step ``read`` when it could not be read at all (:data:`READ_KINDS`: links, permissions,
    not a file; an ``OSError`` is classified the same way), else ``decode``. Anything else
    failed past decoding (step ``features``, a bug or a checker's refusal): the message names
    the error's type (for ``ValueError``) and ends with the last lines of its traceback.
    """
    if isinstance(err, OSError) and err.errno in _READ_ERRNOS:
        err = os_error(err)
    if isinstance(err, AudioError):
        step = "read" if err.kind in READ_KINDS else "decode"
        return ErrorRow.of(ctx.run_id, uri, clip_id, step, err)
    row = ErrorRow.of(ctx.run_id, uri, clip_id, "features", err)
    if isinstance(err, OSError | ValueError):
        row = ErrorRow.of(
            ctx.run_id, uri, clip_id, "features",
            AudioError(f"{type(err).__name__}: {err}", type(err).__name__),
        )  # fmt: skip
    trace = "".join(traceback.format_exception(err, limit=3)).replace("\n", " ")[-400:]
    return ErrorRow(**{**row.values(), "message": f"{row.message} | {trace}"})


class _Counted:
    """A clip's block source that counts the samples of its last pass and times the pulls
    (decoding, mixing, resampling)."""

    def __init__(self, source: Callable[[], Iterator[np.ndarray]]) -> None:
        self.source = source
        self.n_samples = 0
        self.seconds = 0.0

    def __call__(self) -> Iterator[np.ndarray]:
        self.n_samples = 0
        it = iter(self.source())
        while True:
            t0 = time.perf_counter()
            block = next(it, None)
            self.seconds += time.perf_counter() - t0
            if block is None:
                return
            self.n_samples += block.shape[0]
            yield block


class _ClipSummary:
    """What a clip's rows need once its frames are computed: its samples and its statistics
    (the ``features`` row's columns)."""

    def __init__(self, n_samples: int, stats: dict[str, float | list[float]]) -> None:
        self.n_samples = n_samples
        self.stats = stats


class _ShardWork:
    """One shard's extraction in progress: its frames part, its rows so far, its timings."""

    def __init__(self, shard: Shard, ctx: IngestContext, hook: DecoderHook | None) -> None:
        t0 = time.perf_counter()
        self.ctx = ctx
        self.timings: dict[str, float] = dict.fromkeys(_MAIN_PHASES, 0.0)
        loc = ctx.location
        remote = bool(shard.files) and not is_local(shard.files[0].uri)
        self.reader = ShardReader(
            ctx.sample_rate,
            ctx.channels,
            ctx.block_seconds,
            limits=ctx.limits,
            storage_options=loc.fsspec_options if remote else None,
            hook=hook,
        )
        self.min_duration_s = float(ctx.limits.get("min_duration_s", 0.0))
        self.extractor = F.Extractor(ctx.recipe, ctx.sample_rate)
        # one part per attempt: a retried shard, or a task orphaned by a killed flow that is
        # still running on an external cluster, never writes into a part another attempt writes
        self.part = f"{shard.key}-{uuid.uuid4().hex[:8]}.zarr"
        self.writer = FrameWriter(
            loc.frames_uri(self.part),
            self.extractor.dims,
            storage_options=loc.fsspec_options,
            attributes={"recipe": ctx.recipe, "recipe_hash": ctx.recipe_hash, "sr": ctx.sample_rate},
        )
        self.result = ShardResult(key=shard.key)
        self.clips: list[ClipRow] = []
        self.features: list[FeaturesRow] = []
        self.index: list[FramesIndexRow] = []
        self.errors: list[ErrorRow] = []
        #: threads extracting whole files (1: this thread does it all)
        self.threads = POOL_THREADS if ctx.read_ahead else 1
        self._local = threading.local()
        self._pool_lock = threading.Lock()
        self._pool_states: list[tuple[ShardReader, dict[str, float]]] = []
        self._tick("setup", t0)

    def _tick(self, phase: str, t0: float) -> float:
        now = time.perf_counter()
        self.timings[phase] += now - t0
        return now

    def in_pool(self, ev: Same | Failed | Opened) -> Iterator[Any]:
        """What a pool thread computes for a file: an opened clip's :meth:`_features`,
        decoded by the thread's own reader (its own timings); nothing for the others."""
        if not isinstance(ev, Opened):
            return iter(())
        mine = getattr(self._local, "state", None)
        if mine is None:
            r = self.reader
            reader = ShardReader(r.sample_rate, r.channels, r.block_seconds,
                                 storage_options=r.storage_options)  # fmt: skip
            reader.limits = r.limits
            mine = self._local.state = (reader, dict.fromkeys(PHASES, 0.0))
            with self._pool_lock:
                self._pool_states.append(mine)
        reader, timings = mine
        uri, data = ev.entry.uri, ev.data  # (a remote file's bytes, read once to hash them)
        ev = replace(ev, blocks=lambda: reader.blocks(uri, data))
        return self._features(ev, timings)

    def pool_timings(self) -> list[dict[str, float]]:
        """The pool threads' timings (their readers' and their own)."""
        with self._pool_lock:
            return [t for reader, timings in self._pool_states for t in (reader.timings, timings)]

    def add(self, ev: Same | Failed | Opened, results: Iterator[Any] | None = None) -> None:
        """One file: its rows, its stored rows kept, or its ``errors`` row (``results``: its
        :meth:`_features`, computed in a pool thread)."""
        entry = ev.entry
        if isinstance(ev, Same):
            self.result.same_bytes.append([entry.uri, entry.size, entry.mtime])
            return
        try:
            if isinstance(ev, Failed):
                raise ev.error
            self._add_clip(ev, results)
        except Exception as err:  # noqa: BLE001 - every failure of a file becomes a row
            self.writer.rollback_clip()
            row = _file_error(self.ctx, entry.uri, ev.clip_id, err)
            # what the file was, and the settings: unchanged, it is not retried (plan_ingest)
            self.errors.append(
                replace(row, bytes=entry.size, mtime=entry.mtime, settings_hash=self.ctx.settings_hash)
            )
            self.result.files_failed += 1

    def _features(self, ev: Opened, timings: dict[str, float]) -> Iterator[Any]:
        """The clip's feature blocks, then its :class:`_ClipSummary` (what the rows need).

        Runs in the extracting thread, or in a pool thread (``timings`` is that thread's).
        The extractor pulls blocks from the reader: its own time is the loop's time less the
        pulls (decoding, timed by the reader) and the statistics.
        """
        source = _Counted(ev.blocks)
        stats = ClipStats(self.extractor.dims)
        it = self.extractor.stream(source)
        while True:
            t0, pulled = time.perf_counter(), source.seconds
            block = next(it, None)
            t1 = time.perf_counter()
            timings["features"] += t1 - t0 - (source.seconds - pulled)
            if block is None:
                break
            stats.add(block)
            timings["stats"] += time.perf_counter() - t1
            yield block
        t0 = time.perf_counter()
        row = stats.row()
        timings["stats"] += time.perf_counter() - t0
        yield _ClipSummary(source.n_samples, row)

    def _add_clip(self, ev: Opened, results: Iterator[Any] | None = None) -> None:
        """Write the clip's frames into the part and make its three rows: from ``results``
        (its :meth:`_features`, computed in a pool thread), or computed here."""
        ctx, entry, hdr = self.ctx, ev.entry, ev.header
        summary: _ClipSummary | None = None
        t_loop, zarr = time.perf_counter(), self.timings["zarr"]
        for item in results if results is not None else self._features(ev, self.timings):
            if isinstance(item, _ClipSummary):
                summary = item
                continue
            t0 = time.perf_counter()
            self.writer.add(item)
            self._tick("zarr", t0)
        if results is not None:  # this thread only waited for the pool, and wrote
            self.timings["wait"] += time.perf_counter() - t_loop - (self.timings["zarr"] - zarr)
        assert summary is not None
        source = summary
        duration = source.n_samples / ctx.sample_rate
        if duration < self.min_duration_s:
            raise AudioError(f"duration {duration:.3f} s is below limits.min_duration_s", "limits")
        start, stop = self.writer.end_clip()
        if stop == start:
            raise AudioError("no feature frames could be computed (no audio samples)", "empty")
        self.clips.append(
            ClipRow(
                clip_id=ev.clip_id,
                uri=entry.uri,
                bytes=entry.size,
                mtime=entry.mtime,
                format=hdr.format,
                subtype=hdr.subtype,
                native_sr=hdr.sample_rate,
                channels=hdr.channels,
                frames=round(source.n_samples * hdr.sample_rate / ctx.sample_rate),
                duration_s=duration,
                sr=ctx.sample_rate,
                split=split_for(entry.uri, entry.labels),
                run_id=ctx.run_id,
                content_hash=ev.content_hash,
                labels={c: entry.labels.get(c) for c in ctx.label_columns},
            )
        )
        self.features.append(
            FeaturesRow(ev.clip_id, stop - start, ctx.recipe_hash, ctx.run_id, stats=summary.stats)
        )
        self.index.append(
            FramesIndexRow(
                clip_id=ev.clip_id,
                part=self.part,
                start=start,
                stop=stop,
                n_frames=stop - start,
                sr=ctx.sample_rate,
                hop_length=int(ctx.recipe.get("hop_length", 512)),
                recipe_hash=ctx.recipe_hash,
                run_id=ctx.run_id,
            )
        )
        self.result.files_ok += 1
        self.result.audio_seconds += duration

    def close(self) -> dict[str, pa.Table]:
        """Finish the frames part; the shard's tables, ready to stage."""
        t0 = time.perf_counter()
        self.writer.close()
        t0 = self._tick("zarr", t0)
        tables = {
            "clips": ClipRow.table(self.clips, label_columns=self.ctx.label_columns),
            "features": FeaturesRow.table(self.features, dims=self.extractor.dims),
            "frames_index": FramesIndexRow.table(self.index),
            "errors": ErrorRow.table(self.errors),
        }
        self._tick("staging", t0)
        return tables

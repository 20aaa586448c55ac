"""Clip stages on a Dask cluster: shards of clips on worker processes, poison clips isolated.

The runner (:func:`audiopipe.stages.runner.run_stage`) takes a ``client``: a
``distributed.Client``, or a :class:`LazyClient` that starts a LocalCluster (or connects
to ``--scheduler``) only the first time a stage has enough new clips to be worth it. A
run with few clips (fewer than :attr:`ClipStage.min_cluster_clips`) stays in-process and
starts nothing.

Why plain Dask here and not a Prefect task per shard: a stage run is one runner call
(recorded in ``runs`` whether Prefect is there or not) and its shards are seconds of work
each, where a Prefect task run would cost ~0.2-0.4 s; the library never imports Prefect,
so the runner takes the client as an argument and composes
:func:`audiopipe.fanout.run_shards` (the fault handling ingest uses too).

On a worker, :func:`process_shard` reopens the dataset pinned to the same run (once per
process) and calls the stage's :meth:`~audiopipe.stages.base.ClipStage.process` on its
clips; what :meth:`~audiopipe.stages.base.ClipStage.fit` built travels with every
shard. A clip that raises becomes the stage's error row as in-process; a clip whose
processing kills the worker process is narrowed down by splitting its shard and becomes a
row of ``errors`` (``worker_crashed``), every other clip kept.

Examples
--------
>>> plan_clip_shards([f"c{i}" for i in range(10)], shard_size=4, n_workers=2)
[['c0', 'c1'], ['c2', 'c3', 'c4'], ['c5', 'c6'], ['c7', 'c8', 'c9']]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audiopipe.fanout import balanced_runs, run_shards

if TYPE_CHECKING:
    from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
    from audiopipe.store.dataset import Dataset

__all__ = [
    "ClipWork",
    "LazyClient",
    "plan_clip_shards",
    "process_clips",
    "process_shard",
    "process_on_cluster",
    "n_workers",
]


@dataclass(frozen=True)
class ClipWork:
    """What a worker needs to run a stage's ``process`` on a shard (small, picklable)."""

    root: str
    dataset: str
    storage_options: dict[str, str]
    pinned_run: str
    stage: str
    params: dict[str, Any]
    run_id: str
    decoder_hook: str | None = None


def plan_clip_shards(
    clip_ids: Sequence[str],
    shard_size: int,
    n_workers: int = 1,
    weights: Sequence[float] | None = None,
) -> list[list[str]]:
    """Clips cut into balanced shards: at least 2 per worker, about ``shard_size`` clips each.

    ``weights`` (e.g. durations) balance the work rather than the count.
    """
    ids = list(clip_ids)
    if not ids:
        return []
    k = max(-(-len(ids) // max(1, shard_size)), min(len(ids), 2 * n_workers))
    return balanced_runs(ids, list(weights) if weights is not None else [1.0] * len(ids), k)


#: shards in flight per worker thread while no worker has died: the next shard waits on the
#: worker, so it starts without a round trip to the runner (one per thread after a death)
PREFETCH = 2

#: Dask settings of a LocalCluster a :class:`LazyClient` starts: no statistical profiler
#: sampling each worker's stack every 10 ms, slower event-loop ticks and system monitors,
#: no work stealing (at most ``PREFETCH`` shards per thread are ever queued). Idle, they
#: cut the runner's Dask CPU from 0.045 to 0.024 s per second and each worker's from 0.042
#: to 0.009: CPU that two workers on two cores would otherwise take from the shards.
QUIET_CLUSTER: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.scheduler.work-stealing": False,
}

_OPEN: dict[tuple, Dataset] = {}
_OPEN_LOCK = threading.Lock()


def _dataset(work: ClipWork) -> Dataset:
    """The dataset pinned to the run's version with the run's decoder hook, opened once per
    worker process. The hook is part of the key and set before the object is shared: two
    runs with different hooks never get (or change) each other's."""
    from audiopipe.audio import load_decoder_hook
    from audiopipe.store.dataset import Dataset
    from audiopipe.store.location import Location

    key = (work.root, work.dataset, work.pinned_run, tuple(sorted(work.storage_options.items())),
           work.decoder_hook)
    with _OPEN_LOCK:
        ds = _OPEN.get(key)
        if ds is None:
            if len(_OPEN) >= 4:
                _OPEN.clear()
            ds = Dataset(Location(work.root, work.dataset, dict(work.storage_options)),
                         work.pinned_run)
            ds.decoder_hook = load_decoder_hook(work.decoder_hook)
            _OPEN[key] = ds
    return ds


def process_shard(
    work: ClipWork, clip_ids: Sequence[str], state: Any, draw_plots: bool = False
) -> ClipBatch:
    """Run on a worker: the stage's rows for ``clip_ids`` (files it wrote in ``written``).

    ``draw_plots`` (the run's first shard): the stage's plots are drawn here from the
    batch's ``plot`` data, in parallel with the other shards, rather than by the runner
    after every shard is done (``plots`` holds their uris).
    """
    from audiopipe.stages import stage_class
    from audiopipe.stages._outputs import draw, to_table
    from audiopipe.stages.base import StageContext

    ctx = StageContext(
        ds=_dataset(work), stage=work.stage, params=dict(work.params), run_id=work.run_id
    )
    stage = stage_class(work.stage)()
    batch = stage.process(ctx, list(clip_ids), state)
    if draw_plots and batch.plot is not None:
        batch.plots = draw(ctx, stage.plots(ctx, batch))
        batch.plot = None  # drawn: nothing more to send back
    batch.written = list(ctx.written)
    # rows go back as one Arrow table per output table: compact to send, and the runner
    # only concatenates (no per-row conversion in the one serial process)
    batch.rows = {
        name: [to_table(rows, stage.schemas[name])] for name, rows in batch.rows.items() if rows
    }
    return batch


def _crash_batch(ctx: StageContext, clip_ids: Sequence[str], err: BaseException) -> ClipBatch:
    """A shard that failed as a whole: one ``errors`` row per clip (nothing else written)."""
    from audiopipe.stages._common import error_row
    from audiopipe.stages.base import ClipBatch

    return ClipBatch(
        errors=[
            error_row(ctx.stage, c, ctx.ds.clip_uri(c) or "", err, ctx.run_id) for c in clip_ids
        ],
        failed=len(clip_ids),
    )


def process_on_cluster(
    client: Any,
    ctx: StageContext,
    stage: ClipStage,
    shards: list[list[str]],
    state: Any,
    log: Any = None,
) -> list[ClipBatch]:
    """Every shard through :func:`process_shard` on ``client``'s workers, in shard order.

    A shard that raises (not a clip: ``process`` turns those into rows) gives an ``errors``
    row per clip; a clip that kills its worker is isolated (:func:`audiopipe.fanout.run_shards`)
    and gets a ``worker_crashed`` row. :data:`PREFETCH` shards per worker thread are in
    flight until a worker dies, then one: a death is blamed on the shard it was running only
    (shards queued behind it are split and rerun, never counted against a clip).
    """
    from distributed import as_completed

    from audiopipe.audio import DECODER_HOOK_ENV

    ds = ctx.ds
    work = ClipWork(
        root=ds.location.root,
        dataset=ds.name,
        storage_options=dict(ds.location.storage_options or {}),
        pinned_run=ds.run["run_id"],
        stage=ctx.stage,
        params=dict(ctx.params),
        run_id=ctx.run_id,
        decoder_hook=os.environ.get(DECODER_HOOK_ENV) or None,
    )
    # work and state travel inside each task, not scattered once: scattered data dies with
    # the workers holding it, and when a poison clip kills every worker at once the shards
    # after it would fail on the lost data and be blamed for it
    todo = [tuple(s) for s in shards]
    first = todo[0] if todo else None
    out = run_shards(
        todo,
        lambda s: client.submit(process_shard, work, s, state, s is first, pure=False),
        lambda fs: as_completed(fs),
        split=lambda s: [s[: len(s) // 2], s[len(s) // 2 :]],
        size=len,
        max_in_flight=PREFETCH * _threads(client),
        safe_in_flight=_threads(client),
        log=log,
    )
    batches = []
    for s, r in out:
        if isinstance(r, BaseException):
            batches.append(_crash_batch(ctx, s, r))
        else:
            ctx.written.extend(r.written)
            batches.append(r)
    return batches


def process_clips(
    ctx: StageContext,
    stage: ClipStage,
    todo: list[str],
    state: Any,
    client: Any,
    log: Callable[[str], None] | None,
) -> tuple[list[ClipBatch], int]:
    """Rows of the ``todo`` clips, and the number of workers used (0: in this process).

    In shards on ``client``'s cluster when there are at least the stage's
    ``min_cluster_clips`` (a callable ``client`` such as :class:`LazyClient` is only
    called then), balanced by the clips' durations; else shard by shard in this process.
    """
    if client is None or len(todo) < stage.min_cluster_clips:
        shards = plan_clip_shards(todo, stage.shard_size)
        return [stage.process(ctx, s, state) for s in shards], 0
    c = client() if callable(client) and not hasattr(client, "submit") else client
    n = n_workers(c)
    shards = plan_clip_shards(todo, stage.shard_size, n, _durations(ctx, todo))
    warn = (lambda m: log(f"{stage.name}: {m}")) if log else None
    return process_on_cluster(c, ctx, stage, shards, state, log=warn), n


def _durations(ctx: StageContext, ids: list[str]) -> list[float]:
    """Seconds of audio of each clip (the cost of most clip stages), 1 when unknown."""
    t = ctx.ds.table("clips", ["clip_id", "duration_s"])
    if not t.num_rows or "duration_s" not in t.column_names:
        return [1.0] * len(ids)
    d = dict(zip(t.column("clip_id").to_pylist(), t.column("duration_s").to_pylist(), strict=True))
    return [float(d.get(c) or 0.0) + 0.1 for c in ids]


class LazyClient:
    """A Dask client made on first use: ``address``'s scheduler, or a LocalCluster.

    Use as a context manager; the cluster it started (if any) is closed on exit.
    ``n_workers``, ``threads_per_worker`` and ``memory_limit`` shape the LocalCluster
    (processes, as ingest's; ``cluster:`` of ``datasets.yaml``).

    Examples
    --------
    >>> with LazyClient() as lazy:
    ...     lazy.started
    False
    """

    def __init__(
        self,
        address: str | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        memory_limit: str = "4GiB",
        cluster_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.cluster_kwargs = {
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,
            "memory_limit": memory_limit,
            "processes": True,
            "dashboard_address": None,
            **(cluster_kwargs or {}),
        }
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._client is not None

    def __call__(self) -> Any:
        """The client (connecting or starting the cluster the first time)."""
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                if self.address:
                    self._client = Client(self.address, timeout=30)
                else:
                    import dask

                    with dask.config.set(QUIET_CLUSTER):
                        self._cluster = LocalCluster(**self.cluster_kwargs)
                        self._client = Client(self._cluster)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None

    def __enter__(self) -> LazyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _threads(client: Any) -> int:
    """Worker threads of the cluster: shards in flight at once (one per thread)."""
    return max(1, sum(client.nthreads().values()))


def n_workers(client: Any) -> int:
    """Workers connected to ``client``'s scheduler (at least 1)."""
    try:
        return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    except TypeError:  # older distributed: no n_workers argument
        return max(1, len(client.scheduler_info()["workers"]))

"""Prefect flow ``ingest``: discover → plan shards → extract shards on Dask → publish → record.

Only composition lives here; every step is a plain function of :mod:`audiopipe.ingest`.
Tasks are per shard (tens of files), never per file: a Prefect task run costs ~0.2 s.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import dask
from distributed import KilledWorker
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from tqdm import tqdm

from audiopipe.config import Config, load_config
from audiopipe.config_files import check_files
from audiopipe.fanout import LONE_ATTEMPTS, WorkerCrashed, run_shards
from audiopipe.ingest import (
    IngestContext,
    IngestPlan,
    Shard,
    ShardResult,
    extract_shard,
    publish,
    record_failed_run,
)
from audiopipe.ingest.turn import ingest_turn
from audiopipe.stages.cluster import QUIET_CLUSTER
from audiopipe.store.lock import STAGES_WAIT_S
from audiopipe.store.runs import summarize
from flows.interrupt import publishing
from flows.runtime import cluster_shape, task_runner

TRANSIENT = (KilledWorker, ConnectionError, TimeoutError, OSError)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what can succeed on a second try (lost worker, storage blip), not decode errors.

    Per-file decode errors never reach here: :func:`audiopipe.ingest.extract_shard`
    records them as rows. What raises out of a shard is infrastructure.
    """
    try:
        state.result()
    except Exception as err:  # noqa: BLE001
        return is_transient(err)
    return False


def is_transient(err: BaseException) -> bool:
    """A lost worker, a timeout, or a connection failure (builtin, botocore or aiohttp)."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:  # the cause chain: s3fs/zarr wrap the original
        seen.add(id(e))
        if isinstance(e, TRANSIENT):
            return True
        names = {c.__name__ for c in type(e).__mro__}
        if names & {"ConnectionError", "ClientConnectionError", "ServerDisconnectedError"}:
            return True
        if any(n.endswith(("TimeoutError", "ConnectionError")) for n in names):
            return True
        e = e.__cause__ or e.__context__
    return False


@task(
    name="extract-shard",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def extract_shard_task(shard: Shard, ctx: IngestContext) -> ShardResult:
    # Reuse across runs is keyed on content (the shard key + _SUCCESS marker), not Prefect's cache.
    return extract_shard(shard, ctx)


#: tries of a file alone in its shard before a worker death is blamed on the file
LONE_FILE_ATTEMPTS = LONE_ATTEMPTS


class DecoderCrashed(WorkerCrashed):
    """A file whose decoding kills the worker process, isolated alone in its shard."""

    kind = "decoder_crashed"


def _decoder_crashed(shard: Shard, n: int, err: BaseException) -> DecoderCrashed:
    return DecoderCrashed(
        f"decoding this file killed the worker process every time it was tried, {n} times "
        f"alone ({err}); it was isolated and skipped"
    )


def extract_shards(plan: IngestPlan, runner: Any, progress: bool = True) -> list[Any]:
    """Run every shard of the plan as a task on ``runner`` (Dask); failures are returned.

    The runner is driven directly inside the calling flow (not through a subflow) so the
    plan never travels as a flow parameter: each task gets one shard (tens of files) only.

    A shard whose worker process dies (``KilledWorker``) is split in halves until the file
    that kills every worker is alone; a lone file is tried :data:`LONE_FILE_ATTEMPTS`
    times, then becomes a :class:`DecoderCrashed` error, and every other file of the shard
    is kept (:func:`audiopipe.fanout.run_shards`, shared with the clip stages).
    ``plan.shards`` is updated to the shards actually run (halves replace their parent),
    aligned with the returned results.
    """
    logger = get_run_logger()
    n_shards = len(plan.shards)
    # a LocalCluster started here runs quiet (no 10 ms stack sampling in the workers, slower
    # ticks): CPU that two workers on two cores would otherwise take from the shards
    with dask.config.set(QUIET_CLUSTER), runner:
        bar = tqdm(
            total=plan.n_files,
            unit="file",
            desc=f"{plan.context.dataset} shards 0/{n_shards}",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        done = {"shards": 0, "hours": 0.0}

        def on_done(s: Shard, r: Any) -> None:
            if isinstance(r, BaseException):
                logger.error("shard %s failed: %r", s.key, r)
            if isinstance(r, ShardResult):
                done["hours"] += r.audio_seconds / 3600
            done["shards"] += 1
            bar.set_description(f"{plan.context.dataset} shards {done['shards']}/{n_shards}")
            bar.set_postfix_str(f"{done['hours']:.2f} h audio")
            bar.update(len(s.files))

        out = run_shards(
            plan.shards,
            lambda s: runner.submit(
                extract_shard_task, parameters={"shard": s, "ctx": plan.context}
            ),
            as_completed,
            split=Shard.halves,
            size=lambda s: len(s.files),
            crashed=_decoder_crashed,
            lone_attempts=LONE_FILE_ATTEMPTS,
            log=logger.warning,
            on_done=on_done,
        )
        bar.close()
    plan.shards = [s for s, _ in out]
    return [r for _, r in out]


def run_ingest(
    cfg: Config,
    dataset: str | None = None,
    *,
    kind: str = "ingest",
    scheduler: str | None = None,
    progress: bool = True,
    wait_s: float = 0.0,
    allow_removals: bool = False,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Body of the ingest/rebuild flows (callable inside any flow).

    Returns the ``runs`` row as a dict, plus where the time went: ``plan_seconds``,
    ``extract_seconds`` (shards on the cluster, wall time), ``publish_seconds``,
    ``worker_timings`` (seconds per phase summed over the shards), ``n_workers`` and
    ``read_ahead`` (whether workers used a spare core: two threads extracting files).

    No data published while a stage of the dataset runs (:mod:`audiopipe.ingest.turn`): a
    stage commits outputs computed from the clips, features and frames it opened, so an
    ingest published under it left a stage run that finished after the ingest (and looked as
    if it covered it) with outputs of the clips of before. The run waits up to ``wait_s`` for
    another ingest, rebuild or vacuum; a plan with data to publish waits up to
    :data:`~audiopipe.store.lock.STAGES_WAIT_S` (or ``wait_s`` if longer) for running stages
    to end, then raises :class:`~audiopipe.store.lock.DatasetLocked` naming each (pid,
    host, since when), before any extraction or ``runs`` row; its next turn ingests
    everything new since (an ingest is incremental: nothing is lost, only delayed). A turn
    with nothing to publish goes through while a stage runs (only its ``runs`` row).
    """
    check_files(cfg, dataset, labels=True)  # its labels file, named before any work
    logger = get_run_logger()
    ds = cfg.dataset(dataset)
    t0 = time.perf_counter()
    n_workers, spare_core = cluster_shape(cfg, scheduler)
    with ingest_turn(
        cfg,
        ds.name,
        kind,
        wait_s=wait_s,
        stages_wait_s=max(wait_s, STAGES_WAIT_S),
        n_workers=n_workers,
        read_ahead=spare_core,
        allow_removals=allow_removals,
        retry_failed=retry_failed,
    ) as plan:
        t1 = time.perf_counter()
        logger.info("%s %s: %s; %d shards", kind, ds.name, plan.diff.summary(), len(plan.shards))
        for note in plan.notes:
            logger.warning("%s %s: %s", kind, ds.name, note)
        results: list[Any] = []
        if plan.shards:
            runner = task_runner(cfg, scheduler)
            try:
                results = extract_shards(plan, runner, progress=progress)
            except BaseException as err:
                why = "interrupted" if isinstance(err, KeyboardInterrupt) else f"failed: {err!r}"
                record_failed_run(plan, f"extraction {why}")
                raise
        t2 = time.perf_counter()
        with publishing():  # (an interrupt from here on waits for the publish to end)
            row = publish(plan, results)
    row.update(
        plan_seconds=t1 - t0,
        extract_seconds=t2 - t1,
        n_workers=n_workers,
        read_ahead=plan.context.read_ahead,
    )
    logger.info(summarize(row))
    return row


@flow(name="ingest", log_prints=True)
def ingest(
    dataset: str | None = None,
    config_path: str = "datasets.yaml",
    scheduler: str | None = None,
    progress: bool = True,
    allow_removals: bool = False,
    retry_failed: bool = False,
) -> dict[str, Any]:
    """Ingest new and changed files of ``dataset``; drop removed ones. Returns the ``runs`` row.

    ``allow_removals``: let the run remove more than ``max_removed_share`` of the dataset;
    ``retry_failed``: retry files that failed before and have not changed.
    """
    return run_ingest(
        load_config(config_path),
        dataset,
        kind="ingest",
        scheduler=scheduler,
        progress=progress,
        allow_removals=allow_removals,
        retry_failed=retry_failed,
    )

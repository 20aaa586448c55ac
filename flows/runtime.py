"""How flows reach Dask: an existing scheduler, or a LocalCluster of processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from audiopipe.config import Config
from audiopipe.ingest.plan import spare_core
from audiopipe.stages.cluster import LazyClient

if TYPE_CHECKING:  # imported when used: stage commands in-process never load Prefect
    from prefect_dask import DaskTaskRunner


@contextmanager
def flow_run_settings() -> Iterator[None]:
    """Prefect settings for a flow this process runs and waits for (commands, benchmarks, tests).

    Prefect 3.9 sends flow-run heartbeats by default (every 180 s, for an automation that
    marks crashed runs), from a thread that sleeps in 1 s steps; the run waits for that
    thread to wake when it ends: 0-1 s, half a second on average, added to every run (a
    tenth of a 5 s ingest). A run started by a command ends with the command, so it needs
    none. A heartbeat frequency set explicitly (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, the
    profile) is kept, and deployments served by ``audiopipe serve`` keep Prefect's default.

    Examples
    --------
    >>> from prefect.settings import get_current_settings
    >>> with flow_run_settings():
    ...     get_current_settings().flows.heartbeat_frequency is None
    True
    """
    from prefect.context import SettingsContext, get_settings_context

    ctx = get_settings_context()
    flows = ctx.settings.flows
    if "heartbeat_frequency" in flows.model_fields_set:  # set by the user: kept
        yield
        return
    # a copy of the settings with the one field changed (valid: the field is optional);
    # prefect's temporary_settings would build Settings again from every source: 0.09 s
    settings = ctx.settings.model_copy(
        update={"flows": flows.model_copy(update={"heartbeat_frequency": None})}
    )
    with SettingsContext(profile=ctx.profile, settings=settings):
        yield


def scheduler_address(cfg: Config, scheduler: str | None = None) -> str | None:
    """The Dask scheduler to use: argument, then ``cluster.scheduler``, then ``DASK_SCHEDULER_ADDRESS``."""
    return scheduler or cfg.cluster.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def share_api_with_workers() -> str:
    """Export this process's Prefect API URL so Dask workers started from here use it.

    Without ``PREFECT_API_URL`` Prefect runs an ephemeral API server per process: every
    LocalCluster worker would start one of its own (~10 s before its first task, a server
    process per worker competing for the cores, task runs recorded where the flow's API
    never sees them). Worker processes inherit the environment, so exporting the flow's own
    API URL before the cluster starts gives them the flow's server. Workers of an external
    cluster need ``PREFECT_API_URL`` in their own environment (see ``infra/``).
    """
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # starts the ephemeral server if needed
        url = str(client.api_url)
    os.environ["PREFECT_API_URL"] = url
    return url


def task_runner(cfg: Config, scheduler: str | None = None) -> DaskTaskRunner:
    """A DaskTaskRunner on the configured cluster (processes, one thread each, by default)."""
    from prefect_dask import DaskTaskRunner

    share_api_with_workers()
    address = scheduler_address(cfg, scheduler)
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": cfg.cluster.n_workers,
            "threads_per_worker": cfg.cluster.threads_per_worker,
            "processes": True,
            "memory_limit": cfg.cluster.memory_limit,
            "dashboard_address": None,
        },
    )


def lazy_client(cfg: Config, scheduler: str | None = None) -> LazyClient:
    """A Dask client for clip stages, made on first use: the configured scheduler, or a
    LocalCluster shaped like ingest's (see :class:`audiopipe.stages.cluster.LazyClient`)."""
    return LazyClient(
        scheduler_address(cfg, scheduler),
        n_workers=cfg.cluster.n_workers,
        threads_per_worker=cfg.cluster.threads_per_worker,
        memory_limit=cfg.cluster.memory_limit,
    )


def cluster_shape(cfg: Config, scheduler: str | None = None) -> tuple[int, bool]:
    """The workers the run will have, and whether each has a core to spare.

    The LocalCluster's from the config and this machine's cores; on an external scheduler,
    the workers now connected and their hosts' cores. A spare core per worker thread lets
    workers extract a shard's files in two threads, whole files each
    (:mod:`audiopipe.ingest.pool`); without one, the second thread would only compete with
    the other workers.
    """
    forced = read_ahead_setting()
    address = scheduler_address(cfg, scheduler)
    if not address:
        n, threads = cfg.cluster.n_workers, cfg.cluster.threads_per_worker
        return n, spare_core(n, threads) if forced is None else forced
    from distributed import Client

    with Client(address, timeout=30) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        cpus = client.run(os.cpu_count)  # {worker address: its host's cores}
    threads: dict[str, int] = {}
    host_cpus: dict[str, int] = {}
    for addr, w in workers.items():
        host = w.get("host") or addr.rsplit(":", 1)[0]
        threads[host] = threads.get(host, 0) + int(w.get("nthreads", 1))
        host_cpus[host] = int(cpus.get(addr) or 1)
    spare = bool(workers) and all(host_cpus[h] >= 2 * threads[h] for h in threads)
    return max(1, len(workers)), spare if forced is None else forced


READ_AHEAD_ENV = "AUDIOPIPE_READ_AHEAD"


def read_ahead_setting() -> bool | None:
    """``AUDIOPIPE_READ_AHEAD``: ``1``/``0`` forces the spare core's use (two threads
    extracting files per worker) on or off; unset or ``auto`` leaves it to
    :func:`cluster_shape` (on when every worker thread has a spare core)."""
    v = os.environ.get(READ_AHEAD_ENV, "auto").strip().lower()
    if v in ("", "auto"):
        return None
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{READ_AHEAD_ENV} must be auto, 1 or 0, got {v!r}")

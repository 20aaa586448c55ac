"""How flows reach Dask: an existing scheduler, or a LocalCluster of processes."""

from __future__ import annotations

import os

from prefect_dask import DaskTaskRunner

from audiopipe.config import Config


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


def cluster_size(cfg: Config, scheduler: str | None = None) -> int:
    """Workers the run will have: the LocalCluster's, or those now on the external scheduler."""
    address = scheduler_address(cfg, scheduler)
    if not address:
        return cfg.cluster.n_workers
    from distributed import Client

    with Client(address, timeout=30) as client:
        return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))

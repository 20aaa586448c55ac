"""How flows reach Dask: an existing scheduler, or a LocalCluster of processes."""

from __future__ import annotations

import os

from prefect_dask import DaskTaskRunner

from audiopipe.config import Config


def scheduler_address(cfg: Config, scheduler: str | None = None) -> str | None:
    """The Dask scheduler to use: argument, then ``cluster.scheduler``, then ``DASK_SCHEDULER_ADDRESS``."""
    return scheduler or cfg.cluster.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def task_runner(cfg: Config, scheduler: str | None = None) -> DaskTaskRunner:
    """A DaskTaskRunner on the configured cluster (processes, one thread each, by default)."""
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

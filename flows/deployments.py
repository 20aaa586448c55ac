"""Prefect deployments of audiopipe: scheduled ingestion and on-demand rebuilds.

Each dataset with a ``schedule:`` (cron) in ``datasets.yaml`` becomes a deployment
``ingest/ingest-<dataset>`` on that cron; every dataset also gets an on-demand
``rebuild/rebuild-<dataset>`` (no schedule; run it with
``prefect deployment run rebuild/rebuild-<dataset>``, parameters overridable with ``-p``).
``audiopipe serve`` registers them with the configured Prefect API and runs their flow
runs; each flow run sends its shards to the configured Dask cluster. A turn that comes
while another ingest, a rebuild, a vacuum or a stage of the dataset runs fails naming it
(:func:`flows.ingest.run_ingest`); the next turn ingests everything new since.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from prefect.deployments.runner import EntrypointType

from audiopipe.config import Config
from flows.ingest import ingest
from flows.rebuild import rebuild


def build_deployments(
    cfg: Config, config_path: str, *, interval_s: float | None = None
) -> list[Any]:
    """The ``RunnerDeployment`` objects for ``cfg`` (nothing is registered yet).

    ``interval_s`` replaces every cron by a fixed interval (tests, demos).
    """
    config_path = os.path.abspath(config_path)
    out = []
    for name, ds in cfg.datasets.items():
        params = {"dataset": name, "config_path": config_path, "progress": False}
        tags = ["audiopipe", name]
        # module entrypoints: a flow run loads `flows.ingest` by name, so the tasks it sends
        # to Dask pickle by reference to a module the workers (and the scheduler) can import
        common = {"parameters": params, "tags": tags, "entrypoint_type": EntrypointType.MODULE_PATH}
        if ds.schedule or interval_s:
            sched: dict[str, Any] = (
                {"interval": dt.timedelta(seconds=interval_s)}
                if interval_s
                else {"cron": ds.schedule}
            )
            out.append(
                ingest.to_deployment(
                    name=f"ingest-{name}",
                    **common,
                    description=f"scheduled ingestion of {name}",
                    concurrency_limit=1,  # a run still going when the next is due: it waits
                    **sched,
                )
            )
        out.append(
            rebuild.to_deployment(
                name=f"rebuild-{name}",
                **common,
                description=f"on-demand rebuild of {name} (recompute every clip)",
            )
        )
    return out


def serve(cfg: Config, config_path: str, *, interval_s: float | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(cfg, config_path, interval_s=interval_s))

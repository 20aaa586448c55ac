"""Prefect flow ``stages``: run a dataset's declared stages (or the named ones) in order.

Each stage is one Prefect task calling :func:`audiopipe.stages.runner.run_named` - the same
function the CLI calls in-process when no Prefect API is configured - so a stage run is
validated, skipped when unchanged, versioned and recorded in the dataset's ``runs`` table
whichever way it runs; through this flow it also shows in Prefect's UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from audiopipe.config import load_config
from audiopipe.stages.runner import run_named, run_stages
from flows.runtime import lazy_client


@task(name="stage", cache_policy=NO_CACHE)
def stage_task(
    root: str,
    dataset: str,
    name: str,
    params: dict[str, Any],
    force: bool = False,
    base_dir: str | None = None,
    config_path: str = "datasets.yaml",
    scheduler: str | None = None,
) -> dict[str, Any]:
    # a clip stage with many new clips fans out on Dask (a LocalCluster only if it does)
    with lazy_client(load_config(config_path), scheduler) as client:
        return run_named(
            root, dataset, name, params, force=force, base_dir=base_dir, client=client
        )


@flow(name="stages", log_prints=True)
def stages(
    dataset: str | None = None,
    names: list[str] | None = None,
    config_path: str = "datasets.yaml",
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run ``names`` (default: every stage declared for the dataset) and return their reports.

    Clip stages with many new clips run in shards on ``scheduler`` (or the config's
    cluster, else a LocalCluster started for that stage). The request (parameters, then the
    files they read) is checked before the first stage runs, by :func:`run_stages`.
    """
    cfg = load_config(config_path)

    def one(root: str, ds: str, name: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        kw.pop("log", None)
        kw.pop("client", None)
        rep = stage_task.with_options(task_run_name=f"stage-{name}")(
            root, ds, name, params, config_path=config_path, scheduler=scheduler, **kw
        )
        get_run_logger().info("%s: %s", name, rep.get("skipped") or rep.get("metrics"))
        return rep

    return run_stages(cfg, dataset, names, overrides, force=force, runner=one)

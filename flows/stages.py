"""Prefect flow ``stages``: run a dataset's declared stages (or the named ones) in order.

Each stage is one Prefect task calling ``audiopipe.stages.<name>.run``; the work inside
a stage uses plain numpy/scikit-learn (and Dask where a stage fans out itself).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from audiopipe.config import load_config
from audiopipe.stages import get_stage
from audiopipe.stages._common import new_stage_run_id
from audiopipe.store import open_dataset


@task(name="stage", cache_policy=NO_CACHE)
def stage_task(root: str, dataset: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    ds = open_dataset(root, dataset)
    return get_stage(name)(ds, params, run_id=new_stage_run_id(name))


@flow(name="stages", log_prints=True)
def stages(
    dataset: str | None = None,
    names: list[str] | None = None,
    config_path: str = "datasets.yaml",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``names`` (default: every stage declared for the dataset) and return their reports."""
    cfg = load_config(config_path)
    ds = cfg.dataset(dataset)
    todo = names or list(ds.stages)
    if not todo:
        raise ValueError(
            f"dataset {ds.name!r} declares no stages; add some under datasets.{ds.name}.stages"
        )
    out = {}
    for name in todo:
        params = {**ds.stages.get(name, {}), **(overrides or {})}
        out[name] = stage_task(cfg.storage_root, ds.name, name, params)
        get_run_logger().info("%s: %s", name, {k: v for k, v in out[name].items() if k != "tables"})
    return out

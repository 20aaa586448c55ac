"""Prefect flow ``rebuild``: recompute every clip of a dataset into a new table version.

Use it when the feature recipe changes. The previous version stays readable
(``audiopipe.open_dataset(root, name, run_id=...)`` or Delta time travel) until vacuumed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from audiopipe.config import load_config
from flows.ingest import run_ingest


@flow(name="rebuild", log_prints=True)
def rebuild(
    dataset: str | None = None,
    config_path: str = "datasets.yaml",
    scheduler: str | None = None,
    progress: bool = True,
    allow_removals: bool = False,
) -> dict[str, Any]:
    """Recompute ``dataset`` from scratch with its current recipe. Returns the ``runs`` row.

    ``allow_removals``: let the rebuild drop more than ``max_removed_share`` of the clips.
    """
    return run_ingest(
        load_config(config_path),
        dataset,
        kind="rebuild",
        scheduler=scheduler,
        progress=progress,
        allow_removals=allow_removals,
    )

"""What ``audiopipe status`` reports: per dataset, its pinned run, sizes, errors, last runs.

Examples
--------
>>> import tempfile
>>> status_rows(tempfile.mkdtemp(), ["nothing"])
[{'dataset': 'nothing', 'published': False}]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audiopipe.store.dataset import DatasetNotFound, open_dataset
from audiopipe.store.records import RunRow
from audiopipe.store.tables import scan_table

__all__ = ["status_rows"]

_RUN_KEYS = ("run_id", "kind", "stage", "status", "files_processed", "files_failed",
             "wall_seconds", "message")


def status_rows(root: str, names: Iterable[str], last: int = 5) -> list[dict[str, Any]]:
    """Per dataset: version, clips, hours, errors, the ``last`` runs of any kind (plain dicts).

    Stage runs are listed with ingests (``kind`` "stage", ``stage`` its name); ``stages``
    gives the last run of each stage.

    A dataset with no published run gives ``{"dataset": name, "published": False}``.
    ``healthy`` is False when tables the pinned run recorded are missing on storage, or data
    files of their versions are (``missing_tables``: ``{table: version}``); counts then cover
    what is there.
    """
    out: list[dict[str, Any]] = []
    for name in names:
        try:
            ds = open_dataset(root, name)
        except DatasetNotFound:
            out.append({"dataset": name, "published": False})
            continue
        missing = ds.missing_tables()
        clips = (
            scan_table(ds.location, "clips", ds.versions["clips"], ["duration_s"])
            if ds.versions.get("clips") is not None and "clips" not in missing
            else None
        )
        errors = None if "errors" in missing else ds.table("errors")
        errors = errors if errors is not None and errors.num_rows else None
        runs = RunRow.rows(ds.table("runs"))
        runs.sort(key=lambda r: r.finished or r.started)
        run_id = ds.run["run_id"]
        out.append(
            {
                "dataset": name,
                "published": True,
                "healthy": not missing,
                "missing_tables": missing,
                "run_id": run_id,
                "versions": ds.versions,
                "clips": 0 if clips is None else clips.num_rows,
                "hours": 0.0
                if clips is None
                else float(sum(x or 0 for x in clips.column("duration_s").to_pylist())) / 3600,
                "errors": 0 if errors is None else errors.num_rows,
                "errors_last_run": 0
                if errors is None
                else sum(1 for r in errors.column("run_id").to_pylist() if r == run_id),
                "last_runs": [{k: getattr(r, k) for k in _RUN_KEYS} for r in runs[-last:]],
                "stages": {
                    r.stage: {k: getattr(r, k) for k in _RUN_KEYS}
                    for r in runs
                    if r.kind == "stage" and r.stage
                },
            }
        )
    return out

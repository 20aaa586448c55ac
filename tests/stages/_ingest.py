"""Build small real datasets for stage tests with the real ingestion pipeline (no Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import audiopipe
from audiopipe.config import parse_config
from audiopipe.ingest import extract_shard, plan_ingest, publish

FSDD_RECIPE = {
    "n_fft": 512,
    "hop_length": 128,
    "compute": {"mfcc": {"n_mfcc": 20, "deltas": 2, "n_mels": 40}, "rms": {}},
}


ESC_RECIPE = {
    "n_fft": 1024,
    "hop_length": 512,
    "compute": {"mfcc": {"n_mfcc": 20, "deltas": 1}, "spectral_centroid": {}, "rms": {}},
}

MIX_RECIPE = {
    "n_fft": 1024,
    "hop_length": 512,
    "compute": {
        "mfcc": {"n_mfcc": 20, "deltas": 1},
        "melspectrogram": {"n_mels": 64, "log": True},
        "rms": {},
    },
}


def ingest(
    out: Path,
    name: str,
    source: str,
    labels: Path | None,
    sample_rate: int = 22050,
    features: dict[str, Any] | None = None,
    on: str = "path",
    root: str | None = None,
    kind: str = "ingest",
) -> audiopipe.store.dataset.Dataset:
    """Ingest ``source`` (folder or glob) into ``out/name`` and open it (``kind="rebuild"``:
    rebuild it, e.g. with another recipe)."""
    d: dict[str, Any] = {"source": str(source), "sample_rate": sample_rate}
    if labels is not None:
        d["labels"] = {"path": str(labels), "on": on}
        if root:
            d["labels"]["root"] = str(root)
    if features:
        d["features"] = features
    cfg = parse_config({"storage": str(out), "datasets": {name: d}})
    plan = plan_ingest(cfg, name, kind=kind)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(out), name)


def write_csv(path: Path, rows: Any, fieldnames: list[str] | None = None) -> Path:
    """Write dict ``rows`` as a CSV (a labels, events or listens file of a test); the first
    row's keys are the header unless ``fieldnames`` are given."""
    import csv

    rows = list(rows)
    with Path(path).open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fieldnames or list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return Path(path)

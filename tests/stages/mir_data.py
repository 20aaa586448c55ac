"""Tiny datasets for the MIR stage tests, ingested with the real pipeline (no Prefect)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

import audiopipe
from audiopipe.config import parse_config
from audiopipe.ingest import extract_shard, plan_ingest, publish

SMALL_RECIPE = {"n_fft": 1024, "hop_length": 512, "compute": {"rms": {}}}


def build_dataset(
    tmp_path: Path,
    files: dict[str, tuple[np.ndarray, int]],
    name: str = "d",
    drop: list[str] | tuple[str, ...] = (),
    storage: str | None = None,
    sample_rate: int = 22050,
    features: dict | None = None,
    kind: str = "ingest",
):
    """Write ``{relpath: (y, sr)}`` (y mono (n,) or (n, ch)) plus a labels.csv, ingest, open.

    ``drop`` deletes files of an earlier call (the next ingest removes their clips);
    ``storage`` is the output root (default ``tmp_path / "out"``; ``s3://...`` works);
    ``features`` the recipe (default ``SMALL_RECIPE``); ``kind="rebuild"`` rebuilds.
    """
    folder = tmp_path / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    for rel in drop:
        (folder / rel).unlink()
    files = {k: v for k, v in files.items() if k not in drop}
    for rel, (y, sr) in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / rel, y, sr)
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([(rel, Path(rel).stem) for rel in files])
    cfg = parse_config(
        {
            "storage": storage or str(tmp_path / "out"),
            "datasets": {
                name: {
                    "source": str(folder),
                    "labels": {"path": str(folder / "labels.csv"), "on": "path"},
                    "sample_rate": sample_rate,
                    "features": features or SMALL_RECIPE,
                }
            },
        }
    )
    plan = plan_ingest(cfg, name, kind=kind)
    loc = plan.context.location
    for s in plan.shards:  # extract_shard expects its staging folder to exist (local fs)
        if not loc.is_remote:
            loc.fs.makedirs(loc.staging_uri(s.key), exist_ok=True)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(storage or str(tmp_path / "out"), name)


def clip_ids_by_stem(ds) -> dict[str, str]:
    t = ds.table("clips").to_pydict()
    return {Path(u).stem: c for c, u in zip(t["clip_id"], t["uri"], strict=True)}


def read_audio(path: Path, sr: int = 22050, offset_s: float = 0.0, dur_s: float | None = None):
    """Mono float32 at ``sr`` (soxr), optionally an excerpt."""
    import soxr

    info = sf.info(str(path))
    start = int(offset_s * info.samplerate)
    stop = None if dur_s is None else start + int(dur_s * info.samplerate)
    y, s = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return (soxr.resample(y, s, sr) if s != sr else y).astype(np.float32)

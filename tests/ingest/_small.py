"""A small tone corpus and one-call ingests for the ingest tests (library path, no flows)."""

from __future__ import annotations

from pathlib import Path

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.store.location import Location
from audiopipe.store.runs import last_run
from tests.audio_fixtures import sine, write
from tests.conftest import write_config

FEATURES = {"n_fft": 512, "hop_length": 256, "compute": {"rms": {}}}


def corpus(folder: Path, n: int = 4) -> list[Path]:
    """``n`` short tones of distinct pitch, ``tone_<i>.wav``."""
    return [
        write(folder / f"tone_{i}.wav", sine(f=200 + 90 * i, dur=0.3), 22050) for i in range(n)
    ]


def cfg(tmp_path: Path, **ds) -> Path:
    """A config of dataset ``t`` over ``tmp_path/corpus`` (stored in ``tmp_path/out``)."""
    spec = {"source": str(tmp_path / "corpus"), "sample_rate": 22050, "features": FEATURES}
    return write_config(tmp_path, {"t": {**spec, **ds}})


def ingest(cfg: Path, **kw) -> dict:
    """Plan, extract every shard in this process and publish; the run's row."""
    plan = plan_ingest(load_config(cfg), "t", **kw)
    return publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


def versions(tmp_path: Path) -> dict[str, int | None]:
    return last_run(Location(str(tmp_path / "out"), "t")).versions()


def table(tmp_path: Path, name: str):
    return audiopipe.open_dataset(str(tmp_path / "out"), "t").table(name).to_pandas()

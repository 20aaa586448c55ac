"""Every stage on object storage: a real S3-compatible server (moto) on 127.0.0.1.

The demo's declared stages plus separate and transcribe run with ``storage: s3://...``;
every table and file they produce is read back from the bucket, and nothing is written to
the local disk (the working directory stays empty; no ``s3:`` folder appears).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import audiopipe
from audiopipe.config import load_config
from audiopipe.demo import make_demo_corpus
from tests.conftest import ingest_in_process

ROOT = Path(__file__).resolve().parents[2]
MAGIC = {".png": b"\x89PNG", ".flac": b"fLaC", ".mid": b"MThd", ".skops": b"PK", ".npz": b"PK"}


def test_every_stage_writes_and_reads_through_the_bucket(tmp_path, s3, monkeypatch):
    import s3fs
    from deltalake import DeltaTable

    make_demo_corpus(tmp_path / "demo", n_per_class=3)
    declared = yaml.safe_load((ROOT / "datasets.yaml").read_text())["datasets"]["demo"]["stages"]
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()

    def write(stages: dict) -> Path:
        path = cfg_dir / "datasets.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "storage": "s3://audio/pipe",
                    "datasets": {
                        "demo": {
                            "source": "../demo",  # paths are relative to this file
                            "labels": {"path": "../demo/labels.csv", "on": "path"},
                            "stages": stages,
                        }
                    },
                }
            )
        )
        return path

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ingest_in_process(load_config(write({})), "demo")
    some = audiopipe.open_dataset("s3://audio/pipe", "demo").table("clips", ["clip_id"])
    some = some.column("clip_id").to_pylist()[::5]  # the slow MIR stages on a few clips
    stages = {
        **declared,
        "segment": {**declared["segment"], "events": "../demo/events.csv"},
        "separate": {"clips": some},
        "transcribe": {"method": "mono", "clips": some},
    }
    cfg = load_config(write(stages))
    from audiopipe.stages.runner import run_stages

    reports = run_stages(cfg, "demo")
    assert set(reports) == set(stages) and not any(r["skipped"] for r in reports.values())

    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3})
    opts = audiopipe.open_dataset("s3://audio/pipe", "demo").location.storage_options
    tables = {t for r in reports.values() for t in r["tables"]}
    assert {"predictions", "tags", "segments", "recommendations", "tempo", "beats",
            "fingerprints", "retrieval_indexes", "stems", "notes", "midi", "metrics"} <= tables
    files: list[str] = []
    for name in tables:
        t = DeltaTable(f"s3://audio/pipe/demo/tables/{name}", storage_options=opts)
        data = t.to_pyarrow_table()
        assert data.num_rows > 0, name
        if "uri" in data.column_names and name != "clips":
            files += [u for u in data.column("uri").to_pylist() if u]
    for rep in reports.values():
        files += rep["plots"] + ([rep["model"]] if rep.get("model") else [])
    runs = audiopipe.open_dataset("s3://audio/pipe", "demo").table("runs").to_pylist()
    for r in runs:
        if r["kind"] == "stage":
            art = json.loads(r["artifacts"])
            assert art["folder"] is None or art["folder"].startswith("s3://audio/pipe/demo/stages/")
    suffixes = {Path(u).suffix for u in files}
    assert {".png", ".flac", ".mid", ".skops", ".npz"} <= suffixes
    for u in files:
        assert u.startswith("s3://audio/pipe/demo/stages/"), u
        head = fs.cat_file(u, start=0, end=4)
        assert head.startswith(MAGIC[Path(u).suffix]), u
    # the lookups read from the bucket too
    from audiopipe.stages.fingerprint import identify_many
    from audiopipe.stages.retrieve import similar_many

    ds = audiopipe.open_dataset("s3://audio/pipe", "demo")
    query = sorted((tmp_path / "demo" / "tone").glob("*"))[0]
    assert identify_many(ds, [query])[0]["clip_id"] is not None
    assert similar_many(ds, [str(query)], k=3)[0]["hits"][0]["uri"].endswith(query.name)
    # a second pass: nothing changed, every stage is skipped
    again = run_stages(cfg, "demo")
    assert all(r["skipped"] for r in again.values())
    # nothing local: the working directory is empty and no "s3:" folder appeared anywhere
    assert list(cwd.iterdir()) == []
    assert not list(tmp_path.rglob("s3:*")) and not (ROOT / "s3:").exists()


def test_after_a_vacuum_on_s3_an_unchanged_stage_is_skipped(tmp_path, s3):
    """A vacuum commits VACUUM START/END to a stage table's log; on S3 the runner reads those
    commits from the bucket to see they changed no row (it reran every clip)."""
    import numpy as np

    from audiopipe.stages import run_stage
    from audiopipe.store.tables import table_version
    from audiopipe.store.vacuum import vacuum
    from tests.stages.mir_data import build_dataset

    t = np.arange(16000) / 16000
    files = {f"c{i}.wav": ((0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32),
                           16000) for i in range(2)}
    ds = build_dataset(tmp_path, files, storage="s3://audio/vac", sample_rate=16000)
    run_stage(ds, "beats")
    forced = run_stage(ds, "beats", force=True)
    assert vacuum(ds.location, retain_hours=0).table_files["tempo"] >= 1
    assert table_version(ds.location, "tempo") > forced["tables"]["tempo"]
    again = run_stage(audiopipe.open_dataset("s3://audio/vac", "d"), "beats")
    assert again["skipped"] and again["run_id"] == forced["run_id"]

"""End to end: the real ingest flow (Prefect API + Dask processes) on generated and real audio."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

import audiopipe
from audiopipe.store.location import Location
from tests.audio_fixtures import bad_inputs, sine, write
from tests.conftest import write_config

SMALL_RECIPE = {
    "n_fft": 1024,
    "hop_length": 256,
    "compute": {"mfcc": {"n_mfcc": 13, "deltas": 1}, "rms": {}, "spectral_centroid": {}},
}


def _corpus(folder, n=6):
    for i in range(n):
        write(folder / f"tone_{i}.wav", sine(f=200 + 50 * i, dur=0.5 + 0.1 * i), 22050)
    return folder


def _cfg(tmp_path, **kw):
    ds = {
        "source": str(tmp_path / "corpus"),
        "sample_rate": 22050,
        "features": SMALL_RECIPE,
        "shard": {"max_files": 4},
        **kw,
    }
    return write_config(tmp_path, {"t": ds})


def test_ingest_twice_then_add_change_delete(tmp_path, run_ingest):
    corpus = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    r1 = run_ingest(cfg, "t")
    assert (r1["files_new"], r1["files_processed"], r1["files_failed"]) == (6, 6, 0)
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips1 = ds.table("clips").to_pandas().set_index("uri")
    assert len(clips1) == 6
    v1 = dict(ds.versions)

    r2 = run_ingest(cfg, "t")
    assert r2["files_processed"] == 0 and r2["files_new"] == 0 and r2["shards"] == 0
    ds2 = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds2.versions == v1, "an unchanged corpus creates no new table versions"

    # add 3, change 1, delete 1
    for i in range(3):
        write(corpus / f"new_{i}.flac", sine(f=900 + i, dur=0.7), 22050)
    time.sleep(0.01)
    write(corpus / "tone_1.wav", sine(f=1234, dur=0.8), 22050)
    os.remove(corpus / "tone_2.wav")
    r3 = run_ingest(cfg, "t")
    assert (r3["files_new"], r3["files_changed"], r3["files_removed"]) == (3, 1, 1)
    assert r3["files_processed"] == 4
    ds3 = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips3 = ds3.table("clips").to_pandas().set_index("uri")
    assert len(clips3) == 8
    assert str(corpus / "tone_2.wav") not in clips3.index
    for i in (0, 3, 4, 5):  # untouched files keep their ids
        u = str(corpus / f"tone_{i}.wav")
        assert clips3.loc[u, "clip_id"] == clips1.loc[u, "clip_id"]
    changed = str(corpus / "tone_1.wav")
    assert clips3.loc[changed, "clip_id"] != clips1.loc[changed, "clip_id"]
    feats = ds3.table("features").to_pandas()
    assert sorted(feats.clip_id) == sorted(clips3.clip_id), (
        "one features row per clip, no stale rows"
    )
    idx = ds3.table("frames_index").to_pandas()
    assert sorted(idx.clip_id) == sorted(clips3.clip_id)
    # the changed clip's features are those of the new content (1234 Hz centroid)
    cid = clips3.loc[changed, "clip_id"]
    cen = ds3.frames(cid, "spectral_centroid")
    assert abs(float(np.median(cen)) - 1234) < 60
    runs = ds3.table("runs").to_pandas()
    assert list(runs.sort_values("finished").files_processed) == [6, 0, 4]


@pytest.mark.parametrize("read_ahead", ["0", "1"], ids=["one-thread", "read-ahead"])
def test_bad_inputs_never_stop_the_run(tmp_path, run_ingest, monkeypatch, read_ahead):
    monkeypatch.setenv("AUDIOPIPE_READ_AHEAD", read_ahead)  # workers decode ahead or not
    corpus = tmp_path / "corpus"
    expected = bad_inputs(corpus)
    good = [write(corpus / f"good_{i}.wav", sine(f=300 + i * 100), 22050) for i in range(3)]
    cfg = _cfg(
        tmp_path, shard={"max_files": 50, "min_shards": 1}
    )  # all in one shard: the good ones must survive
    row = run_ingest(cfg, "t")
    assert row["read_ahead"] is (read_ahead == "1")
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    errors = ds.table("errors").to_pandas().set_index("uri")
    for g in good:
        assert str(g) in clips.index
    for name, (path, outcome) in expected.items():
        if outcome == "ok":
            assert str(path) in clips.index, f"{name} should be processed"
            assert str(path) not in errors.index
        else:
            assert str(path) in errors.index, f"{name} should be an errors row"
            assert str(path) not in clips.index
            msg = errors.loc[str(path), "message"]
            assert isinstance(msg, str) and len(msg) > 10
    assert row["files_failed"] == sum(1 for _, o in expected.values() if o == "error")
    assert (errors.step == "decode").all()
    # particular facts of the odd-but-valid files
    assert clips.loc[str(expected["six_channels"][0]), "channels"] == 6
    assert clips.loc[str(expected["8k"][0]), "native_sr"] == 8000
    assert clips.loc[str(expected["96k"][0]), "native_sr"] == 96000
    assert clips.loc[str(expected["96k"][0]), "duration_s"] == pytest.approx(1.0, abs=0.01)
    sil = clips.loc[str(expected["silence"][0]), "clip_id"]
    assert np.isfinite(ds.frames(sil, "mfcc")).all()
    tiny = clips.loc[str(expected["tiny"][0]), "clip_id"]
    assert ds.frames(tiny, "rms").shape[0] >= 1


def test_outputs_read_without_audiopipe(tmp_path, run_ingest):
    import duckdb
    import polars as pl
    import zarr
    from deltalake import DeltaTable

    _corpus(tmp_path / "corpus", n=3)
    cfg = _cfg(tmp_path)
    run_ingest(cfg, "t")
    loc = Location(str(tmp_path / "out"), "t")
    clips = pl.read_delta(loc.table_uri("clips"))
    feats = pl.read_delta(loc.table_uri("features"))
    assert clips.height == 3 and feats.height == 3
    assert feats["mfcc_mean"].list.len().to_list() == [13, 13, 13]
    clips_ds = DeltaTable(loc.table_uri("clips")).to_pyarrow_dataset()  # noqa: F841 - queried by name
    n = duckdb.sql("select count(*) as n, sum(duration_s) as d from clips_ds").fetchall()[0]
    assert n[0] == 3 and n[1] == pytest.approx(0.5 + 0.6 + 0.7, abs=1e-3)
    idx = pl.read_delta(loc.table_uri("frames_index")).row(0, named=True)
    g = zarr.open_group(loc.frames_uri(idx["part"]), mode="r")
    arr = g["mfcc"][idx["start"] : idx["stop"]]
    assert arr.shape == (idx["n_frames"], 13) and arr.dtype == np.float32


def test_recipe_change_requires_rebuild_and_rebuild_keeps_old_version(tmp_path, run_ingest):
    _corpus(tmp_path / "corpus", n=3)
    cfg = _cfg(tmp_path)
    run_ingest(cfg, "t")
    old = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    old_run = old.run["run_id"]
    recipe = {**SMALL_RECIPE, "compute": {**SMALL_RECIPE["compute"], "zero_crossing_rate": {}}}
    cfg2 = write_config(tmp_path, {"t": {"source": str(tmp_path / "corpus"), "features": recipe}})
    from audiopipe.ingest import RecipeChangedError

    with pytest.raises(RecipeChangedError, match="audiopipe rebuild t"):
        run_ingest(cfg2, "t")
    row = run_ingest(cfg2, "t", kind="rebuild")
    assert row["kind"] == "rebuild" and row["files_processed"] == 3
    new = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert "zero_crossing_rate_mean" in new.table("features").column_names
    assert (
        "zero_crossing_rate_mean"
        not in audiopipe.open_dataset(str(tmp_path / "out"), "t", run_id=old_run)
        .table("features")
        .column_names
    )
    assert new.table("clips").num_rows == 3


def test_files_emptied_in_place_are_refused_at_publish_by_the_flow(tmp_path, run_ingest, dask_scheduler):
    """The flow's publish refuses removing 3 of 4 files that now fail (max_removed_share):
    the error reaches the caller, the dataset stays as it was and its lock is released; the
    rerun with allow_removals removes them and says so."""
    from audiopipe.ingest import RemovalRefusedError
    from flows.ingest import ingest

    corpus = _corpus(tmp_path / "corpus", n=4)
    cfg = _cfg(tmp_path)
    run_ingest(cfg, "t")
    before = audiopipe.open_dataset(str(tmp_path / "out"), "t").run["run_id"]
    for i in range(3):
        (corpus / f"tone_{i}.wav").write_bytes(b"")
    with pytest.raises(RemovalRefusedError, match="3 of its 4 clips.*--allow-removals"):
        run_ingest(cfg, "t")
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.run["run_id"] == before and ds.table("clips").num_rows == 4
    row = ingest(dataset="t", config_path=str(cfg), scheduler=dask_scheduler, progress=False,
                 allow_removals=True)  # fmt: skip
    assert row["files_removed"] == 3 and row["clips_total"] == 1
    assert "3 changed files failed and were removed" in row["message"]


def test_killed_publish_is_invisible_and_next_run_completes(tmp_path, run_ingest):
    """Simulate a flow killed after committing clips but before features/runs."""
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, staging
    from audiopipe.store.tables import replace_where

    corpus = _corpus(tmp_path / "corpus", n=4)
    cfg_path = _cfg(tmp_path)
    run_ingest(cfg_path, "t")
    write(corpus / "late.wav", sine(f=777), 22050)
    cfg = load_config(cfg_path)
    plan = plan_ingest(cfg, "t")
    results = [extract_shard(s, plan.context) for s in plan.shards]
    staged = staging.read_staged(plan.context.location, [s.key for s in plan.shards], "clips")
    replace_where(
        plan.context.location, "clips", staged, "uri", set(staged.column("uri").to_pylist())
    )
    # ... the process dies here: readers still see the last run
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.table("clips").num_rows == 4
    # the next run restores, reuses the staged shard, and publishes exactly the missing work
    row = run_ingest(cfg_path, "t")
    assert row["files_new"] == 1 and row["files_processed"] == 1
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.table("clips").num_rows == 5 and ds.table("features").num_rows == 5
    assert results[0].files_ok == 1


@pytest.mark.corpora
def test_real_corpora_fsdd_and_music(tmp_path, corpora, run_ingest):
    import pandas as pd
    import soundfile as sf

    fsdd = corpora / "fsdd"
    music = corpora / "music"
    cfg = write_config(
        tmp_path,
        {
            "fsdd": {
                "source": str(fsdd / "recordings"),
                "labels": {"path": str(fsdd / "labels.csv"), "on": "path"},
                "sample_rate": 8000,
                "features": {
                    "n_fft": 256,
                    "hop_length": 80,
                    "compute": {"mfcc": {"n_mfcc": 13}, "rms": {}},
                },
                "shard": {"max_files": 250},
            },
            "music": {
                "source": str(music / "*.ogg"),
                "sample_rate": 22050,
                "shard": {"max_files": 4},
            },
        },
    )
    row = run_ingest(cfg, "fsdd")
    assert row["files_processed"] == 2000 and row["files_failed"] == 0
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "fsdd").table("clips").to_pandas()
    truth = pd.read_csv(fsdd / "labels.csv", dtype=str)
    truth["uri"] = [str((fsdd / p).resolve()) for p in truth.path]
    merged = clips.merge(truth, on="uri", suffixes=("", "_truth"))
    assert len(merged) == 2000
    assert (merged.digit == merged.digit_truth).all() and (
        merged.speaker == merged.speaker_truth
    ).all()
    assert clips.duration_s.sum() == pytest.approx(940.8, abs=1.0)
    sample = merged.sample(20, random_state=0)
    for uri, dur in zip(sample.uri, sample.duration_s, strict=True):
        assert dur == pytest.approx(sf.info(uri).duration, abs=1e-3)

    row = run_ingest(cfg, "music")
    assert row["files_processed"] == 11 and row["files_failed"] == 0
    mclips = audiopipe.open_dataset(str(tmp_path / "out"), "music").table("clips").to_pandas()
    assert mclips.duration_s.sum() == pytest.approx(421.7, abs=1.5)
    assert set(mclips.native_sr) == {44100, 16000} or set(mclips.native_sr) <= {44100, 22050, 16000}
    assert (mclips.format == "OGG").all()


def test_second_ingestion_at_once_is_refused(tmp_path, run_ingest):
    from audiopipe.store.lock import DatasetLocked, dataset_lock

    _corpus(tmp_path / "corpus", n=2)
    cfg = _cfg(tmp_path)
    with (
        dataset_lock(Location(str(tmp_path / "out"), "t")),
        pytest.raises(DatasetLocked, match="locked by another"),
    ):
        run_ingest(cfg, "t")
    row = run_ingest(cfg, "t")
    assert row["files_processed"] == 2
    shutil.rmtree(tmp_path / "out")


def test_an_ingest_under_a_running_stage_is_refused_naming_it(tmp_path, run_ingest, monkeypatch):
    """The flow published new data tables while a stage of the dataset ran: it now waits a
    little, then refuses naming the stage (pid, host), before any work or run row."""
    import flows.ingest
    from audiopipe.store.lock import DatasetLocked, stage_lock

    monkeypatch.setattr(flows.ingest, "STAGES_WAIT_S", 0.3)
    _corpus(tmp_path / "corpus", n=2)
    cfg = _cfg(tmp_path)
    loc = Location(str(tmp_path / "out"), "t")
    loc.fs.makedirs(loc.base, exist_ok=True)
    with (
        stage_lock(loc, "beats"),
        pytest.raises(DatasetLocked, match=rf"stage runs are running: beats \(pid {os.getpid()} "
                                           r".*no ingest while a stage runs"),
    ):
        run_ingest(cfg, "t")
    assert not (tmp_path / "out" / "t" / "tables").exists()  # nothing planned or recorded
    assert run_ingest(cfg, "t")["files_processed"] == 2
    shutil.rmtree(tmp_path / "out")


def test_a_turn_with_nothing_new_goes_through_under_a_running_stage(tmp_path, run_ingest,
                                                                   monkeypatch):
    """A scheduled turn with nothing to publish failed while any stage ran, every turn of a
    long stage; it now records its run (nothing extracted, the data tables unchanged)."""
    import flows.ingest
    from audiopipe.store.lock import stage_lock

    monkeypatch.setattr(flows.ingest, "STAGES_WAIT_S", 0.3)
    _corpus(tmp_path / "corpus", n=2)
    cfg = _cfg(tmp_path)
    first = run_ingest(cfg, "t")
    with stage_lock(Location(str(tmp_path / "out"), "t"), "beats"):
        row = run_ingest(cfg, "t")
    assert row["status"] == "ok" and row["files_processed"] == 0 and row["shards"] == 0
    data = ("clips", "features", "frames_index")
    now, before = json.loads(row["table_versions"]), json.loads(first["table_versions"])
    assert {t: now[t] for t in data} == {t: before[t] for t in data}
    shutil.rmtree(tmp_path / "out")


def test_local_cluster_workers_report_to_the_flows_ephemeral_api(tmp_path):
    """With no Prefect server configured (``make run`` on a fresh machine), the LocalCluster
    started for a run records its task runs in the flow's own ephemeral API. Without the
    exported URL every worker started a private ephemeral server (~10 s each, a server
    process per worker) whose task runs the flow's database never saw."""
    import sqlite3
    import subprocess
    import sys

    _corpus(tmp_path / "corpus", n=4)
    cfg = write_config(
        tmp_path,
        {
            "t": {
                "source": str(tmp_path / "corpus"),
                "sample_rate": 22050,
                "features": SMALL_RECIPE,
                "shard": {"max_files": 2, "min_shards": 1},
            }
        },
    )
    cfg.write_text(cfg.read_text() + "cluster: {n_workers: 1, memory_limit: 2GiB}\n")
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        AUDIOPIPE_DECODER_HOOK="tests.fault_hooks:log_api_url",
        PYTHONPATH=os.getcwd(),
    )
    out = subprocess.run(
        [sys.executable, "-m", "flows.cli", "-c", str(cfg), "ingest", "t", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    urls = (tmp_path / "corpus" / ".api_urls.log").read_text().split()
    assert len(urls) == 4 and len(set(urls)) == 1 and urls[0].startswith("http://127.0.0.1:")
    with sqlite3.connect(home / "prefect.db") as db:
        n = db.execute("select count(*) from task_run where name like 'extract-shard%'").fetchone()
    assert n[0] == 2, "both shard task runs are in the flow's own database"


def test_the_flow_names_a_missing_labels_file_before_any_work(tmp_path):
    """A scheduled ingest goes through the flow, not the CLI: a labels file on a share that is
    not mounted is named before the plan (another dataset's missing file does not matter)."""
    from audiopipe.config import load_config
    from flows.ingest import run_ingest

    _corpus(tmp_path / "corpus")
    gone = tmp_path / "share" / "labels.csv"
    cfg_path = write_config(tmp_path, {
        "t": {"source": str(tmp_path / "corpus"), "labels": {"path": str(gone)}},
        "u": {"source": str(tmp_path / "corpus"), "stages": {"segment": {"events": str(gone)}}},
    })
    with pytest.raises(FileNotFoundError) as info:
        run_ingest(load_config(cfg_path), "t")
    assert str(info.value) == f"datasets.t.labels.path: no such file: {gone}"
    assert not (tmp_path / "out").exists()

"""Vacuum: old versions and unreferenced frames go, everything kept reads the same."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import audiopipe
from audiopipe.store.dataset import DatasetNotFound
from audiopipe.store.location import Location
from audiopipe.store.vacuum import vacuum
from tests.audio_fixtures import sine, write
from tests.conftest import ingest_in_process, write_config

RECIPE = {"n_fft": 512, "hop_length": 256, "compute": {"mfcc": {"n_mfcc": 8}, "rms": {}}}


def _run(cfg, kind: str = "ingest") -> dict:
    return ingest_in_process(cfg, "t", kind=kind)


def _snapshot(root: str) -> dict:
    ds = audiopipe.open_dataset(root, "t")
    clips = ds.table("clips").to_pandas().sort_values("uri").reset_index(drop=True)
    feats = ds.table("features").to_pandas().sort_values("clip_id").reset_index(drop=True)
    frames = {c: ds.frames(c, "mfcc") for c in clips.clip_id}
    return {"clips": clips.drop(columns=["run_id"]), "features": feats, "frames": frames}


def _parts(out) -> set[str]:
    return {p.name for p in (out / "t" / "frames").iterdir()}


def _age(folder, hours: float) -> None:
    """Every file under ``folder`` written ``hours`` ago."""
    t = time.time() - hours * 3600
    for p in folder.rglob("*"):
        os.utime(p, (t, t))


def _du(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_vacuum_keeps_what_the_latest_run_reads_and_frees_the_rest(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(4):
        write(corpus / f"tone_{i}.wav", sine(f=300 + 100 * i, dur=0.5), 22050)
    cfg = write_config(
        tmp_path,
        {
            "t": {
                "source": str(corpus),
                "sample_rate": 22050,
                "features": RECIPE,
                "shard": {"max_files": 2, "min_shards": 1},
            }
        },
    )
    out = tmp_path / "out"
    first = _run(cfg)
    write(corpus / "tone_0.wav", sine(f=900, dur=0.6), 22050)  # changed
    write(corpus / "tone_9.wav", sine(f=1200, dur=0.4), 22050)  # new
    _run(cfg)
    _run(cfg, kind="rebuild")  # every clip again, into new parts
    orphan = out / "t" / "frames" / "deadbeefdeadbeefdead-0123abcd.zarr"  # a killed attempt's
    orphan.mkdir()
    (orphan / "zarr.json").write_text("{}")

    latest = audiopipe.open_dataset(str(out), "t")
    used = set(latest.table("frames_index").to_pandas().part)
    before = _snapshot(str(out))
    all_parts = _parts(out)
    assert used < all_parts and orphan.name in all_parts
    loc = Location(str(out), "t")

    # recent runs are kept by the default retention: nothing to do
    r = vacuum(loc, retain_hours=24)
    assert r.parts == [] and sum(r.table_files.values()) == 0
    assert _parts(out) == all_parts
    # a retention further back than dates go keeps every run (it was an OverflowError)
    r = vacuum(loc, retain_hours=1e12, dry_run=True)
    assert r.parts == [] and sum(r.table_files.values()) == 0

    # an unreferenced part written less than an hour ago is kept, whatever the retention
    # (a worker orphaned by a killed run may be writing it): the runs are older than that
    assert vacuum(loc, retain_hours=0, dry_run=True).parts == []
    _age(out / "t", 2)

    # dry run: reports, deletes nothing
    dry = vacuum(loc, retain_hours=0, dry_run=True)
    assert set(dry.parts) == all_parts - used
    assert sum(dry.table_files.values()) > 0 and dry.bytes_freed > 0
    assert _parts(out) == all_parts

    size = _du(out / "t")
    r = vacuum(loc, retain_hours=0)
    assert set(r.parts) == all_parts - used and _parts(out) == used
    assert r.table_files == dry.table_files
    assert _du(out / "t") <= size - r.bytes_freed + 4096  # + the marker file
    assert "removed" in r.summary()

    # the latest run reads exactly as before, frames included
    after = _snapshot(str(out))
    assert after["clips"].equals(before["clips"])
    assert after["features"].equals(before["features"])
    for c, f in before["frames"].items():
        np.testing.assert_array_equal(after["frames"][c], f)
    # an old run says it was vacuumed instead of failing somewhere in deltalake
    with pytest.raises(DatasetNotFound, match="vacuumed"):
        audiopipe.open_dataset(str(out), "t", run_id=first["run_id"])

    # ingestion goes on as usual afterwards
    assert _run(cfg)["files_processed"] == 0
    write(corpus / "tone_5.wav", sine(f=700, dur=0.5), 22050)
    assert _run(cfg)["files_processed"] == 1
    assert audiopipe.open_dataset(str(out), "t").table("clips").num_rows == 6


def test_vacuum_spares_parts_of_staged_shards_and_rejects_negative_retention(tmp_path):
    loc = Location(str(tmp_path / "out"), "t")
    frames = tmp_path / "out" / "t" / "frames"
    staged = tmp_path / "out" / "t" / "_staging" / "abcabcabcabcabcabcab"
    staged.mkdir(parents=True)
    (staged / "_SUCCESS").write_text("{}")
    for name in ("abcabcabcabcabcabcab-11111111.zarr", "fedfedfedfedfedfedfe-22222222.zarr"):
        (frames / name).mkdir(parents=True)
        (frames / name / "zarr.json").write_text("{}")
    _age(frames, 2)
    r = vacuum(loc, retain_hours=0)
    assert r.parts == ["fedfedfedfedfedfedfe-22222222.zarr"]
    assert _parts(tmp_path / "out") == {"abcabcabcabcabcabcab-11111111.zarr"}
    for bad in (-1, float("nan"), float("inf")):  # nan passed `< 0`; inf overflowed
        with pytest.raises(ValueError, match=r"retain_hours: must be a finite number >= 0"):
            vacuum(loc, retain_hours=bad)


def test_vacuum_refuses_while_a_stage_runs(tmp_path):
    """A vacuum deleted files while a stage ran: with retain_hours 0, those the stage had
    written and not committed yet. It now refuses, naming the stage, and leaves the dataset
    lock free."""
    from audiopipe.store.location import Location
    from audiopipe.store.lock import DatasetLocked, dataset_lock, holder

    loc = Location(str(tmp_path), "d")
    loc.fs.makedirs(loc.base, exist_ok=True)
    with dataset_lock(loc, "stage beats", name="_lock_stage_beats"):
        with pytest.raises(DatasetLocked, match="stage runs are running: beats .*no vacuum"):
            vacuum(loc, retain_hours=0)
        assert holder(loc) is None
    assert vacuum(loc, retain_hours=0).kept_runs == []


def test_vacuum_waits_a_little_for_a_stage_and_names_its_lock_folder(tmp_path):
    """The README says a vacuum waits 5 s for a running stage: it refused at once; its message
    named the folder to remove as ``_lock_stage_<stage>`` (review 9)."""
    import threading

    from audiopipe.store.location import Location
    from audiopipe.store.lock import STAGE_LOCK_PREFIX, DatasetLocked, dataset_lock
    from tests.store._stages import stage_running

    loc = Location(str(tmp_path), "d")
    with stage_running(loc, "beats") as done:
        threading.Timer(1.0, done.set).start()  # the stage ends while the vacuum waits
        assert vacuum(loc, retain_hours=0).kept_runs == []
    with dataset_lock(loc, "stage beats", name=f"{STAGE_LOCK_PREFIX}beats"):
        with pytest.raises(DatasetLocked) as e:
            vacuum(loc, retain_hours=0)
    assert f"lock folder {loc.join(STAGE_LOCK_PREFIX + 'beats')}: " in str(e.value)


def test_vacuum_keeps_a_stage_table_as_its_last_recording_run_left_it(tmp_path):
    """classify --predict records its predictions, not the fit's confusion: a default open
    reads ``confusion`` as the fit left it. With a later commit no finished run recorded (a
    killed run's), the vacuum kept only what the latest classify run recorded and deleted the
    files of the fit's version: the default open failed on a parquet file, status healthy."""
    from deltalake import write_deltalake

    from audiopipe.demo import make_demo_corpus
    from audiopipe.stages import run_stage
    from audiopipe.store.status import status_rows
    from tests.stages._ingest import ingest

    src = tmp_path / "src"
    make_demo_corpus(src, n_per_class=4)
    out = tmp_path / "out"
    ds = ingest(out, "d", str(src), src / "labels.csv")
    fit = run_stage(ds, "classify", {"target": "label", "candidates": ["stats"]})
    pred = run_stage(audiopipe.open_dataset(str(out), "d"), "classify",
                     {"target": "label", "predict": True, "all": True})
    assert "confusion" in fit["tables"] and "confusion" not in pred["tables"]
    loc = ds.location
    confusion = audiopipe.open_dataset(str(out), "d").table("confusion")
    assert confusion.num_rows > 0
    # a killed classify run's commit: confusion overwritten, no runs row
    write_deltalake(loc.table_uri("confusion"), confusion.slice(0, 1), mode="overwrite")

    r = vacuum(loc, retain_hours=0)
    assert r.table_files["confusion"] == 0  # the killed run's file is the latest: kept too
    now = audiopipe.open_dataset(str(out), "d")
    assert now.versions["confusion"] == fit["tables"]["confusion"]
    assert now.table("confusion").equals(confusion)
    assert now.table("predictions").num_rows == pred["n_clips"]
    assert status_rows(str(out), ["d"])[0]["healthy"]
    # the predict run (the latest of classify, kept) opened pinned reads as it did
    at = audiopipe.open_dataset(str(out), "d", run_id=pred["run_id"])
    assert at.table("confusion").equals(confusion)


def _changed_twice(tmp_path):
    """Dataset ``t`` ingested, every file changed, ingested again, everything 2 h old: a
    vacuum with retain_hours 0 deletes the first run's frame parts and table files."""
    from tests.ingest._small import cfg, corpus, ingest

    files = corpus(tmp_path / "corpus", n=2)
    first = ingest(cfg(tmp_path))
    for f in files:
        write(f, sine(f=700, dur=0.3), 22050)
    ingest(cfg(tmp_path))
    _age(tmp_path / "out" / "t", 2)
    return Location(str(tmp_path / "out"), "t"), first


def _files(out) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*")
            if p.is_file() and "_lock" not in str(p.relative_to(out))}


def test_vacuum_over_a_table_written_anew_refuses_before_deleting_anything(tmp_path):
    """Review 12 finding 3: a stage table lost and written anew, shorter than the version its
    run recorded: the vacuum deleted frame parts and the clips table's old files, then failed
    in delta-rs on that table (not named) without writing its marker, so the older run then
    read as broken ("restore it from a copy") instead of vacuumed."""
    import datetime as dt
    import json
    import shutil

    import pyarrow as pa

    from audiopipe.store.records import RunRow
    from audiopipe.store.runs import append_run
    from audiopipe.store.tables import append

    loc, first = _changed_twice(tmp_path)
    for i in range(3):
        v = append(loc, "tempo", pa.table({"clip_id": [f"c{i}"], "bpm": [100.0 + i]}))
    now = dt.datetime.now(dt.UTC)

    def stage_row(run_id: str, version: int) -> RunRow:
        return RunRow(dataset="t", kind="stage", stage="beats", status="ok", run_id=run_id,
                      started=now, finished=now, table_versions=json.dumps({"tempo": version}))

    append_run(loc, stage_row("s1", v))
    shutil.rmtree(loc.table_uri("tempo"))
    v0 = append(loc, "tempo", pa.table({"clip_id": ["ghost"], "bpm": [1.0]}))  # anew
    assert v0 < v
    out = tmp_path / "out" / "t"
    _refused_over_tempo_anew(loc, out, v, first)

    # the remedy it names: the stage run again (its latest run now records the new table)
    append_run(loc, stage_row("s2", v0))
    r = vacuum(loc, retain_hours=0)
    assert r.parts and r.table_files["clips"] > 0
    with pytest.raises(DatasetNotFound, match="was vacuumed"):
        audiopipe.open_dataset(loc.root, "t", run_id=first["run_id"])


def _refused_over_tempo_anew(loc, out, v: int, first: dict) -> dict:
    """Assert a vacuum (dry or not) over ``tempo`` written anew refuses, naming table, version,
    run s1 and path, and touches nothing; the older ingest run still reads. The files."""
    from audiopipe.store.dataset import TableMissing
    from audiopipe.store.vacuum import VACUUM_MARKER

    before = _files(out)
    for dry in (True, False):
        with pytest.raises(TableMissing) as e:
            vacuum(loc, retain_hours=0, dry_run=dry)
        msg = str(e.value)
        assert f"table 'tempo' version {v}, read by run s1" in msg and "nothing deleted" in msg
        assert "written anew" in msg and loc.table_uri("tempo") in msg
    assert _files(out) == before and not (out / VACUUM_MARKER).exists()
    first_clips = audiopipe.open_dataset(loc.root, "t", run_id=first["run_id"]).table("clips")
    assert first_clips.num_rows == 2  # the older run still reads
    return before


def _tempo_run(loc, run_id: str, version: int, finished) -> None:
    """Record a successful ``beats`` stage run ``run_id`` that wrote ``tempo`` at ``version``."""
    import json

    from audiopipe.store.records import RunRow
    from audiopipe.store.runs import append_run

    append_run(loc, RunRow(dataset="t", kind="stage", stage="beats", status="ok", run_id=run_id,
                           started=finished, finished=finished,
                           table_versions=json.dumps({"tempo": version})))


def _tempo_anew(loc, n: int) -> int:
    """Lose table ``tempo`` and write it anew with ``n`` commits; returns its last version."""
    import shutil

    import pyarrow as pa

    from audiopipe.store.tables import append

    shutil.rmtree(loc.table_uri("tempo"))
    for _ in range(n):
        v = append(loc, "tempo", pa.table({"clip_id": ["ghost"], "bpm": [1.0]}))
    return v


@pytest.mark.parametrize("ids", [True, False], ids=["table_ids", "rows-without-table_ids"])
def test_vacuum_over_a_table_written_anew_with_a_log_as_long_refuses(tmp_path, monkeypatch, ids):
    """Review 13 finding 4: a stage table lost and written anew whose new log reaches the
    version its run recorded opened at that version (another table), so the vacuum went on and
    deleted frame parts and table files, though an open pinned to that run calls it broken.
    Told as the open tells it: by the table's metadata id in the run's row, or, in rows older
    than ``table_ids``, by the commit being made after the run finished."""
    import datetime as dt

    import pyarrow as pa

    import audiopipe.store.anew as anew
    from audiopipe.store.dataset import TableMissing
    from audiopipe.store.tables import append

    loc, first = _changed_twice(tmp_path)
    for i in range(3):
        v = append(loc, "tempo", pa.table({"clip_id": [f"c{i}"], "bpm": [100.0 + i]}))
    if not ids:  # (as code older than table_ids wrote the row; the rewrite is immediate here)
        monkeypatch.setattr(anew, "with_table_ids", lambda loc, row: row)
        monkeypatch.setattr(anew, "COMMIT_SKEW_S", 0.0)
    _tempo_run(loc, "s1", v, dt.datetime.now(dt.UTC))
    v0 = _tempo_anew(loc, v + 2)
    assert v0 > v
    with pytest.raises(TableMissing, match="written anew"):  # (what an open pinned to s1 says)
        audiopipe.open_dataset(loc.root, "t", run_id="s1").table("tempo")
    out = tmp_path / "out" / "t"
    before = _refused_over_tempo_anew(loc, out, v, first)
    if not ids:  # a rewrite within the clock-skew tolerance is not told: the vacuum goes on
        monkeypatch.setattr(anew, "COMMIT_SKEW_S", 3600.0)
        assert vacuum(loc, retain_hours=0, dry_run=True).parts
        assert _files(out) == before
        monkeypatch.setattr(anew, "COMMIT_SKEW_S", 0.0)

    # the remedy it names: the stage run again (its latest run now records the new table)
    _tempo_run(loc, "s2", v0, dt.datetime.now(dt.UTC))
    r = vacuum(loc, retain_hours=0)
    assert r.parts and r.table_files["clips"] > 0
    with pytest.raises(DatasetNotFound, match="was vacuumed"):
        audiopipe.open_dataset(loc.root, "t", run_id=first["run_id"])


def test_vacuum_tells_a_table_written_anew_by_each_kept_run_own_records(tmp_path):
    """The same version number recorded of the table before and after it was written anew
    (s1 of the old table, s2 of the new one): the records of s2 say the table is fine, those
    of s1 (kept, and an open pinned to it calls it broken) do not, so the vacuum refuses while
    it keeps s1, and goes on once it keeps only s2."""
    import datetime as dt

    import pyarrow as pa

    from audiopipe.store.dataset import TableMissing
    from audiopipe.store.tables import append

    loc, _ = _changed_twice(tmp_path)
    for i in range(3):
        v = append(loc, "tempo", pa.table({"clip_id": [f"c{i}"], "bpm": [100.0 + i]}))
    _tempo_run(loc, "s1", v, dt.datetime.now(dt.UTC))
    assert _tempo_anew(loc, v + 1) == v
    _tempo_run(loc, "s2", v, dt.datetime.now(dt.UTC))
    assert audiopipe.open_dataset(loc.root, "t").table("tempo").num_rows == v + 1
    with pytest.raises(TableMissing, match="written anew"):
        audiopipe.open_dataset(loc.root, "t", run_id="s1").table("tempo")
    out = tmp_path / "out" / "t"
    before = _files(out)
    with pytest.raises(TableMissing, match=f"table 'tempo' version {v}, read by run s1, cannot"):
        vacuum(loc, retain_hours=24)  # keeps s1 (s2 recorded the table as it is: not named)
    assert _files(out) == before
    r = vacuum(loc, retain_hours=0)  # keeps s2 only (the latest beats run)
    assert "s1" not in r.kept_runs and r.parts


def test_a_vacuum_failing_half_way_still_says_which_runs_it_vacuumed(tmp_path, monkeypatch):
    """Review 12 finding 3: the marker was written only at the end, so a vacuum that failed
    after deleting frame parts left the runs it had not kept reading as broken, not vacuumed."""
    from audiopipe.store import tables as T

    loc, first = _changed_twice(tmp_path)
    parts = _parts(tmp_path / "out")
    real = T._Table.vacuum

    def blip(self, *a, dry_run=True, **kw):
        if not dry_run:
            raise OSError("storage blip")
        return real(self, *a, dry_run=dry_run, **kw)

    monkeypatch.setattr(T._Table, "vacuum", blip)
    with pytest.raises(OSError, match="storage blip"):
        vacuum(loc, retain_hours=0)
    assert _parts(tmp_path / "out") < parts  # it had deleted the first run's frame parts
    with pytest.raises(DatasetNotFound, match="was vacuumed .* did not finish"):
        audiopipe.open_dataset(loc.root, "t", run_id=first["run_id"])
    monkeypatch.setattr(T._Table, "vacuum", real)
    assert sum(vacuum(loc, retain_hours=0).table_files.values()) > 0  # run again: finishes
    with pytest.raises(DatasetNotFound, match="frames are gone"):
        audiopipe.open_dataset(loc.root, "t", run_id=first["run_id"])
    assert audiopipe.open_dataset(loc.root, "t").table("clips").num_rows == 2

"""Run records and :func:`audiopipe.store.runs.recover` on real ingested datasets."""

import datetime as dt

import pyarrow as pa

import audiopipe
from audiopipe.stages import run_stage
from audiopipe.store.runs import recover
from audiopipe.store.tables import ERRORS_SCHEMA, append, read_table
from tests.audio_fixtures import sine, write
from tests.conftest import ingest_in_process, write_config


def _steps(loc):
    t = read_table(loc, "errors")
    return sorted(zip(t["step"].to_pylist(), t["run_id"].to_pylist(), strict=True))


def test_an_ingest_keeps_the_stages_errors_rows_and_drops_only_unfinished_ingest_rows(tmp_path):
    """recover() restored ``errors`` to the version the last ingest recorded, so the next ingest
    (even one with nothing to do, as ``audiopipe run`` makes before its stages) deleted every
    row a stage had appended since; the stage, skipped as unchanged, never recorded them again.
    """
    for i in range(2):
        write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 200 * i, dur=1.0), 22050)
    (tmp_path / "c" / "bad.wav").write_bytes(b"RIFF not really")
    config = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    first = ingest_in_process(config, "d")
    root = str(tmp_path / "out")
    ds = audiopipe.open_dataset(root, "d")
    victim = tmp_path / "c" / "0.wav"
    victim.rename(tmp_path / "away.wav")  # the stage cannot read this clip
    fp = run_stage(ds, "fingerprint")
    (tmp_path / "away.wav").rename(victim)  # back, unchanged (same bytes and mtime)
    assert fp["clips_failed"] == 1
    # a killed ingest's row (its run never recorded) and the stage's row
    dead = {**dict.fromkeys(ERRORS_SCHEMA.names), "run_id": "20990101T000000-dead",
            "uri": "x", "step": "decode", "error_type": "E", "message": "m",
            "time": dt.datetime.now(dt.UTC)}
    append(ds.location, "errors", pa.Table.from_pylist([dead], schema=ERRORS_SCHEMA))
    before = _steps(ds.location)
    assert ("fingerprint", fp["run_id"]) in before and ("decode", first["run_id"]) in before

    again = ingest_in_process(config, "d")  # nothing new: it publishes no errors rows
    assert again["status"] == "ok"
    after = _steps(ds.location)
    assert after == [s for s in before if s[1] != dead["run_id"]]
    shown = audiopipe.open_dataset(root, "d").table("errors")
    assert sorted(shown["step"].to_pylist()) == ["decode", "fingerprint"]
    # the stage, unchanged, is skipped: its error row is still what records the failure
    assert run_stage(audiopipe.open_dataset(root, "d"), "fingerprint")["skipped"]
    assert ("fingerprint", fp["run_id"]) in _steps(ds.location)
    assert recover(ds.location) == {}  # nothing left to undo: no commit


def test_a_reused_staged_shards_error_rows_are_the_publishing_runs_and_survive_recover(tmp_path):
    """An ingest killed after staging its shards; the next one reuses them and publishes their
    ``errors`` rows. Those carried the killed run's id: every open hid them (only rows of
    finished runs are shown), and a later killed run's row under that id made recover() delete
    them with it. They now carry the publishing run's id; recover() leaves ids it published."""
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    write(tmp_path / "c" / "0.wav", sine(f=300, dur=1.0), 22050)
    (tmp_path / "c" / "bad.wav").write_bytes(b"RIFF not really")
    cfg = load_config(write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}}))
    killed = plan_ingest(cfg, "d", kind="ingest")
    for s in killed.shards:
        extract_shard(s, killed.context)  # staged; the run dies before publishing
    plan = plan_ingest(cfg, "d", kind="ingest")
    done = publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    assert done["status"] == "ok"
    root = str(tmp_path / "out")
    loc = audiopipe.open_dataset(root, "d").location
    assert _steps(loc) == [("decode", done["run_id"])]
    shown = audiopipe.open_dataset(root, "d").table("errors")
    assert shown["uri"].to_pylist()[0].endswith("bad.wav")
    # a later killed run's row under an id the table already holds (as datasets published
    # before this change do): recover() leaves the published row
    old_id = {**shown.to_pylist()[0], "message": "a killed run's", "time": dt.datetime.now(dt.UTC)}
    append(loc, "errors", pa.Table.from_pylist([old_id], schema=ERRORS_SCHEMA))
    recover(loc)
    assert ("decode", done["run_id"]) in _steps(loc)


def test_two_runs_recorded_at_once_compact_runs_once_and_keep_each_row_once(tmp_path, monkeypatch):
    """Two stage runs finishing together when ``runs`` is due for compaction: both saw it due
    (forced here: each waits after its look for the other's), and delta-rs committed both
    OPTIMIZEs of the same files, every row then twice. One compacts; the other leaves it."""
    import threading

    from audiopipe.store import runs as R
    from audiopipe.store.location import Location
    from audiopipe.store.records import RunRow

    def row(i):
        now = dt.datetime.now(dt.UTC)
        return RunRow(run_id=f"r{i}", dataset="d", kind="stage", stage=f"s{i % 2}",
                      status="ok", started=now, finished=now)

    loc = Location(str(tmp_path), "d")
    for i in range(R.MAX_RUN_FILES):
        append(loc, "runs", RunRow.table([row(i)]))
    opened, seen = R.open_table, threading.local()
    barrier = threading.Barrier(2, timeout=60)

    def open_then_wait(*a, **k):
        t = opened(*a, **k)
        if not getattr(seen, "done", False):  # each thread's first look at runs
            seen.done = True
            barrier.wait()
        return t

    monkeypatch.setattr(R, "open_table", open_then_wait)
    errors = []

    def record(i):
        try:
            R.append_run(loc, row(100 + i))
        except Exception as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    ids = [r.run_id for r in R.read_runs(loc)]
    assert len(ids) == R.MAX_RUN_FILES + 2
    assert len(set(ids)) == len(ids)
    assert len(opened(loc, "runs").file_uris()) < R.MAX_RUN_FILES  # it was compacted


def test_a_compaction_lock_left_on_another_host_is_said_when_runs_piles_up(tmp_path, monkeypatch):
    """A ``_lock_runs`` ticket of a compaction that died on another host made every later
    compaction skip, silently, and ``runs`` grew by a file a run (review 10): past twice the
    limit each record warns, naming the ticket to remove."""
    import json
    import time
    import warnings

    import pytest

    from audiopipe.store import runs as R
    from audiopipe.store.location import Location
    from audiopipe.store.records import RunRow

    monkeypatch.setattr(R, "MAX_RUN_FILES", 3)
    loc = Location(str(tmp_path), "d")
    folder = tmp_path / "d" / R.COMPACT_LOCK
    folder.mkdir(parents=True)
    (folder / f"{1:012d}.json").write_text(json.dumps(
        {"pid": 4242, "host": "worker-7", "what": "compact runs", "since": time.time() - 86400}))

    def row(i):
        now = dt.datetime.now(dt.UTC)
        return RunRow(run_id=f"r{i}", dataset="d", kind="stage", stage="s", status="ok",
                      started=now, finished=now)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (none while a compaction may just be running)
        for i in range(2 * R.MAX_RUN_FILES):
            R.append_run(loc, row(i))
    with pytest.warns(RuntimeWarning, match=f"not compacted .*worker-7.*remove {folder}"):
        R.append_run(loc, row(99))

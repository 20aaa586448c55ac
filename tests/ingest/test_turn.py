"""An ingest turn (:mod:`audiopipe.ingest.turn`): no data published under a running stage,
but a turn with nothing to publish goes through."""

from __future__ import annotations

import json

import pytest

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, publish
from audiopipe.ingest.turn import ingest_turn
from audiopipe.store.location import Location
from audiopipe.store.lock import DatasetLocked, holder, stage_lock
from audiopipe.store.runs import read_runs
from tests.ingest._small import cfg, corpus, ingest


def _loc(tmp_path) -> Location:
    return Location(str(tmp_path / "out"), "t")


def test_a_turn_with_nothing_to_publish_goes_through_while_a_stage_runs(tmp_path):
    """An ingest with nothing new was refused while any stage ran: every scheduled turn of a
    long stage failed though it would publish no data. It now records its run (the data
    tables' versions unchanged), holding the dataset's lock from plan to publish."""
    corpus(tmp_path / "corpus", n=2)
    c = load_config(cfg(tmp_path))
    first = ingest(cfg(tmp_path))
    with stage_lock(_loc(tmp_path), "beats"):
        with ingest_turn(c, "t", stages_wait_s=0.0) as plan:
            assert not plan.changes_data and plan.diff.summary().startswith("0 new")
            assert holder(_loc(tmp_path))["what"] == "ingest"  # (no stage can start now)
            row = publish(plan, [])
    assert row["status"] == "ok"
    assert sum(r.kind == "ingest" for r in read_runs(_loc(tmp_path))) == 2
    data = ("clips", "features", "frames_index")
    now, before = json.loads(row["table_versions"]), json.loads(first["table_versions"])
    assert {t: now[t] for t in data} == {t: before[t] for t in data}


def test_a_turn_with_data_to_publish_is_refused_while_a_stage_runs(tmp_path):
    """New files under a running stage: refused naming the stage, before any work or run row;
    once the stage has ended the turn plans again and goes through."""
    files = corpus(tmp_path / "corpus", n=2)
    c = load_config(cfg(tmp_path))
    ingest(cfg(tmp_path))
    files[0].unlink()  # a removal is data too
    corpus(tmp_path / "corpus", n=3)
    (tmp_path / "corpus" / "tone_0.wav").unlink()
    n_runs = len(read_runs(_loc(tmp_path)))
    with stage_lock(_loc(tmp_path), "beats"), pytest.raises(
            DatasetLocked, match=r"stage runs are running: beats \(pid .*no ingest while a stage"):
        with ingest_turn(c, "t", stages_wait_s=0.0, allow_removals=True):
            pytest.fail("a turn with data to publish ran under a stage")
    assert len(read_runs(_loc(tmp_path))) == n_runs and holder(_loc(tmp_path)) is None
    with ingest_turn(c, "t", stages_wait_s=0.0, allow_removals=True) as plan:
        assert plan.changes_data
        publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    assert audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").num_rows == 2


def test_a_turn_under_a_stage_counts_the_clips_of_the_version_it_records(tmp_path):
    """While a stage runs the plan does not recover: a killed ingest's clips commit stays the
    newest version, and the turn's ``runs`` row counted its clips (3 for 2; review 11)."""
    import pyarrow as pa

    from audiopipe.store.tables import append

    corpus(tmp_path / "corpus", n=2)
    ingest(cfg(tmp_path))
    loc = _loc(tmp_path)
    ghost = audiopipe.open_dataset(loc.root, "t").table("clips").slice(0, 1)
    for col, value in (("uri", "/gone/killed.wav"), ("clip_id", "killed")):
        ghost = ghost.set_column(ghost.schema.get_field_index(col), col, pa.array([value]))
    append(loc, "clips", ghost)  # the commit of an ingest killed before its runs row
    with stage_lock(loc, "beats"), ingest_turn(load_config(cfg(tmp_path)), "t",
                                               stages_wait_s=0.0) as plan:
        row = publish(plan, [])
    assert audiopipe.open_dataset(loc.root, "t").table("clips").num_rows == 2
    assert row["clips_total"] == 2


def test_an_ingest_over_a_data_table_written_anew_is_refused(tmp_path):
    """A data table lost and written anew as far as its recorded version (a killed run): the
    next ingest recorded the new table's id beside the old version, and the dataset read its
    rows as healthy (review 11). It is refused as a lost table is."""
    import shutil

    from audiopipe.store import TableMissing
    from audiopipe.store.tables import append

    corpus(tmp_path / "corpus", n=2)
    ingest(cfg(tmp_path))
    corpus(tmp_path / "corpus", n=3)
    row = ingest(cfg(tmp_path))
    loc = _loc(tmp_path)
    v = json.loads(row["table_versions"])["features"]
    feats = audiopipe.open_dataset(loc.root, "t").table("features")
    shutil.rmtree(loc.table_uri("features"))
    for _ in range(v + 1):
        append(loc, "features", feats.slice(0, 1))
    with pytest.raises(TableMissing, match="'features' version .* written anew"):
        ingest(cfg(tmp_path))
    assert audiopipe.open_dataset(loc.root, "t").missing_tables() == {"features": v}


def test_a_stage_lock_left_on_another_host_refuses_an_ingest_only_for_a_lease(
    tmp_path, monkeypatch
):
    """A stage run that died on another host left its stage lock: every ingest with data to
    publish was refused until a person removed the folder. Refused while its heartbeat is
    younger than the lease (the error says when it is taken over), it goes through after."""
    import time

    import audiopipe.store.lease as lease
    from audiopipe.store.lock import STAGE_LOCK_PREFIX

    monkeypatch.setattr(lease, "LEASE_S", 3.0)
    corpus(tmp_path / "corpus", n=2)
    c = load_config(cfg(tmp_path))
    loc = _loc(tmp_path)
    folder = loc.join(STAGE_LOCK_PREFIX + "beats")
    loc.fs.makedirs(folder, exist_ok=True)
    who = {"pid": 4242, "host": "elsewhere", "what": "stage beats", "since": time.time(),
           "lease_s": 3.0}
    (tmp_path / "out" / "t" / f"{STAGE_LOCK_PREFIX}beats" / f"{1:012d}.json").write_text(
        json.dumps(who))
    with pytest.raises(DatasetLocked, match=r"beats \(pid 4242 on elsewhere, since .*heartbeat "
                                            r".*taken over once its heartbeat is 3 s old"):
        with ingest_turn(c, "t", stages_wait_s=0.0):
            pytest.fail("a turn with data to publish ran under a live stage")
    time.sleep(3.5)
    with ingest_turn(c, "t", stages_wait_s=0.0) as plan:
        assert plan.changes_data
        row = publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    assert row["status"] == "ok" and row["clips_total"] == 2
    # the dead stage's lock was taken over and released: its run, if alive, cannot commit
    fence = json.loads((tmp_path / "out" / "t" / f"{STAGE_LOCK_PREFIX}beats" /
                        f"{2:012d}.json").read_text())
    assert "judged this stage's run dead" in fence["what"]
    assert (tmp_path / "out" / "t" / f"{STAGE_LOCK_PREFIX}beats" / f"{2:012d}.released").exists()


def test_an_ingest_whose_lock_was_taken_over_commits_nothing(tmp_path):
    """A run that lost its lease (another process took the dataset's lock over: a later
    ticket) went on to publish under the new holder. ``publish`` checks the lease before its
    first commit."""
    from pathlib import Path

    from audiopipe.store.lease import LeaseLost
    from audiopipe.store.lock import LOCK_DIR

    corpus(tmp_path / "corpus", n=2)
    c = load_config(cfg(tmp_path))
    loc = _loc(tmp_path)
    with ingest_turn(c, "t", stages_wait_s=0.0) as plan:
        results = [extract_shard(s, plan.context) for s in plan.shards]
        folder = Path(loc.join(LOCK_DIR))
        n = max(int(p.stem) for p in folder.glob("*.json"))
        (folder / f"{n + 1:012d}.json").write_text(json.dumps(
            {"pid": 4242, "host": "elsewhere", "what": "ingest", "since": 0, "lease_s": 120}))
        with pytest.raises(LeaseLost, match=f"{n:012d}.json is no longer held .*taken over"):
            publish(plan, results)
    assert read_runs(loc) == [] and not (tmp_path / "out" / "t" / "tables" / "clips").exists()

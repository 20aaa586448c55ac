import datetime as dt
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.store import DatasetNotFound
from audiopipe.store.tables import ERRORS_SCHEMA, append
from tests.audio_fixtures import sine, write
from tests.conftest import write_config


@pytest.fixture()
def ingested(tmp_path):
    for i in range(3):
        write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 100 * i, dur=0.4 + 0.1 * i), 22050)
    (tmp_path / "c" / "bad.wav").write_bytes(b"RIFF not really")
    cfg = load_config(write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}}))
    plan = plan_ingest(cfg, "d")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(tmp_path / "out"), "d")


def _err(run_id, step):
    return {
        "run_id": run_id,
        "uri": "x",
        "clip_id": None,
        "step": step,
        "error_type": "E",
        "message": "m",
        "time": dt.datetime.now(dt.UTC),
    }


def test_frames_and_frames_dask_agree(ingested):
    ds = ingested
    idx = ds.table("frames_index").to_pandas()
    lazy = ds.frames_dask("rms")
    assert lazy.shape == (int(idx.n_frames.sum()), 1)
    whole = np.asarray(lazy)
    stops = np.cumsum(idx.n_frames.to_numpy())
    for cid, start, stop in zip(idx.clip_id, stops - idx.n_frames.to_numpy(), stops, strict=True):
        np.testing.assert_array_equal(whole[start:stop], ds.frames(cid, "rms"))
    assert set(ds.features_available()) >= {"mfcc", "rms"}
    with pytest.raises(KeyError, match="not in dataset"):
        ds.frames("nope", "rms")
    # an unknown feature names the stored ones (it was a bare KeyError('nope'))
    with pytest.raises(KeyError, match="no frame feature 'nope' .*has: .*mfcc.*rms"):
        ds.frames_dask("nope")


def test_frames_dask_follows_frames_index_order_over_many_parts(tmp_path):
    """Clips ingested run after run are stored in parts named by hashes: the lazy array was
    in (part, start) order, not the documented ``frames_index`` order, so slicing it by
    ``n_frames`` gave other clips' frames."""
    for k in range(4):
        for i in range(2):
            write(tmp_path / "c" / f"new{k}_{i}.wav", sine(f=500 + 100 * k + 7 * i,
                                                           dur=0.3 + 0.2 * i), 22050)
        _ingest(tmp_path)
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    idx = ds.table("frames_index").to_pandas()
    assert idx.part.nunique() > 1 and len(idx) == 8
    whole = np.asarray(ds.frames_dask("mfcc"))
    stops = np.cumsum(idx.n_frames.to_numpy())
    assert whole.shape[0] == stops[-1]
    for cid, start, stop in zip(idx.clip_id, stops - idx.n_frames.to_numpy(), stops, strict=True):
        np.testing.assert_array_equal(whole[start:stop], ds.frames(cid, "mfcc"), err_msg=cid)


def test_errors_show_stage_rows_but_not_unfinished_ingest_rows(ingested):
    ds = ingested
    assert ds.table("errors").num_rows == 1
    rows = [_err("fingerprint-20260101", "fingerprint"), _err("20990101T000000-dead", "decode")]
    append(ds.location, "errors", pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA))
    steps = sorted(
        audiopipe.open_dataset(ds.location.root, "d").table("errors").column("step").to_pylist()
    )
    assert steps == ["decode", "fingerprint"]  # the ingest's own decode error + the stage's row


def test_open_unknown_dataset(tmp_path):
    with pytest.raises(DatasetNotFound, match="audiopipe ingest nope"):
        audiopipe.open_dataset(str(tmp_path), "nope")


def test_clips_come_in_content_order_with_any_columns(ingested):
    whole = ingested.table("clips")
    assert whole.num_rows == 3
    keys = list(zip(whole["content_hash"].to_pylist(), whole["clip_id"].to_pylist(),
                    strict=True))
    assert keys == sorted(keys)
    # a subset of columns is read in the same order, without the sort keys
    sub = ingested.table("clips", ["uri"])
    assert sub.column_names == ["uri"]
    assert sub["uri"].to_pylist() == whole["uri"].to_pylist()


def _ingest(tmp_path):
    cfg = load_config(write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}}))
    plan = plan_ingest(cfg, "d")
    return publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


def test_pinned_run_hides_read_and_decode_errors_of_later_runs(tmp_path):
    """A dataset pinned to an older run shows none of the errors later ingests found, whatever
    their step: ``read`` (a dangling link) as ``decode`` (text named .wav)."""
    write(tmp_path / "c" / "good.wav", sine(dur=0.3), 22050)
    run1 = _ingest(tmp_path)["run_id"]
    (tmp_path / "c" / "dangling.wav").symlink_to(tmp_path / "c" / "gone.wav")
    (tmp_path / "c" / "text.wav").write_text("not audio\n" * 10)
    _ingest(tmp_path)
    latest = audiopipe.open_dataset(str(tmp_path / "out"), "d").table("errors")
    assert sorted(latest.column("step").to_pylist()) == ["decode", "read"]
    old = audiopipe.open_dataset(str(tmp_path / "out"), "d", run_id=run1).table("errors")
    assert old.num_rows == 0, old.to_pylist()


def test_a_pinned_table_missing_on_storage_raises_naming_it(ingested):
    """A table the pinned run recorded but gone from storage (deleted, lost in a copy) is a
    broken dataset, not an empty table: reading it names the table and its version."""
    import shutil

    from audiopipe.store import TableMissing

    root = ingested.location.root
    v = ingested.versions["features"]
    shutil.rmtree(f"{root}/d/tables/features")
    shutil.rmtree(f"{root}/d/tables/frames_index")
    ds = audiopipe.open_dataset(root, "d")
    assert ds.table("clips").num_rows == 3  # what is there still reads
    with pytest.raises(TableMissing, match=f"'features' version {v}"):
        ds.table("features")
    with pytest.raises(TableMissing, match="'frames_index'"):
        ds.features_available()
    cid = ds.table("clips")["clip_id"][0].as_py()
    with pytest.raises(TableMissing, match="'frames_index'"):
        ds.frames(cid, "rms")
    assert ds.missing_tables() == {"features": v, "frames_index": ds.versions["frames_index"]}
    shutil.rmtree(f"{root}/d/tables/clips")
    shutil.rmtree(f"{root}/d/tables/errors")
    ds = audiopipe.open_dataset(root, "d")
    with pytest.raises(TableMissing, match="'clips'"):
        ds.load_audio(cid)
    with pytest.raises(TableMissing, match="'errors'"):
        ds.table("errors")


def test_an_errors_only_dataset_gives_empty_tables_with_their_schema(tmp_path):
    """Every file failed: the ingest tables have no version yet, and read as 0 rows with their
    columns and types (a query over them works), the asked columns in the asked order."""
    import duckdb

    from audiopipe.store.records import ClipRow, FeaturesRow, FramesIndexRow

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.wav").write_bytes(b"RIFF not really")
    _ingest(tmp_path)
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    assert ds.versions.get("clips") is None and ds.table("errors").num_rows == 1
    clips = ds.table("clips", columns=["uri", "clip_id", "duration_s"])
    assert clips.num_rows == 0 and clips.column_names == ["uri", "clip_id", "duration_s"]
    assert clips.schema.field("duration_s").type == ClipRow.schema().field("duration_s").type
    assert duckdb.sql("select count(*) from clips where duration_s > 1").fetchall() == [(0,)]
    for name, record in [("clips", ClipRow), ("features", FeaturesRow),
                         ("frames_index", FramesIndexRow)]:
        t = ds.table(name)
        assert t.num_rows == 0 and t.schema.names == record.fixed_schema().names, name
    assert ds.to_pandas("features")["n_frames"].sum() == 0
    with pytest.raises(KeyError, match="'clips' has no column 'durationn'.*duration_s"):
        ds.table("clips", ["clip_id", "durationn"])


def test_a_bad_column_name_is_a_clear_error_naming_the_columns(ingested):
    for name in ["clips", "features", "frames_index", "errors", "runs"]:
        have = ingested.table(name).column_names
        with pytest.raises(KeyError, match=f"table {name!r} has no column 'nope'") as e:
            ingested.table(name, [have[0], "nope"])
        assert have[-1] in str(e.value) and "__fragment" not in str(e.value)
        assert ingested.table(name, [have[-1], have[0]]).column_names == [have[-1], have[0]]


def test_a_clip_whose_name_holds_two_colons_decodes_back(tmp_path):
    # fsspec reads "::" as a chain of URLs: "take 1::mix.wav" opened "take 1" (not there),
    # so every stage that decodes the clip failed on it; ingest had taken it in
    from audiopipe.stages._common import read_bytes

    y = sine(f=440, dur=0.5)
    write(tmp_path / "c" / "take 1::mix.wav", y, 22050)
    cfg = load_config(write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}}))
    plan = plan_ingest(cfg, "d")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    (cid,) = ds.table("clips")["clip_id"].to_pylist()
    z, sr = ds.load_audio(cid, sr=22050)
    assert sr == 22050 and len(z) == len(y) and np.corrcoef(z, y)[0, 1] > 0.99
    assert read_bytes(ds, ds.clip_uri(cid)) == (tmp_path / "c" / "take 1::mix.wav").read_bytes()


def _stage_dataset(tmp_path):
    from tests.stages.mir_data import build_dataset

    t = np.arange(16000) / 16000
    files = {f"c{i}.wav": ((0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32),
                           16000) for i in range(2)}
    return build_dataset(tmp_path, files, sample_rate=16000)


def test_a_stage_table_is_read_as_its_last_successful_run_left_it(tmp_path):
    """Commits of a stage run killed before its ``runs`` row (rows appended to a table, a new
    table) are not seen by a default open; a run-pinned open sees no table written after it;
    a table older than any recorded stage run (stage code before the runner) still reads."""
    from audiopipe.stages import run_stage
    from audiopipe.store.tables import append

    ds = _stage_dataset(tmp_path)
    root = ds.location.root
    append(ds.location, "legacy_tags", pa.table({"clip_id": ["x"], "tag": ["old"]}))
    beats = run_stage(ds, "beats")
    tempo = ds.table("tempo")
    assert tempo.num_rows == 2  # the writer reads its own write
    # a killed tempo-writing run: its commits, no runs row
    ghost = tempo.slice(0, 1).to_pandas().assign(clip_id="GHOST")
    append(ds.location, "tempo", pa.Table.from_pandas(ghost, schema=tempo.schema,
                                                      preserve_index=False))
    append(ds.location, "killed_tags", pa.table({"clip_id": ["y"], "tag": ["ghost"]}))
    now = audiopipe.open_dataset(root, "d")
    assert sorted(now.table("tempo")["clip_id"].to_pylist()) == sorted(
        tempo["clip_id"].to_pylist())
    assert now.versions["tempo"] == beats["tables"]["tempo"]
    assert "killed_tags" not in now.table_names()
    with pytest.raises(KeyError, match="no table 'killed_tags'"):
        now.table("killed_tags")
    assert now.table("legacy_tags")["tag"].to_pylist() == ["old"]
    # a later stage run: seen by a default open, not by one pinned to the beats run
    fp = run_stage(now, "fingerprint")
    assert audiopipe.open_dataset(root, "d").versions["fingerprints"] == fp["tables"][
        "fingerprints"]
    at_beats = audiopipe.open_dataset(root, "d", run_id=beats["run_id"])
    assert "fingerprints" not in at_beats.table_names()
    with pytest.raises(KeyError, match=f"no table 'fingerprints' at run {beats['run_id']}"):
        at_beats.table("fingerprints")
    assert at_beats.table("tempo").num_rows == 2


def test_a_run_pinned_table_whose_version_was_vacuumed_says_so(tmp_path):
    """Pinned to a stage run the vacuum kept (the latest of its stage), another stage's table
    is read as that stage's run before it left it: the vacuum keeps that version too. When its
    files are gone anyway (a vacuum by code that kept only what each kept run recorded),
    reading the table names the vacuum (it was a raw FileNotFoundError on a parquet file);
    files lost from a default open's version make the dataset broken, as a lost table does."""
    from audiopipe.stages import run_stage
    from audiopipe.store import TableMissing
    from audiopipe.store.status import status_rows
    from audiopipe.store.tables import open_table
    from audiopipe.store.vacuum import vacuum

    ds = _stage_dataset(tmp_path)
    first = run_stage(ds, "fingerprint")
    beats = run_stage(ds, "beats")
    run_stage(ds, "fingerprint", {"f_sd": 4.0})
    root = ds.location.root
    at = audiopipe.open_dataset(root, "d", run_id=beats["run_id"])
    assert at.versions["fingerprints"] == first["tables"]["fingerprints"]
    before = at.table("fingerprints")
    assert before.num_rows > 0
    vacuum(ds.location, retain_hours=0)
    at = audiopipe.open_dataset(root, "d", run_id=beats["run_id"])
    assert at.table("tempo").num_rows == 2
    assert at.table("fingerprints").equals(before)  # the kept beats run reads it: kept
    for uri in open_table(ds.location, "fingerprints", first["tables"]["fingerprints"]
                          ).file_uris():
        os.remove(uri)  # what the older vacuum did
    with pytest.raises(TableMissing, match=f"'fingerprints' as of run {beats['run_id']} is "
                                           f"gone: run {first['run_id']} .* was vacuumed"):
        at.table("fingerprints")
    now = audiopipe.open_dataset(root, "d")
    assert now.table("fingerprints").num_rows > 0 and now.missing_tables() == {}
    for uri in open_table(ds.location, "tempo", beats["tables"]["tempo"]).file_uris():
        os.remove(uri)  # lost in a copy
    assert now.missing_tables() == {"tempo": beats["tables"]["tempo"]}
    with pytest.raises(TableMissing, match="'tempo' version .* has data files missing"):
        now.table("tempo")
    assert not status_rows(root, ["d"])[0]["healthy"]


def test_a_table_older_than_runs_reads_as_it_was_before_later_runs_wrote_it(tmp_path):
    """Review 6 item 3: a table written by stage code older than the runner, then rewritten
    by a recorded run, was gone from an open pinned to a run before that (a KeyError; it read
    before the rewrite). Such a table, and one with a killed run's later commit, reads as its
    last commit before the first recorded stage run left it, and the vacuum keeps that."""
    from audiopipe.stages import run_stage
    from audiopipe.store.vacuum import vacuum

    ds = _stage_dataset(tmp_path)
    root, loc = ds.location.root, ds.location
    append(loc, "tempo", pa.table({"clip_id": ["legacy"], "tempo_bpm": [99.0]}))
    append(loc, "legacy_tags", pa.table({"clip_id": ["x"], "tag": ["old"]}))
    a = run_stage(ds, "fingerprint")
    assert audiopipe.open_dataset(root, "d", run_id=a["run_id"]).table("tempo").num_rows == 1
    run_stage(audiopipe.open_dataset(root, "d"), "beats")  # rewrites tempo
    append(loc, "legacy_tags", pa.table({"clip_id": ["y"], "tag": ["killed"]}))  # no runs row
    for _ in range(2):  # before and after a vacuum that keeps only the latest runs
        at_a = audiopipe.open_dataset(root, "d", run_id=a["run_id"])
        assert "tempo" in at_a.table_names()
        assert at_a.table("tempo")["clip_id"].to_pylist() == ["legacy"]
        now = audiopipe.open_dataset(root, "d")
        assert sorted(now.table("tempo")["clip_id"].to_pylist()) != ["legacy"]
        assert now.table("legacy_tags")["tag"].to_pylist() == ["old"]
        vacuum(loc, retain_hours=0)


def test_a_run_pinned_open_hides_errors_of_stage_runs_finished_after_it(tmp_path):
    from audiopipe.stages import run_stage

    ds = _stage_dataset(tmp_path)
    beats = run_stage(ds, "beats")
    fp = run_stage(ds, "fingerprint")
    rows = [_err(fp["run_id"], "fingerprint"), _err(beats["run_id"], "beats")]
    append(ds.location, "errors", pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA))
    root = ds.location.root
    now = audiopipe.open_dataset(root, "d").table("errors")
    assert sorted(now["step"].to_pylist()) == ["beats", "fingerprint"]
    at = audiopipe.open_dataset(root, "d", run_id=beats["run_id"]).table("errors")
    assert at["run_id"].to_pylist() == [beats["run_id"]]


def test_a_dataset_under_a_path_with_a_space_is_healthy(tmp_path):
    """delta-rs percent-encodes the file URIs of a table (``with%20space``): the check that a
    version's data files are on storage found none of them, so every dataset under such a
    path was reported broken (review 8)."""
    from audiopipe.store.status import status_rows

    ds = _stage_dataset(tmp_path / "my data")
    root = ds.location.root
    assert " " in root
    ds = audiopipe.open_dataset(root, "d")
    assert ds.table("clips").num_rows == 2
    assert ds.missing_tables() == {}
    assert status_rows(root, ["d"])[0]["healthy"]
    os.remove(ds.delta("features").file_uris()[0].replace("%20", " "))
    assert list(audiopipe.open_dataset(root, "d").missing_tables()) == ["features"]


def test_a_recorded_version_no_longer_in_the_log_is_a_missing_table(tmp_path):
    """A stage table made anew with fewer versions than its last run recorded (the folder lost,
    a killed run wrote it again): status crashed on delta-rs's error and reading the table
    raised it; both say the table is missing (review 8)."""
    import shutil

    from audiopipe.stages import run_stage
    from audiopipe.store import TableMissing
    from audiopipe.store.status import status_rows

    ds = _stage_dataset(tmp_path)
    run_stage(ds, "fingerprint")
    v = run_stage(ds, "fingerprint", force=True)["tables"]["fingerprints"]
    assert v >= 1
    shutil.rmtree(ds.location.table_uri("fingerprints"))
    append(ds.location, "fingerprints", pa.table({"clip_id": ["ghost"]}))  # its version 0
    root = ds.location.root
    row = status_rows(root, ["d"])[0]
    assert not row["healthy"]
    assert audiopipe.open_dataset(root, "d").missing_tables() == {"fingerprints": v}
    with pytest.raises(TableMissing, match=f"'fingerprints' version {v}"):
        audiopipe.open_dataset(root, "d").table("fingerprints")


def _made_anew_as_long(ds) -> int:
    """Run fingerprint twice, then lose its folder and write it anew up to the version the
    last run recorded (a killed run wrote it again); returns that version."""
    import shutil

    from audiopipe.stages import run_stage

    run_stage(ds, "fingerprint")
    v = run_stage(ds, "fingerprint", force=True)["tables"]["fingerprints"]
    assert v >= 1
    shutil.rmtree(ds.location.table_uri("fingerprints"))
    for _ in range(v + 1):  # its versions 0..v
        append(ds.location, "fingerprints", pa.table({"clip_id": ["ghost"]}))
    return v


def test_a_table_made_anew_up_to_the_recorded_version_is_a_missing_table(tmp_path):
    """A stage table made anew whose new log reaches the version its last run recorded was
    read as that version (the ghost rows), and status said healthy (review 9): the table's
    metadata id in the run's row tells it is another table."""
    from audiopipe.store import TableMissing
    from audiopipe.store.status import status_rows

    ds = _stage_dataset(tmp_path)
    v = _made_anew_as_long(ds)
    root = ds.location.root
    assert not status_rows(root, ["d"])[0]["healthy"]
    d = audiopipe.open_dataset(root, "d")
    assert d.missing_tables() == {"fingerprints": v}
    with pytest.raises(TableMissing, match=f"'fingerprints' version {v}.*written anew"):
        d.table("fingerprints")
    assert d.table("clips").num_rows == 2  # (the other tables read as before)


def test_a_table_made_anew_is_told_by_time_for_rows_without_table_ids(tmp_path, monkeypatch):
    """Rows written before ``table_ids`` existed: the commit at the recorded version was made
    after the recording run finished (the clock-skew tolerance set to 0 here, the rewrite
    being immediate), so it is another table; the untouched tables are healthy."""
    import audiopipe.store.anew as anew
    from audiopipe.store import TableMissing

    monkeypatch.setattr(anew, "with_table_ids", lambda loc, row: row)  # (as older code wrote)
    monkeypatch.setattr(anew, "COMMIT_SKEW_S", 0.0)
    ds = _stage_dataset(tmp_path)
    v = _made_anew_as_long(ds)
    d = audiopipe.open_dataset(ds.location.root, "d")
    assert all(r.get("table_ids") is None for r in d.table("runs").to_pylist())
    assert d.missing_tables() == {"fingerprints": v}
    with pytest.raises(TableMissing):
        d.table("fingerprints")
    monkeypatch.setattr(anew, "COMMIT_SKEW_S", 3600.0)  # (a rewrite within the tolerance)
    d = audiopipe.open_dataset(ds.location.root, "d")
    assert d.missing_tables() == {}


def test_load_audio_refuses_a_clips_table_written_anew_as_the_other_reads_do(ingested):
    """``clips`` lost and written anew at its path, at the version the run recorded, with
    the same clip ids naming other files: ``table("clips")`` says it is missing, but
    ``load_audio`` read it unchecked and decoded the other file. Both raise the same error."""
    import shutil

    from deltalake import write_deltalake

    from audiopipe.store import TableMissing

    root, loc = ingested.location.root, ingested.location
    clips = ingested.table("clips")
    cid, uri = clips["clip_id"][0].as_py(), clips["uri"][0].as_py()
    other = write(Path(uri).parent.parent / "other.wav", sine(f=3000, dur=0.3), 22050)
    v = ingested.versions["clips"]
    shutil.rmtree(loc.table_uri("clips"))
    ghost = clips.set_column(clips.column_names.index("uri"), "uri",
                             pa.array([str(other)] * clips.num_rows))  # fmt: skip
    for _ in range(v + 1):  # its versions 0..v, as a killed run wrote it again
        write_deltalake(loc.table_uri("clips"), ghost, mode="overwrite")
    ds = audiopipe.open_dataset(root, "d")
    with pytest.raises(TableMissing, match=f"'clips' version {v}.*written anew") as read:
        ds.table("clips")
    with pytest.raises(TableMissing) as loaded:
        audiopipe.open_dataset(root, "d").load_audio(cid)
    assert str(loaded.value) == str(read.value)
    with pytest.raises(TableMissing):
        ds.clip_uri(cid)

"""The runner: runs rows (schema, lineage), skips, versions, dataset defaults, old datasets."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import audiopipe
from audiopipe.stages import run_stage
from audiopipe.stages.runner import code_version, params_hash
from audiopipe.store.lock import DatasetLocked, dataset_lock
from audiopipe.store.records import RunRow
from audiopipe.store.status import status_rows
from audiopipe.store.tables import table_version
from tests.stages.mir_data import build_dataset

SR = 16000


def _files(n: int = 3, sr: int = SR) -> dict:
    t = np.arange(2 * sr) / sr
    out = {}
    for i in range(n):
        y = (0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32)
        y[:: sr // 2] += 0.8  # a click every 0.5 s
        out[f"c{i}.wav"] = (y, sr)
    return out


@pytest.fixture()
def small(tmp_path):
    return build_dataset(tmp_path, _files(), sample_rate=SR)


def _runs(ds) -> list[dict]:
    return [r for r in ds.table("runs").to_pylist() if r["kind"] == "stage"]


def test_a_stage_run_row_has_its_lineage(small):
    rep = run_stage(small, "beats", {"start_bpm": 100})
    (row,) = _runs(small)
    assert row["status"] == "ok" and row["stage"] == "beats" and row["run_id"] == rep["run_id"]
    params = json.loads(row["params"])
    assert params["sr"] == SR and params["start_bpm"] == 100.0  # the dataset's rate, not 22050
    assert params["hop_length"] == 512  # the dataset recipe's hop
    assert row["params_hash"] == params_hash(params)
    from audiopipe.stages.beats import Beats

    assert row["code_version"] == code_version(Beats())
    inputs = json.loads(row["input_versions"])
    assert {k: inputs[k] for k in ("clips", "features", "frames_index")} == {
        k: small.versions[k] for k in ("clips", "features", "frames_index")
    }
    outputs = json.loads(row["table_versions"])
    assert outputs["tempo"] == table_version(small.location, "tempo") == rep["tables"]["tempo"]
    assert outputs["beats"] == table_version(small.location, "beats")
    timings = json.loads(row["timings"])
    assert {"process", "write"} <= set(timings) and row["wall_seconds"] >= sum(timings.values()) * 0.9
    art = json.loads(row["artifacts"])
    assert art["plots"] == rep["plots"] and art["folder"].endswith(rep["run_id"])
    assert row["files_processed"] == 3 and row["clips_total"] == 3
    # opening the dataset at the stage run gives what it read and what it wrote
    at = audiopipe.open_dataset(small.location.root, "d", run_id=rep["run_id"])
    assert at.versions["clips"] == small.versions["clips"] and at.versions["tempo"] == outputs["tempo"]
    # status lists it
    st = status_rows(small.location.root, ["d"])[0]
    assert st["stages"]["beats"]["run_id"] == rep["run_id"]
    assert st["last_runs"][-1]["kind"] == "stage"


def test_skip_needs_same_params_code_inputs_and_untouched_outputs(small):
    first = run_stage(small, "beats")
    assert run_stage(small, "beats")["skipped"].startswith(f"unchanged since run {first['run_id']}")
    other = run_stage(small, "beats", {"tightness": 300})
    assert other["skipped"] is None and other["clips_processed"] == 3  # new params: every clip
    again = run_stage(small, "beats")
    assert again["skipped"] is None  # the last run had other params: its outputs are not these
    assert run_stage(small, "beats")["skipped"]
    # someone else rewrote the stage's table: not skipped
    small.write_table("tempo", small.table("tempo").slice(0, 1), mode="overwrite")
    redo = run_stage(small, "beats")
    assert redo["skipped"] is None and small.table("tempo").num_rows == 3
    forced = run_stage(small, "beats", force=True)
    assert forced["skipped"] is None and forced["clips_processed"] == 3
    # every run kept its own table version: the first one is still readable
    from audiopipe.store.tables import read_table

    old = read_table(small.location, "tempo", version=first["tables"]["tempo"])
    assert old.num_rows == 3


def test_one_run_of_a_stage_at_a_time(small):
    with dataset_lock(small.location, "stage beats", name="_lock_stage_beats"):
        with pytest.raises(DatasetLocked, match="locked by another stage beats"):
            run_stage(small, "beats")
    assert run_stage(small, "beats")["skipped"] is None


def test_a_stage_does_not_start_while_an_ingest_holds_the_dataset(small, tmp_path):
    """Stages took only their own lock: one ran while an ingest, rebuild or vacuum held the
    dataset (and a vacuum may delete files a stage is about to commit). Another stage's run
    still does not hold it back."""
    import subprocess
    import sys

    hold = ("import sys, time\n"
            "from audiopipe.store.location import Location\n"
            "from audiopipe.store.lock import dataset_lock\n"
            "with dataset_lock(Location(sys.argv[1], 'd'), 'ingest'):\n"
            "    print('holding', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", hold, small.location.root],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "holding"
        with pytest.raises(DatasetLocked, match=rf"locked by ingest \(pid {p.pid} .*stage beats "
                                                "did not start"):
            run_stage(small, "beats")
    finally:
        p.kill()
        p.wait()
    assert not _runs(small)  # refused before any work: no run recorded
    with dataset_lock(small.location, "stage fingerprint", name="_lock_stage_fingerprint"):
        assert run_stage(small, "beats")["clips_processed"] == 3


def test_a_failed_run_is_recorded_and_leaves_no_table(small):
    from audiopipe.stages._common import StageInputError

    with pytest.raises(StageInputError):
        run_stage(small, "classify", {"target": "nope"})
    (row,) = _runs(small)
    assert row["status"] == "failed" and "nope" in row["message"] and row["params_hash"]
    assert "predictions" not in small.table_names()


def test_a_dataset_written_before_the_stage_columns_still_opens(small, tmp_path):
    from deltalake import write_deltalake

    old_schema = pa.schema([f for f in RunRow.schema() if f.name not in (
        "stage", "params", "params_hash", "input_versions", "model_id", "artifacts", "timings")])
    runs = small.table("runs").select(old_schema.names).cast(old_schema)
    write_deltalake(small.location.table_uri("runs"), runs, mode="overwrite",
                    schema_mode="overwrite")
    ds = audiopipe.open_dataset(small.location.root, "d")
    assert "stage" not in ds.table("runs").column_names
    assert status_rows(small.location.root, ["d"])[0]["stages"] == {}
    rep = run_stage(ds, "beats")
    t = audiopipe.open_dataset(small.location.root, "d").table("runs").to_pylist()
    t.sort(key=lambda r: r["started"])
    assert t[0]["stage"] is None and t[0]["kind"] == "ingest"  # old rows: null
    assert t[-1]["stage"] == "beats" and t[-1]["run_id"] == rep["run_id"]
    assert run_stage(ds, "beats")["skipped"]


def test_runs_table_is_compacted_and_keeps_every_row(tmp_path):
    import datetime as dt

    from audiopipe.store.location import Location
    from audiopipe.store.runs import MAX_RUN_FILES, append_run, stage_runs
    from audiopipe.store.tables import open_table

    loc = Location(str(tmp_path), "d")
    now = dt.datetime.now(dt.UTC)
    for i in range(MAX_RUN_FILES + 5):
        append_run(loc, RunRow(run_id=f"r{i:03d}", dataset="d", kind="stage", stage="beats",
                               status="ok", started=now, finished=now + dt.timedelta(seconds=i)))
    assert len(open_table(loc, "runs").file_uris()) <= 6
    assert [r.run_id for r in stage_runs(loc, "beats")] == [
        f"r{i:03d}" for i in range(MAX_RUN_FILES + 5)
    ]


def test_vacuum_keeps_the_latest_run_of_every_stage(small):
    from audiopipe.store.tables import read_table
    from audiopipe.store.vacuum import vacuum

    beats = run_stage(small, "beats")
    fp = run_stage(small, "fingerprint")
    run_stage(small, "beats", {"tightness": 300})
    last_beats = run_stage(small, "beats", {"tightness": 200})
    report = vacuum(small.location, retain_hours=0)
    assert {fp["run_id"], last_beats["run_id"]} <= set(report.kept_runs)
    assert beats["run_id"] not in report.kept_runs
    assert read_table(small.location, "fingerprints", version=fp["tables"]["fingerprints"]).num_rows
    assert read_table(small.location, "tempo", version=last_beats["tables"]["tempo"]).num_rows == 3


def test_a_vacuum_does_not_make_an_unchanged_stage_run_again(small):
    """A vacuum that removes files of a stage's table commits VACUUM START/END to its log: the
    version moved, and the next unchanged run of the stage redid every clip."""
    from audiopipe.store.vacuum import vacuum

    run_stage(small, "beats")
    forced = run_stage(small, "beats", force=True)  # the first run's files: unreferenced
    report = vacuum(small.location, retain_hours=0)
    assert report.table_files["tempo"] >= 1
    assert table_version(small.location, "tempo") > forced["tables"]["tempo"]
    again = run_stage(audiopipe.open_dataset(small.location.root, "d"), "beats")
    assert again["skipped"] and again["run_id"] == forced["run_id"]
    # a commit that changes rows after the vacuum still counts
    small.write_table("tempo", small.table("tempo").slice(0, 1), mode="overwrite")
    redo = run_stage(audiopipe.open_dataset(small.location.root, "d"), "beats")
    assert redo["skipped"] is None and redo["clips_processed"] == 3


def test_run_stages_called_directly_refuses_missing_stage_files_before_any_work(tmp_path):
    """A library call of ``run_stages`` (no CLI, no flow) checked the parameters but not the
    files they name: a missing events file failed late, inside the stage. The request is
    checked completely first (parameters, then files, as the CLI does), each file named by
    its key; the files checked are this run's (an override over the config's)."""
    from audiopipe.config import ConfigError, load_config
    from audiopipe.stages.runner import run_stages
    from tests.conftest import write_config

    gone = tmp_path / "share" / "events.csv"
    cfg = load_config(write_config(tmp_path, {"d": {"source": str(tmp_path / "audio"), "stages": {
        "segment": {"events": "share/events.csv"}, "recommend": {"listens": "share/l.csv"},
        "beats": {}}}}))
    ran = []

    def runner(root, dataset, name, params, **kw):
        ran.append((name, params))
        return {}

    with pytest.raises(FileNotFoundError) as info:
        run_stages(cfg, "d", runner=runner)
    assert sorted(str(info.value).splitlines()) == [
        f"datasets.d.stages.recommend.listens: no such file or folder: {tmp_path / 'share' / 'l.csv'}",
        f"datasets.d.stages.segment.events: no such file or folder: {gone}",
    ]
    with pytest.raises(FileNotFoundError, match="segment.events"):
        run_stages(cfg, "d", ["beats", "segment"])  # the in-process runner: no dataset opened
    assert ran == [] and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"datasets\.d\.stages\.segment\.mdoe: unknown"):
        run_stages(cfg, "d", ["segment"], {"mdoe": "novelty"}, runner=runner)  # parameters first
    here = tmp_path / "events.csv"
    here.write_text("path,onset_s,offset_s,label\n")
    run_stages(cfg, "d", ["segment"], {"events": str(here)}, runner=runner)
    run_stages(cfg, "d", ["beats"], runner=runner)  # (files of stages not run are not checked)
    assert ran == [("segment", {"events": str(here)}), ("beats", {})]


def test_a_clip_settled_by_an_errors_row_is_not_recomputed_each_run(tmp_path, monkeypatch):
    """Segment gives a silent recording no rows but a NoSound errors row; the runner took a
    clip without rows for not done and recomputed the silent clip in every run that had
    anything new. An unchanged one is now done; a changed one (a new clip id) and every clip
    after a stage version bump are computed again."""
    from audiopipe.stages.segment import Segment
    from audiopipe.stages.segment.periodic import synthetic_pcg

    sr = 4000

    def pcg(seed):
        return synthetic_pcg(duration=10.0, bpm=70 + 5 * seed, seed=seed)[:2]

    def nosound(ds):
        errs = audiopipe.open_dataset(ds.location.root, "d").table("errors").to_pylist()
        return [e["clip_id"] for e in errs if e["step"] == "segment"
                and e["error_type"] == "NoSound"]

    ds = build_dataset(tmp_path, {"p0.wav": pcg(0), "quiet.wav": (np.zeros(5 * sr), sr)},
                       sample_rate=sr)
    first = run_stage(ds, "segment", {"mode": "periodic"})
    assert (first["clips_processed"], first["clips_failed"]) == (2, 1)
    (silent,) = nosound(ds)
    ds = build_dataset(tmp_path, {"p1.wav": pcg(1)}, sample_rate=sr)  # something new
    again = run_stage(ds, "segment", {"mode": "periodic"})
    assert (again["clips_processed"], again["clips_failed"]) == (1, 0)
    assert nosound(ds) == [silent]
    ds = build_dataset(tmp_path, {"quiet.wav": (np.zeros(6 * sr), sr)}, sample_rate=sr)
    changed = run_stage(ds, "segment", {"mode": "periodic"})
    assert (changed["clips_processed"], changed["clips_failed"]) == (1, 1)
    assert len(set(nosound(ds)) - {silent}) == 1
    monkeypatch.setattr(Segment, "version", Segment.version + "-next")
    bumped = run_stage(ds, "segment", {"mode": "periodic"})
    assert (bumped["clips_processed"], bumped["clips_failed"]) == (3, 1)


def test_run_stage_refuses_missing_stage_files_before_any_work(small, tmp_path):
    """``run_stage`` (one stage, the entry point notebooks use) did not check the files its
    parameters name, as ``run_stages`` does: a missing events file failed inside the stage,
    after it had waited for the dataset's lock, without naming the key. It is now refused
    first, worded as ``run_stages`` words it, even while an ingest holds the dataset."""
    gone = tmp_path / "share" / "events.csv"
    with dataset_lock(small.location, "ingest"), pytest.raises(FileNotFoundError) as info:
        run_stage(small, "segment", {"mode": "supervised", "events": "share/events.csv"},
                  base_dir=str(tmp_path))
    assert str(info.value) == f"datasets.d.stages.segment.events: no such file or folder: {gone}"
    assert not _runs(small)
    from audiopipe.stages.checks import missing_param_files

    gone.parent.mkdir()
    gone.write_text("path,onset_s,offset_s,label\n")  # there now: left to the stage to read
    assert missing_param_files("d", "segment", {"events": "share/events.csv"}, str(tmp_path)) == []
    assert missing_param_files("d", "segment", {"events": "s3://b/e.csv"}) == []  # not local
    assert missing_param_files("d", "segment", {"points": ""}) == []  # a call's "not set"


def test_a_rebuild_with_another_recipe_recomputes_every_clip(tmp_path):
    """Whether a clip stage's run continued the last one ignored the feature recipe: after
    ``audiopipe rebuild`` with another hop, clips with rows (and a silent clip settled by
    its NoSound row) kept results computed from the old recipe's frames. A recipe change
    now recomputes every clip; the same recipe again continues incrementally."""
    from audiopipe.stages.segment.periodic import synthetic_pcg

    sr = 4000
    files = {"p0.wav": synthetic_pcg(duration=10.0, bpm=70, seed=0)[:2],
             "quiet.wav": (np.zeros(5 * sr), sr)}
    hop256 = {"n_fft": 1024, "hop_length": 256, "compute": {"rms": {}}}
    ds = build_dataset(tmp_path, files, sample_rate=sr)
    first = run_stage(ds, "segment", {"mode": "periodic"})
    assert (first["clips_processed"], first["clips_failed"]) == (2, 1)
    ds = build_dataset(tmp_path, files, sample_rate=sr, features=hop256, kind="rebuild")
    assert ds.run["recipe_hash"] != _runs(ds)[-1]["recipe_hash"]
    again = run_stage(ds, "segment", {"mode": "periodic"})
    assert (again["clips_processed"], again["clips_failed"]) == (2, 1)
    seg = audiopipe.open_dataset(ds.location.root, "d").table("segments", ["run_id"])
    assert set(seg["run_id"].to_pylist()) == {again["run_id"]}
    ds = build_dataset(tmp_path, {"p1.wav": synthetic_pcg(duration=10.0, bpm=75, seed=1)[:2]},
                       sample_rate=sr, features=hop256)
    more = run_stage(ds, "segment", {"mode": "periodic"})
    assert (more["clips_processed"], more["clips_failed"]) == (1, 0)


def test_the_recipe_of_a_stage_run_that_recorded_none_is_that_of_the_ingest_it_read():
    """A stage run row without a recipe (older rows) is taken to have computed on the recipe
    of the ingest or rebuild that wrote the ``frames_index`` version it read; unknown: None
    (the runner then recomputes every clip)."""
    import datetime as dt

    from audiopipe.stages._setup import recipe_of

    t = [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in range(6)]

    def ingest(run_id, fi, recipe, end):
        return RunRow(run_id=run_id, dataset="d", kind="ingest", status="ok", recipe_hash=recipe,
                      finished=end, table_versions=json.dumps({"frames_index": fi}))

    def stage(fi, start, recipe=None):
        return RunRow(run_id="s", dataset="d", kind="stage", status="ok", stage="segment",
                      recipe_hash=recipe, started=start, finished=start,
                      input_versions=json.dumps({"frames_index": fi}))

    runs = [ingest("a", 1, "A", t[0]), ingest("b", 2, "B", t[2]), ingest("c", 1, "C", t[4])]
    assert recipe_of(stage(1, t[1]), runs) == "A"  # (not "C": made anew after the run)
    assert recipe_of(stage(2, t[3]), runs) == "B"
    assert recipe_of(stage(2, t[3], recipe="Z"), runs) == "Z"  # recorded: that one
    assert recipe_of(stage(7, t[5]), runs) is None
    assert recipe_of(stage(None, t[5]), runs) is None


def test_a_stage_on_a_dataset_opened_before_an_ingest_runs_on_the_clips_of_now(tmp_path):
    """The lock covers only a running stage: a dataset opened before an ingest published (a
    notebook's ``ds``) took its lock afterwards and ran on the clips of before, in a run that
    finished after the ingest. Once it holds its lock the stage opens the dataset again; an
    open pinned to a run id is left as asked."""
    files = _files(3)
    first = build_dataset(tmp_path, dict(list(files.items())[:2]), sample_rate=SR)
    opened_before = audiopipe.open_dataset(first.location.root, "d")
    pinned = audiopipe.open_dataset(first.location.root, "d", run_id=first.run["run_id"])
    now = build_dataset(tmp_path, files, sample_rate=SR)  # an ingest: 3 clips
    assert opened_before.table("clips").num_rows == 2
    rep = run_stage(opened_before, "fingerprint")
    assert rep["clips_processed"] == 3
    fp = audiopipe.open_dataset(now.location.root, "d").table("fingerprints", ["clip_id"])
    assert set(fp["clip_id"].to_pylist()) == set(now.table("clips")["clip_id"].to_pylist())
    (row,) = [r for r in _runs(now) if r["run_id"] == rep["run_id"]]
    assert json.loads(row["input_versions"])["clips"] == now.versions["clips"]
    # the caller's ds is brought up to date: it reads what the stage wrote (review 11: the
    # stage wrote through another open and ``ds`` read the previous run's table)
    assert opened_before.versions["fingerprints"] == rep["tables"]["fingerprints"]
    assert opened_before.table("clips").num_rows == 3
    assert run_stage(pinned, "beats")["clips_processed"] == 2


def test_a_turn_with_nothing_new_leaves_the_callers_dataset_as_it_is(tmp_path):
    """An ingest that published nothing new (a scheduled turn) between ``open_dataset`` and
    ``run_stage`` made the stage write through another open: the caller's ``ds`` then read the
    previous run's table (review 11)."""
    files = _files(2)
    first = build_dataset(tmp_path, files, sample_rate=SR)
    run_stage(first, "beats")
    ds = audiopipe.open_dataset(first.location.root, "d")
    from audiopipe.config import parse_config
    from audiopipe.ingest import plan_ingest, publish
    from tests.stages.mir_data import SMALL_RECIPE

    folder = tmp_path / "corpus"
    cfg = parse_config({"storage": str(tmp_path / "out"), "datasets": {"d": {
        "source": str(folder), "labels": {"path": str(folder / "labels.csv"), "on": "path"},
        "sample_rate": SR, "features": SMALL_RECIPE}}})
    plan = plan_ingest(cfg, "d")
    assert not plan.changes_data, plan.diff.summary()
    again = publish(plan, [])  # nothing new: a runs row only
    assert again["run_id"] != ds.run["run_id"]
    rep = run_stage(ds, "beats", force=True)
    assert ds.versions["tempo"] == rep["tables"]["tempo"]
    assert ds.table("tempo").num_rows == 2


def test_run_stages_runs_each_stage_on_the_clips_of_now(tmp_path):
    """``run_stages`` in process opens the dataset once: an ingest that waited for stage 1
    published in the gap, and stage 2 ran on the dataset of before (its new clip missing)."""
    from audiopipe.config import parse_config
    from audiopipe.stages.runner import run_stages

    files = _files(3)
    first = dict(list(files.items())[:2])
    build_dataset(tmp_path, first, sample_rate=SR)
    cfg = parse_config({"storage": str(tmp_path / "out"), "datasets": {"d": {
        "source": str(tmp_path / "corpus"), "sample_rate": SR}}})
    ingested = []

    def log(msg):
        if msg.startswith("fingerprint:") and not ingested:  # stage 1 done, its lock released
            ingested.append(build_dataset(tmp_path, files, sample_rate=SR))

    rep = run_stages(cfg, "d", ["fingerprint", "beats"], log=log)
    assert ingested and rep["fingerprint"]["clips_processed"] == 2
    assert rep["beats"]["clips_processed"] == 3
    tempo = audiopipe.open_dataset(str(tmp_path / "out"), "d").table("tempo", ["clip_id"])
    assert len(set(tempo["clip_id"].to_pylist())) == 3


def test_a_stage_table_made_anew_as_long_as_recorded_reruns_the_stage(small):
    """A stage table lost and written anew up to the version its last run recorded had that
    version, so the rerun was skipped as unchanged and kept the ghost rows (review 9); it
    reruns, and the dataset reads its rows again."""
    import shutil

    from audiopipe.store.tables import append

    run_stage(small, "fingerprint")
    v = run_stage(small, "fingerprint", force=True)["tables"]["fingerprints"]
    shutil.rmtree(small.location.table_uri("fingerprints"))
    for _ in range(v + 1):
        append(small.location, "fingerprints", pa.table({"clip_id": ["ghost"]}))
    root = small.location.root
    rep = run_stage(audiopipe.open_dataset(root, small.name), "fingerprint")
    assert rep["skipped"] is None
    ds = audiopipe.open_dataset(root, small.name)
    assert ds.missing_tables() == {}
    assert "ghost" not in ds.table("fingerprints", ["clip_id"])["clip_id"].to_pylist()
    assert run_stage(ds, "fingerprint")["skipped"]  # (and the next unchanged run is skipped)


def test_a_stage_resolves_its_parameters_on_the_dataset_another_thread_brought_up_to_date(
    tmp_path, monkeypatch
):
    """Review 12 finding 6: parameters were resolved on ``ds`` before the lock, and again only
    when ``latest(ds)`` changed ``ds.versions`` from a copy taken under the lock. Another
    thread's stage run on the same ``ds`` (a notebook running two at once) had brought ``ds``
    up to date in place first: nothing was resolved again, and beats ran after a rebuild to
    hop 256 with the previous recipe's hop_length 512, recorded as current."""
    import threading

    import audiopipe.stages.runner as runner
    from audiopipe.stages._setup import latest

    old = {"n_fft": 1024, "hop_length": 512, "compute": {"rms": {}}}
    new = {**old, "hop_length": 256}
    ds = build_dataset(tmp_path, _files(2), sample_rate=SR, features=old)
    monkeypatch.setattr(runner, "DATASET_WAIT_S", 300.0)  # (the rebuild below holds it a while)
    resolved = threading.Event()
    real = runner._resolve

    def resolve(*a, **kw):
        out = real(*a, **kw)
        resolved.set()
        return out

    monkeypatch.setattr(runner, "_resolve", resolve)
    reps: dict = {}
    with dataset_lock(ds.location, "rebuild"):  # a rebuild holds the dataset
        t = threading.Thread(target=lambda: reps.update(beats=run_stage(ds, "beats")))
        t.start()
        assert resolved.wait(60)  # beats resolved on ds, and waits for the dataset
        build_dataset(tmp_path, _files(2), sample_rate=SR, features=new, kind="rebuild")
        latest(ds)  # what the other thread's stage does first under its lock
        assert ds.table("frames_index", ["hop_length"])["hop_length"][0].as_py() == 256
    t.join(300)
    assert not t.is_alive() and reps["beats"]["skipped"] is None
    (row,) = [r for r in _runs(ds) if r["run_id"] == reps["beats"]["run_id"]]
    assert json.loads(row["params"])["hop_length"] == 256
    assert json.loads(row["input_versions"])["frames_index"] == ds.versions["frames_index"]

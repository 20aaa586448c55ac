import json
import os
import time
from pathlib import Path

import pytest

from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from flows.cli import main
from tests.audio_fixtures import sine, write
from tests.conftest import ingest_in_process, write_config


def test_validate_reports_key_path_and_exits_2(tmp_path, capsys):
    cfg = write_config(tmp_path, {"d": {"source": "x", "sample_rate": -5}})
    assert main(["--config", str(cfg), "validate"]) == 2
    err = capsys.readouterr().err
    assert "datasets.d.sample_rate: must be > 0, got -5" in err


def test_validate_ok(tmp_path, capsys):
    cfg = write_config(tmp_path, {"d": {"source": "x", "schedule": "0 * * * *"}})
    assert main(["--config", str(cfg), "validate"]) == 0
    assert "ok  d:" in capsys.readouterr().out


def test_demo_corpus_command(tmp_path, capsys):
    assert main(["demo-corpus", str(tmp_path / "demo"), "--n-per-class", "2"]) == 0
    assert "wrote 12 clips" in capsys.readouterr().out
    assert (tmp_path / "demo" / "labels.csv").read_text().count("\n") == 13


def test_status_after_an_ingest_without_prefect(tmp_path, capsys):
    for i in range(3):
        write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 100 * i, dur=0.5), 22050)
    (tmp_path / "c" / "bad.wav").write_bytes(b"RIFFnope")
    cfg_path = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}, "e": {"source": "y"}})
    cfg = load_config(cfg_path)
    plan = plan_ingest(cfg, "d")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    assert main(["--config", str(cfg_path), "status", "--json"]) == 0
    rows = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["e"]["published"] is False
    d = rows["d"]
    assert d["clips"] == 3 and d["errors"] == 1 and d["errors_last_run"] == 1
    assert d["hours"] == pytest.approx(1.5 / 3600, rel=1e-3)
    assert d["last_runs"][-1]["files_processed"] == 3
    assert main(["--config", str(cfg_path), "status"]) == 0
    out = capsys.readouterr().out
    assert "d: 3 clips" in out and "e: not ingested yet" in out


def test_status_says_broken_and_exits_1_when_a_pinned_table_is_missing(tmp_path, capsys):
    import shutil

    write(tmp_path / "c" / "a.wav", sine(dur=0.3), 22050)
    cfg_path = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    row = ingest_in_process(cfg_path, "d")
    v = json.loads(row["table_versions"])["frames_index"]
    shutil.rmtree(tmp_path / "out" / "d" / "tables" / "frames_index")
    assert main(["--config", str(cfg_path), "status"]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and f"frames_index (version {v})" in out
    assert main(["--config", str(cfg_path), "status", "--json"]) == 1
    (r,) = json.loads(capsys.readouterr().out)
    assert r["healthy"] is False and r["missing_tables"] == {"frames_index": v}


def test_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    cfg = write_config(tmp_path, {"d": {"source": "x"}})
    assert main(["--config", str(cfg), "status", "nope"]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err or True


def test_vacuum_command_dry_run_then_real(tmp_path, capsys):
    write(tmp_path / "c" / "a.wav", sine(f=300, dur=0.5), 22050)
    cfg_path = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    cfg = load_config(cfg_path)
    for kind in ("ingest", "rebuild"):
        ingest_in_process(cfg, "d", kind=kind)
    frames = tmp_path / "out" / "d" / "frames"
    assert len(list(frames.iterdir())) == 2
    old = time.time() - 2 * 3600  # an unreferenced part is kept for an hour, whatever the retention
    for p in (tmp_path / "out" / "d").rglob("*"):
        os.utime(p, (old, old))
    args = ["--config", str(cfg_path), "vacuum", "d", "--retain-hours", "0"]
    assert main([*args, "--dry-run"]) == 0
    assert "d: would remove" in capsys.readouterr().out
    assert len(list(frames.iterdir())) == 2
    assert main(args) == 0
    assert "and 1 frame parts" in capsys.readouterr().out
    assert len(list(frames.iterdir())) == 1
    assert main(["--config", str(cfg_path), "vacuum", "d", "--retain-hours", "-1"]) == 1
    assert "retain_hours" in capsys.readouterr().err


def test_a_missing_file_of_one_dataset_stops_only_the_runs_that_read_it(tmp_path, capsys):
    """b's labels and events on an unmounted share refused every command for every dataset
    (validation runs before each): now validate warns, a is served, b's runs are refused
    before any work, naming the key."""
    write(tmp_path / "c" / "a.wav", sine(f=300, dur=0.5), 22050)
    share = tmp_path / "share"  # not mounted
    cfg = write_config(tmp_path, {
        "a": {"source": str(tmp_path / "c")},
        "b": {"source": str(share / "audio"), "labels": {"path": str(share / "labels.csv")},
              "stages": {"segment": {"events": str(share / "events.csv")}}},
    })
    ingest_in_process(cfg, "a")
    labels = f"datasets.b.labels.path: no such file: {share / 'labels.csv'}"
    events = f"datasets.b.stages.segment.events: no such file or folder: {share / 'events.csv'}"
    assert main(["--config", str(cfg), "validate"]) == 0
    out, err = capsys.readouterr()
    assert "ok  a:" in out and "ok  b:" in out
    assert err.splitlines() == [f"warning: {labels}", f"warning: {events}"]
    assert main(["--config", str(cfg), "status"]) == 0
    assert "a: 1 clips" in capsys.readouterr().out
    assert main(["--config", str(cfg), "ingest", "a", "-q"]) == 0  # (nothing new: no Prefect)
    capsys.readouterr()
    for cmd, lines in ((["ingest", "b"], [labels]), (["rebuild", "b"], [labels]),
                       (["run", "b"], [labels, events]), (["stage", "segment", "b"], [events])):
        assert main(["--config", str(cfg), *cmd, *(["-q"] if cmd[0] != "stage" else [])]) == 1
        assert capsys.readouterr().err.strip() == "audiopipe: FileNotFoundError: " + "\n".join(
            lines), cmd
    assert not (tmp_path / "out" / "b").exists()  # before any work


# ----------------------------------------------------------------------------- stages


@pytest.fixture(autouse=True)
def _no_prefect_api(monkeypatch, tmp_path):
    """These commands run in-process: no Prefect API (flow tests may have exported one)."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """A 12-clip demo, ingested in-process, with three quick stages declared."""
    from audiopipe.demo import make_demo_corpus

    root = tmp_path_factory.mktemp("cli_demo")
    demo = make_demo_corpus(root / "demo", n_per_class=2)
    cfg = write_config(
        root,
        {
            "d": {
                "source": "demo",
                "labels": {"path": "demo/labels.csv", "on": "path"},
                "stages": {"beats": {}, "fingerprint": {}, "retrieve": {"views": ["timbre"]}},
            }
        },
    )
    ingest_in_process(cfg, "d")
    return cfg, demo


def test_stage_help_is_rendered_from_the_declaration(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["stage", "segment", "--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert "mode (supervised | novelty | periodic | heart; default supervised)" in out
    assert "events (path; default —)" in out and "--set KEY=VALUE" in out
    with pytest.raises(SystemExit):
        main(["stage", "--help"])
    assert "transcribe" in capsys.readouterr().out


def test_bad_set_is_refused_before_any_work(small_demo, capsys):
    cfg, _ = small_demo
    before = _stage_rows(cfg)
    assert main(["--config", str(cfg), "stage", "segment", "d", "--set", "mdoe=novelty"]) == 2
    err = capsys.readouterr().err
    assert "datasets.d.stages.segment.mdoe: unknown parameter (did you mean mode?)" in err
    assert main(["--config", str(cfg), "stage", "beats", "d", "--set", "tightness=tight"]) == 2
    assert "datasets.d.stages.beats.tightness: must be a number, got 'tight'" in capsys.readouterr().err
    assert _stage_rows(cfg) == before


def _stage_rows(cfg) -> list[dict]:
    import audiopipe

    ds = audiopipe.open_dataset(str(cfg.parent / "out"), "d")
    return [r for r in ds.table("runs").to_pylist() if r["kind"] == "stage"]


def test_stage_runs_in_process_are_recorded_skipped_and_listed(small_demo, capsys):
    cfg, _ = small_demo
    assert main(["--config", str(cfg), "stage", "beats", "d"]) == 0
    out = capsys.readouterr().out
    assert out.strip().startswith("beats") and "skipped" not in out
    assert main(["--config", str(cfg), "stage", "beats", "d"]) == 0
    assert "skipped: unchanged since run beats-" in capsys.readouterr().out
    assert main(["--config", str(cfg), "stage", "beats", "d", "--force", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)["beats"]
    assert rep["skipped"] is None and rep["clips_processed"] == 12
    rows = _stage_rows(cfg)
    assert [r["stage"] for r in rows][-2:] == ["beats", "beats"] and rows[-1]["status"] == "ok"
    assert main(["--config", str(cfg), "status", "d"]) == 0
    assert f"{rows[-1]['run_id']}  stage beats" in capsys.readouterr().out


def test_identify_and_similar_answer_many_files_as_a_table(small_demo, tmp_path, capsys):
    import pandas as pd
    import soundfile as sf

    cfg, demo = small_demo
    assert main(["--config", str(cfg), "run", "d", "--no-stages", "-q"]) == 0  # nothing to ingest
    assert main(["--config", str(cfg), "stage", "fingerprint", "d"]) == 0
    assert main(["--config", str(cfg), "stage", "retrieve", "d"]) == 0
    capsys.readouterr()
    qdir = tmp_path / "q"
    qdir.mkdir()
    sources = sorted(
        p for d in ("chirp", "tone") for p in (demo / d).iterdir() if p.suffix in (".wav", ".flac")
    )[:4]
    for i, f in enumerate(sources):
        y, sr = sf.read(f)
        sf.write(qdir / f"q{i}.wav", y[: int(1.5 * sr)], sr)
    (qdir / "junk.wav").write_text("not audio")
    out = tmp_path / "answers.csv"
    assert main(["--config", str(cfg), "identify", str(qdir), "-d", "d", "--out", str(out)]) == 0
    ans = pd.read_csv(out)
    assert len(ans) == 5 and ans["error"].notna().sum() == 1
    found = ans.dropna(subset=["clip_id"])
    assert len(found) == 4 and all(
        Path(u).name == sources[int(Path(q).stem[1:])].name
        for q, u in zip(found["query"], found["uri"], strict=True)
    )
    pq = tmp_path / "near.parquet"
    glob = str(qdir / "q*.wav")
    assert main(["--config", str(cfg), "similar", glob, "-d", "d", "-k", "2", "--out", str(pq)]) == 0
    near = pd.read_parquet(pq)
    assert len(near) == 8 and set(near["rank"]) == {1, 2} and near["uri"].notna().all()


def test_unchanged_ingest_and_run_start_no_prefect(small_demo):
    import subprocess
    import sys

    cfg, _ = small_demo
    assert main(["--config", str(cfg), "run", "d", "-q"]) == 0  # whatever was not run yet
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(cfg.parent / "prefect-home")
    cmd = [sys.executable, "-X", "importtime", "-m", "flows.cli", "--config", str(cfg), "run", "d"]
    p = subprocess.run([*cmd, "-q"], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    assert "prefect" not in imported and "distributed" not in imported
    assert "0 new, 0 changed, 0 removed, 12 unchanged" in p.stdout
    assert p.stdout.count("skipped: unchanged since run") == 3


def test_ingest_refuses_to_empty_a_dataset_and_names_the_flag(tmp_path, capsys):
    """An unmounted share: `ingest` exits 1 naming --allow-removals and the dataset key; with
    the flag the removal goes through. A new dataset whose source is empty is an error too."""
    files = [write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 100 * i, dur=0.3), 22050) for i in range(2)]
    (tmp_path / "empty").mkdir()
    cfg_path = write_config(
        tmp_path, {"d": {"source": str(tmp_path / "c")}, "e": {"source": str(tmp_path / "empty")}}
    )
    ingest_in_process(cfg_path, "d")
    for f in files:
        f.unlink()
    capsys.readouterr()
    assert main(["--config", str(cfg_path), "ingest", "d", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "remove 2 of its 2 clips" in err and "--allow-removals" in err
    assert "datasets.d.max_removed_share" in err
    assert main(["--config", str(cfg_path), "ingest", "d", "--quiet", "--allow-removals"]) == 0
    assert "2 removed" in capsys.readouterr().out
    assert main(["--config", str(cfg_path), "ingest", "e", "--quiet"]) == 1
    assert "matched no audio file" in capsys.readouterr().err


def test_status_and_identify_import_only_what_they_need(small_demo):
    """Quick commands (issue 11: status <= 1 s, identify <= 1.5 s) stay quick by importing
    nothing they do not use: a second command reads the recipe check's verdict from the cache
    (no features code, no scipy), and neither pandas nor pyarrow.compute nor Prefect loads."""
    import subprocess
    import sys

    cfg, demo = small_demo
    assert main(["--config", str(cfg), "stage", "fingerprint", "d"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(cfg.parent / "prefect-home")
    query = sorted((demo / "tone").iterdir())[0]

    def imports(*args: str) -> tuple[set[str], str]:
        cmd = [sys.executable, "-X", "importtime", "-m", "flows.cli", "--config", str(cfg), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           cwd=Path(__file__).resolve().parents[1])
        assert p.returncode == 0, p.stderr[-3000:]
        names = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
        return names, p.stdout

    status, out = imports("status", "d")
    assert "d: 12 clips" in out
    never = {"pandas", "prefect", "distributed", "sklearn"}
    unwanted = status & (never | {"scipy", "audiopipe.features", "pyarrow.compute"})
    assert not unwanted
    identify, out = imports("identify", str(query), "-d", "d")
    assert query.name in out and "confidence" in out
    unwanted = identify & (never | {"scipy.ndimage", "pyarrow.compute"})
    assert not unwanted


# ------------------------------------------------------- bad arguments: one clear line


@pytest.mark.parametrize("k", ["0", "-3", "two"])
def test_similar_k_must_be_a_positive_whole_number(k, capsys):
    """`-k 0` printed nothing and exited 1, as if no clip were similar."""
    with pytest.raises(SystemExit) as info:
        main(["similar", "-d", "d", "-k", k, "q.wav"])
    assert info.value.code == 2
    assert f"argument -k: must be a whole number >= 1, got {k!r}" in capsys.readouterr().err


@pytest.mark.parametrize("hours", ["inf", "nan"])
def test_vacuum_retain_hours_must_be_finite(hours, tmp_path, capsys):
    """`--retain-hours inf` was a raw OverflowError traceback; nan passed the >= 0 check."""
    cfg = write_config(tmp_path, {"d": {"source": "x"}})
    assert main(["--config", str(cfg), "vacuum", "d", "--retain-hours", hours]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"audiopipe: ValueError: retain_hours: must be a finite number >= 0, got {hours}"


@pytest.mark.parametrize("n", ["0", "-2"])
def test_demo_corpus_needs_a_clip_per_class_before_writing_anything(n, tmp_path, capsys):
    """`--n-per-class 0` made the folders, then an IndexError."""
    out = tmp_path / "demo"
    assert main(["demo-corpus", str(out), "--n-per-class", n]) == 1
    assert capsys.readouterr().err.strip() == (
        f"audiopipe: ValueError: n_per_class: must be >= 1, got {n}")
    assert not out.exists()


def test_status_on_a_damaged_table_log_names_the_table_in_one_line(tmp_path, capsys):
    """A torn Delta commit file gave a 39-line backtrace that named no table."""
    write(tmp_path / "c" / "a.wav", sine(f=300, dur=0.5), 22050)
    cfg = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    ingest_in_process(load_config(cfg), "d")
    log = tmp_path / "out" / "d" / "tables" / "clips" / "_delta_log"
    last = sorted(log.glob("*.json"))[-1]
    last.write_text(last.read_text()[:-40] + "garbage\n")
    assert main(["--config", str(cfg), "status", "d"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"audiopipe: cannot read table 'clips' of dataset 'd' "
                          f"({tmp_path / 'out' / 'd' / 'tables' / 'clips'}): "), err


def test_identify_a_missing_file_says_so(small_demo, tmp_path, capsys):
    """It said "not a readable audio file (System error.)"."""
    cfg, _ = small_demo
    missing = tmp_path / "nonexist.wav"
    assert main(["--config", str(cfg), "identify", str(missing), "-d", "d"]) == 1
    assert capsys.readouterr().err.strip() == f"audiopipe: FileNotFoundError: no such file: {missing}"


def test_a_query_path_that_exists_is_taken_as_written(small_demo, tmp_path, capsys):
    """'Album [2020]/a.wav' was read as a glob ([2020]: one of 2 or 0), matched nothing and
    was dropped without a word; a pattern that matches nothing is named, not dropped."""
    from flows.cli_lookup import _queries

    album = tmp_path / "Album [2020]"
    album.mkdir()
    for f in (album / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"):
        f.write_bytes(b"RIFF")
    a, b, c = str(album / "a.wav"), str(tmp_path / "b.wav"), str(tmp_path / "c.wav")
    assert _queries([b, a]) == [b, a]
    assert _queries([str(tmp_path / "[bc].wav"), a]) == [b, c, a]  # a glob still expands
    nothing = str(tmp_path / "none*.wav")
    assert _queries([b, nothing]) == [b, nothing]
    cfg, _ = small_demo
    assert main(["--config", str(cfg), "identify", b, nothing, "-d", "d"]) == 1
    assert capsys.readouterr().err.strip() == f"audiopipe: FileNotFoundError: no such file: {nothing}"


def test_ingest_does_not_publish_under_a_running_stage(tmp_path, capsys, monkeypatch):
    """An ingest published new data tables while a stage ran (only a vacuum waited for
    stages): the stage then committed outputs of the clips of before, in a run that finished
    after the ingest. It now waits a little, then exits 1 naming the stage, publishing
    nothing; once the stage has ended it goes through."""
    import socket

    import audiopipe
    from audiopipe.store import lock
    from audiopipe.store.location import Location

    monkeypatch.setattr(lock, "STAGES_WAIT_S", 0.3, raising=False)
    files = [write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 100 * i, dur=0.3), 22050)
             for i in range(3)]
    cfg_path = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    ingest_in_process(cfg_path, "d")
    runs = audiopipe.open_dataset(str(tmp_path / "out"), "d").table("runs").num_rows
    files[0].unlink()
    capsys.readouterr()
    with lock.stage_lock(Location(str(tmp_path / "out"), "d"), "beats"):
        assert main(["--config", str(cfg_path), "ingest", "d", "--quiet",
                     "--allow-removals"]) == 1
    err = capsys.readouterr().err
    assert "DatasetLocked" in err and "stage runs are running: beats" in err, err
    assert f"pid {os.getpid()} on {socket.gethostname()}" in err and "no ingest" in err
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    assert ds.table("runs").num_rows == runs and ds.table("clips").num_rows == 3
    assert main(["--config", str(cfg_path), "ingest", "d", "--quiet", "--allow-removals"]) == 0
    assert audiopipe.open_dataset(str(tmp_path / "out"), "d").table("clips").num_rows == 2


def test_an_ingest_with_nothing_new_goes_through_under_a_running_stage(tmp_path, capsys,
                                                                        monkeypatch):
    """An ingest with nothing to publish was refused while any stage ran (every scheduled
    turn of a long stage failed); it now records its run, the data tables unchanged."""
    import audiopipe
    from audiopipe.store import lock
    from audiopipe.store.location import Location

    monkeypatch.setattr(lock, "STAGES_WAIT_S", 0.3, raising=False)
    for i in range(2):
        write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 100 * i, dur=0.3), 22050)
    cfg_path = write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}})
    ingest_in_process(cfg_path, "d")
    before = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    capsys.readouterr()
    with lock.stage_lock(Location(str(tmp_path / "out"), "d"), "beats"):
        assert main(["--config", str(cfg_path), "ingest", "d", "--quiet"]) == 0
    assert "0 new, 0 changed, 0 removed" in capsys.readouterr().out
    now = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    assert now.run["run_id"] != before.run["run_id"] and now.run["status"] == "ok"
    assert {t: now.versions[t] for t in ("clips", "features", "frames_index")} == {
        t: before.versions[t] for t in ("clips", "features", "frames_index")}

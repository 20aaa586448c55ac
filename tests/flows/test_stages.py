"""The stages flow on a real Prefect API: declared stages run, are recorded and show in Prefect."""

from __future__ import annotations

import json

import pytest

import audiopipe
from audiopipe.config import ConfigError, load_config, parse_config
from audiopipe.demo import make_demo_corpus
from audiopipe.ingest import extract_shard, plan_ingest, publish
from tests.conftest import write_config


def test_declared_stages_run_through_the_flow(tmp_path, prefect_api):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.stages import stages

    demo = make_demo_corpus(tmp_path / "demo", n_per_class=6)
    cfg_path = write_config(
        tmp_path,
        {
            "d": {
                "source": str(demo),
                "labels": {"path": str(demo / "labels.csv"), "on": "path"},
                "stages": {"classify": {"target": "label", "groups": "group"}, "beats": {}},
            }
        },
    )
    cfg = load_config(cfg_path)
    plan = plan_ingest(cfg, "d")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    state = stages(dataset="d", config_path=str(cfg_path), return_state=True)
    reports = state.result()
    assert set(reports) == {"classify", "beats"}
    assert reports["classify"]["metrics"]["accuracy"] > 0.5
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    assert ds.table("predictions").num_rows == 36
    assert ds.table("beats").num_rows > 0
    metrics = ds.table("metrics").to_pandas()
    assert {"classify", "beats"} <= set(metrics.stage)
    # recorded in the dataset's runs table ...
    runs = {r["stage"]: r for r in ds.table("runs").to_pylist() if r["kind"] == "stage"}
    assert {s: r["run_id"] for s, r in runs.items()} == {
        s: rep["run_id"] for s, rep in reports.items()
    }
    assert json.loads(runs["classify"]["params"])["target"] == "label"
    # ... and visible in Prefect: the flow run and one task run per stage
    with get_client(sync_client=True) as client:
        (fr,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
        assert fr.state.is_completed()
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fr.id])))
        assert {t.name for t in tasks} >= {"stage-classify", "stage-beats"}
    # the second time nothing changed: both are skipped, through the flow as well
    again = stages(dataset="d", config_path=str(cfg_path))
    assert all(r["skipped"] for r in again.values())
    # a one-off override (as `audiopipe stage classify d --set target=nope`) is rejected cleanly
    from audiopipe.stages._common import StageInputError

    with pytest.raises(StageInputError, match="no label column 'nope'"):
        stages(
            dataset="d", names=["classify"], config_path=str(cfg_path), overrides={"target": "nope"}
        )
    with pytest.raises(ConfigError, match=r"datasets\.d\.stages\.classify\.taget: unknown"):
        stages(dataset="d", names=["classify"], config_path=str(cfg_path),
               overrides={"taget": "x"})


def test_unknown_stage_is_rejected_before_any_work():
    with pytest.raises(ConfigError, match=r"datasets\.d\.stages\.clasify: unknown stage"):
        parse_config({"datasets": {"d": {"source": "x", "stages": {"clasify": {}}}}})


def test_stage_summary_line():
    from flows.cli_stages import stage_summary as _stage_summary

    line = _stage_summary(
        "recommend", {"metrics": {"recall@10": 0.44}, "plots": ["p.png"], "seconds": 1.5}
    )
    assert "recall@10 0.44" in line and "[p.png]" in line and "(1.5 s)" in line
    assert "clips_processed 3" in _stage_summary("fingerprint", {"clips_processed": 3})
    assert "skipped: unchanged" in _stage_summary("beats", {"skipped": "unchanged since run x"})
    warned = _stage_summary("segment", {"clips_processed": 3, "warnings": ["a" * 200, "b", "c", "d"]})
    lines = warned.splitlines()
    assert lines[1].strip() == "warning: " + "a" * 157 + "..." and "warning: c" in lines[3]
    assert "1 more warning(s)" in lines[4] and len(lines) == 5


def test_the_flow_names_a_missing_stage_file_before_any_work(tmp_path):
    """A scheduled or API run goes through the flow, not the CLI: it checks the files of the
    stages it runs (not those of other stages or datasets), naming the key."""
    from flows.stages import stages

    gone = tmp_path / "share" / "events.csv"
    cfg_path = write_config(tmp_path, {
        "d": {"source": "x", "stages": {"segment": {"events": str(gone)}, "beats": {}}},
        "e": {"source": "y", "labels": {"path": str(tmp_path / "share" / "labels.csv")}},
    })
    with pytest.raises(FileNotFoundError) as info:
        stages.fn(dataset="d", config_path=str(cfg_path))
    assert str(info.value) == f"datasets.d.stages.segment.events: no such file or folder: {gone}"
    with pytest.raises(FileNotFoundError):
        stages.fn(dataset="d", names=["segment", "beats"], config_path=str(cfg_path))
    assert not (tmp_path / "out").exists()

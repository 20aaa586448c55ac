"""The stages flow on a real Prefect API: declared stages run and write their tables."""

from __future__ import annotations

import pytest

import audiopipe
from audiopipe.config import ConfigError, load_config, parse_config
from audiopipe.demo import make_demo_corpus
from audiopipe.ingest import extract_shard, plan_ingest, publish
from tests.conftest import write_config


def test_declared_stages_run_through_the_flow(tmp_path, prefect_api):
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
    reports = stages(dataset="d", config_path=str(cfg_path))
    assert set(reports) == {"classify", "beats"}
    assert reports["classify"]["metrics"]["accuracy"] > 0.5
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "d")
    assert ds.table("predictions").num_rows == 36
    assert ds.table("beats").num_rows > 0
    metrics = ds.table("metrics").to_pandas()
    assert {"classify"} <= set(metrics.stage)
    # a one-off override (as `audiopipe stage classify d --set target=nope`) is rejected cleanly
    from audiopipe.stages._common import StageInputError

    with pytest.raises(StageInputError, match="no label column 'nope'"):
        stages(
            dataset="d", names=["classify"], config_path=str(cfg_path), overrides={"target": "nope"}
        )


def test_unknown_stage_is_rejected_before_any_work():
    with pytest.raises(ConfigError, match=r"datasets\.d\.stages\.clasify: unknown stage"):
        parse_config({"datasets": {"d": {"source": "x", "stages": {"clasify": {}}}}})


def test_stage_summary_line():
    from flows.cli import _stage_summary

    line = _stage_summary(
        "recommend", {"metrics": {"model": {"recall@10": 0.44}}, "plots": ["p.png"]}
    )
    assert "model.recall@10 0.44" in line and "[p.png]" in line
    assert "clips_added 3" in _stage_summary("fingerprint", {"clips_added": 3, "seconds": 0.1})

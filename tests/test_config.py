import pytest

from audiopipe.config import ConfigError, load_config, parse_config


def _ds(**kw):
    return {"datasets": {"demo": {"source": "x/*.wav", **kw}}}


def test_negative_sample_rate_names_key_and_value():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.sample_rate: must be > 0, got -5"):
        parse_config(_ds(sample_rate=-5))


def test_unknown_key_is_rejected_with_its_path():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.sampel_rate: unknown key"):
        parse_config(_ds(sampel_rate=16000))


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.shard\.max_files"):
        parse_config(_ds(shard={"max_files": "many"}))


def test_bad_cron_and_scheduler():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.schedule: must be a cron"):
        parse_config(_ds(schedule="every hour"))
    with pytest.raises(ConfigError, match=r"cluster\.scheduler"):
        parse_config({**_ds(), "cluster": {"scheduler": "localhost"}})


def test_unknown_feature_is_rejected_before_work():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.features"):
        parse_config(_ds(features={"compute": {"not_a_feature": {}}}))


def test_default_dataset_must_exist():
    with pytest.raises(ConfigError, match=r"default_dataset: 'nope' is not one of"):
        parse_config({**_ds(), "default_dataset": "nope"})


def test_unsafe_yaml_is_refused(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("datasets: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_repo_datasets_yaml_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / "datasets.yaml")
    ds = cfg.dataset()
    assert ds.name == "demo" and ds.demo_corpus
    assert ds.recipe()["compute"], "the default recipe computes features"


def test_paths_resolve_relative_to_config(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("datasets:\n  a:\n    source: audio\n")
    cfg = load_config(p)
    assert cfg.resolve(cfg.dataset("a").source[0]) == str(tmp_path / "audio")
    with pytest.raises(LookupError, match="unknown dataset 'b'"):
        cfg.dataset("b")


def test_stage_parameters_are_checked_at_load_with_key_paths():
    stages = {
        "segment": {"mdoe": "novelty"},
        "classify": {"groups": "speaker"},
        "beats": {"tightness": "tight"},
        "retrieve": {"views": ["timbre", "colour"]},
        "clasify": {},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(_ds(stages=stages))
    lines = str(err.value).splitlines()
    assert "datasets.demo.stages.segment.mdoe: unknown parameter (did you mean mode?)" in lines
    assert "datasets.demo.stages.classify.target: required parameter is missing" in lines
    assert "datasets.demo.stages.beats.tightness: must be a number, got 'tight'" in lines
    assert "datasets.demo.stages.retrieve.views: must be one of timbre, tonal, got 'colour'" in lines
    assert any(line.startswith("datasets.demo.stages.clasify: unknown stage (did you mean classify?") for line in lines)
    assert len(lines) == 5  # every problem at once


def test_cross_parameter_rules_and_empty_stage_entries():
    with pytest.raises(ConfigError, match=r"datasets\.demo\.stages\.recommend: needs param 'listens'"):
        parse_config(_ds(stages={"recommend": {}}))
    with pytest.raises(ConfigError, match=r"stages\.transcribe: fmin \(3000.0\) must be below fmax"):
        parse_config(_ds(stages={"transcribe": {"fmin": 3000}}))
    cfg = parse_config(_ds(stages={"beats": None, "fingerprint": {}}))  # `beats:` alone is fine
    assert cfg.dataset("demo").stages == {"beats": {}, "fingerprint": {}}

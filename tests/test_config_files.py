"""The local files a config names are checked for the run that reads them, not at load."""

import pytest

from audiopipe.config import ConfigError, load_config, parse_config
from audiopipe.config_files import check_files, missing_files

TWO = (
    "datasets:\n"
    "  a:\n"
    "    source: audio\n"
    "    labels: {path: nolabels.csv}\n"
    "    stages:\n"
    "      segment: {mode: supervised, events: noevents.csv}\n"
    "      recommend: {listens: s3://bucket/listens.csv}\n"
    "  b:\n"
    "    source: audio\n"
    "    labels: {path: audio}\n"
    "    stages: {segment: {mode: periodic, reference: refs, points: nopoints.csv}}\n"
)


def test_a_missing_file_does_not_make_the_config_invalid(tmp_path):
    """One dataset's labels on an unmounted share refused every command for every dataset:
    loading checks the shape only; a run checks the files it reads, naming the key."""
    p = tmp_path / "d.yaml"
    p.write_text(TWO)
    (tmp_path / "audio").mkdir()
    (tmp_path / "refs").mkdir()  # a folder is a fine reference (CirCor .tsv files)
    cfg = load_config(p)
    assert set(cfg.datasets) == {"a", "b"}
    a_labels = f"datasets.a.labels.path: no such file: {tmp_path / 'nolabels.csv'}"
    a_events = f"datasets.a.stages.segment.events: no such file or folder: {tmp_path / 'noevents.csv'}"
    # an ingest of a reads its labels; `stage segment a` its events; the URL is not checked
    assert missing_files(cfg, "a", labels=True) == [a_labels]
    assert missing_files(cfg, "a", stages=["segment", "recommend"]) == [a_events]
    assert missing_files(cfg, "a", stages=["recommend"]) == []
    assert missing_files(cfg, "b", labels=True, stages=["segment"]) == [
        f"datasets.b.labels.path: a folder, not a labels file (CSV or Parquet): {tmp_path / 'audio'}",
        f"datasets.b.stages.segment.points: no such file or folder: {tmp_path / 'nopoints.csv'}",
    ]
    with pytest.raises(FileNotFoundError) as info:
        check_files(cfg, "a", labels=True, stages=["segment"])
    assert str(info.value) == f"{a_labels}\n{a_events}"
    check_files(cfg, "a", stages=["recommend"])
    # `--set events=...` is what the stage reads: the override is checked, not the config
    events = tmp_path / "ev.csv"
    events.write_text("path,onset_s,offset_s,label\n")
    assert missing_files(cfg, "a", stages=["segment"], overrides={"events": str(events)}) == []
    (tmp_path / "nolabels.csv").write_text("path,label\n")
    assert missing_files(cfg, "a", labels=True) == []  # (checked when asked, not at load)


def test_a_config_with_urls_and_the_repos_own_validate(tmp_path):
    doc = {"storage": "s3://bucket/out", "datasets": {"r": {
        "source": "s3://bucket/audio/**/*.flac", "labels": {"path": "s3://bucket/labels.csv"},
        "stages": {"segment": {"events": "s3://bucket/events.csv"}}}}}
    cfg = parse_config(doc, tmp_path)
    assert missing_files(cfg, "r", labels=True, stages=["segment"]) == []
    assert load_config("datasets.yaml").dataset().demo_corpus


def test_a_blank_path_is_still_a_bad_config():
    with pytest.raises(ConfigError) as info:
        parse_config({"datasets": {"d": {"source": "x", "labels": {"path": " "},
                                         "stages": {"segment": {"events": ""}}}}})
    assert {
        "datasets.d.labels.path: must not be empty (leave the key out to not set it)",
        "datasets.d.stages.segment.events: must not be empty (leave the key out to not set it)",
    } <= set(str(info.value).splitlines())


def test_a_demo_corpus_dataset_may_name_files_the_corpus_will_write(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("datasets:\n  demo:\n    demo_corpus: true\n    source: data/demo\n"
                 "    labels: {path: data/demo/labels.csv}\n"
                 "    stages: {segment: {events: data/demo/events.csv}}\n")
    cfg = load_config(p)
    assert missing_files(cfg, "demo", labels=True, stages=["segment"]) == []
    p.write_text(p.read_text().replace("data/demo/events.csv", "elsewhere/events.csv"))
    assert missing_files(load_config(p), "demo", labels=True, stages=["segment"]) == [
        f"datasets.demo.stages.segment.events: no such file or folder: "
        f"{tmp_path / 'elsewhere' / 'events.csv'}"]

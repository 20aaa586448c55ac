"""Publishing a run: what the tables hold afterwards when files fail or shards were staged
by an earlier, killed run."""

from __future__ import annotations

from pathlib import Path

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.store.location import Location
from audiopipe.store.runs import last_run
from tests.audio_fixtures import sine, write
from tests.conftest import write_config

FEATURES = {"n_fft": 512, "hop_length": 256, "compute": {"rms": {}}}


def _corpus(folder: Path, n: int = 4) -> list[Path]:
    return [
        write(folder / f"tone_{i}.wav", sine(f=200 + 90 * i, dur=0.3), 22050) for i in range(n)
    ]


def _cfg(tmp_path: Path, **ds) -> Path:
    spec = {"source": str(tmp_path / "corpus"), "sample_rate": 22050, "features": FEATURES}
    return write_config(tmp_path, {"t": {**spec, **ds}})


def _ingest(cfg: Path, **kw) -> dict:
    plan = plan_ingest(load_config(cfg), "t", **kw)
    return publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


def _versions(tmp_path: Path) -> dict[str, int | None]:
    return last_run(Location(str(tmp_path / "out"), "t")).versions()


def _table(tmp_path: Path, name: str):
    return audiopipe.open_dataset(str(tmp_path / "out"), "t").table(name).to_pandas()


def test_changed_files_that_now_fail_keep_their_last_good_version(tmp_path):
    """Files emptied in place (a failed sync, a full disk) fail to decode: their clips and
    features stay as last ingested, the errors say why, and the message says so."""
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    before = _table(tmp_path, "clips").set_index("uri")
    feats_before = set(_table(tmp_path, "features").clip_id)
    for f in files[:3]:
        f.write_bytes(b"")

    row = _ingest(cfg)
    assert row["files_changed"] == 3 and row["files_failed"] == 3 and row["clips_total"] == 4
    assert "3 changed files failed and kept their previous version" in row["message"]
    clips = _table(tmp_path, "clips").set_index("uri")
    assert clips.clip_id.to_dict() == before.clip_id.to_dict()
    assert clips.bytes.to_dict() == before.bytes.to_dict()  # the version kept, as it was
    assert set(_table(tmp_path, "features").clip_id) == feats_before
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.frames(before.clip_id[str(files[0])], "rms").shape[0] > 0
    errors = _table(tmp_path, "errors")
    assert sorted(errors.uri) == sorted(str(f) for f in files[:3])

    # unchanged since they failed: not retried, nothing recorded, no table version
    kept = _versions(tmp_path)
    row = _ingest(cfg)
    assert "3 failed before and unchanged, not retried" in row["message"]
    assert row["files_failed"] == 0 and _versions(tmp_path) == kept
    assert len(_table(tmp_path, "errors")) == 3

    # a file repaired with other audio replaces its kept version
    write(files[0], sine(f=1200, dur=0.4), 22050)
    row = _ingest(cfg)
    assert row["files_processed"] == 1 and row["files_failed"] == 0
    clips = _table(tmp_path, "clips").set_index("uri")
    assert len(clips) == 4 and clips.clip_id[str(files[0])] != before.clip_id[str(files[0])]
    assert before.clip_id[str(files[0])] not in set(_table(tmp_path, "features").clip_id)


def test_changed_files_of_a_lost_shard_keep_their_last_good_version(tmp_path):
    """A shard lost with its worker says nothing about its files: the changed ones keep
    their stored rows, and the next run processes them."""
    files = _corpus(tmp_path / "corpus", 2)
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    before = _table(tmp_path, "clips").set_index("uri").clip_id.to_dict()
    for i, f in enumerate(files):
        write(f, sine(f=1000 + 100 * i, dur=0.3), 22050)
    plan = plan_ingest(load_config(cfg), "t")
    row = publish(plan, [ConnectionError("worker lost")] * len(plan.shards))
    assert row["files_failed"] == 2 and row["clips_total"] == 2
    assert "2 changed files failed and kept their previous version" in row["message"]
    assert _table(tmp_path, "clips").set_index("uri").clip_id.to_dict() == before
    row = _ingest(cfg)
    assert row["files_processed"] == 2
    after = _table(tmp_path, "clips").set_index("uri").clip_id.to_dict()
    assert set(after) == set(before) and not set(after.values()) & set(before.values())


def test_shards_staged_by_a_killed_run_are_published_with_the_labels_of_now(tmp_path, monkeypatch):
    """A run killed after staging; the labels are fixed; the next run reuses the staged
    shards (nothing decoded) and publishes the labels and splits the file says now."""
    corpus = tmp_path / "corpus"
    _corpus(corpus, 3)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,kind,split\ntone_0.wav,dog,train\ntone_1.wav,dog,train\ntone_2.wav,dog,test\n")
    cfg = _cfg(tmp_path, labels={"path": str(labels), "root": str(corpus)})
    plan = plan_ingest(load_config(cfg), "t")
    for s in plan.shards:  # staged, then killed before publishing
        extract_shard(s, plan.context)
    labels.write_text("path,kind,split\ntone_0.wav,cat,test\ntone_1.wav,cat,test\ntone_2.wav,bird,train\n")
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg)
    assert row["files_processed"] == 3
    assert not (corpus / ".decoded.log").exists(), "the staged shards are reused"
    clips = _table(tmp_path, "clips").set_index("uri")
    got = {Path(u).name: (k, s) for u, k, s in zip(clips.index, clips.kind, clips.split, strict=True)}
    assert got == {
        "tone_0.wav": ("cat", "test"), "tone_1.wav": ("cat", "test"), "tone_2.wav": ("bird", "train")
    }  # fmt: skip
    assert "labels of" not in _ingest(cfg)["message"]  # nothing left to restate

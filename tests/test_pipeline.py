"""Shard planning: caps respected, bytes balanced, keys stable."""

from __future__ import annotations

import pytest

from audiopipe.catalog import FileEntry
from audiopipe.pipeline import plan_shards


def _files(sizes: list[int]) -> list[FileEntry]:
    return [FileEntry(uri=f"/c/f{i:05d}.wav", size=s, mtime=1.0) for i, s in enumerate(sizes)]


def test_every_file_in_exactly_one_shard_in_uri_order():
    files = _files([100] * 1000)[::-1]  # discovery order does not matter
    shards = plan_shards(files, max_files=64, max_bytes=10**9, salt="s")
    flat = [f.uri for s in shards for f in s.files]
    assert flat == sorted(f.uri for f in files)
    assert max(len(s.files) for s in shards) == 64


def test_min_shards_splits_a_small_corpus_by_bytes():
    # 300 files, one 100x bigger than the rest: 8 shards wanted, the big file alone-ish
    sizes = [1000] * 300
    sizes[150] = 100_000
    shards = plan_shards(_files(sizes), max_files=512, max_bytes=2**30, salt="s", min_shards=8)
    assert len(shards) >= 8
    total = sum(sizes)
    assert all(s.n_bytes <= -(-total // 8) or len(s.files) == 1 for s in shards)
    assert sum(len(s.files) for s in shards) == 300


def test_caps_win_over_min_shards():
    shards = plan_shards(_files([10] * 1000), max_files=50, max_bytes=2**30, salt="s", min_shards=2)
    assert len(shards) == 20


@pytest.mark.parametrize("n", [1, 3])
def test_fewer_files_than_min_shards(n):
    shards = plan_shards(_files([10] * n), max_files=512, max_bytes=2**30, salt="s", min_shards=16)
    assert [len(s.files) for s in shards] == [1] * n


def test_keys_depend_on_files_and_salt_only():
    files = _files([10] * 100)
    a = plan_shards(files, 512, 2**30, "s", min_shards=4)
    b = plan_shards(list(reversed(files)), 512, 2**30, "s", min_shards=4)
    c = plan_shards(files, 512, 2**30, "other", min_shards=4)
    assert [s.key for s in a] == [s.key for s in b]
    assert not {s.key for s in a} & {s.key for s in c}


def _ingest_in_process(cfg_path) -> dict:
    from audiopipe import pipeline
    from audiopipe.config import load_config

    plan = pipeline.plan_ingest(load_config(cfg_path), "t")
    return pipeline.publish(plan, [pipeline.extract_shard(s, plan.context) for s in plan.shards])


def test_max_files_per_run_catches_up_batch_by_batch(tmp_path):
    """A backlog of 7 files with a cap of 3: runs of 3, 3, 1, 0; a change waits its turn."""
    import audiopipe
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    corpus = tmp_path / "corpus"
    for i in range(7):
        write(corpus / f"tone_{i}.wav", sine(f=200 + 50 * i, dur=0.3), 22050)
    cfg = write_config(
        tmp_path,
        {
            "t": {
                "source": str(corpus),
                "sample_rate": 22050,
                "features": {"n_fft": 512, "hop_length": 256, "compute": {"rms": {}}},
                "max_files_per_run": 3,
            }
        },
    )
    rows = [_ingest_in_process(cfg) for _ in range(4)]
    assert [r["files_processed"] for r in rows] == [3, 3, 1, 0]
    assert "4 deferred to later runs" in rows[0]["message"]
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    assert sorted(clips.uri) == sorted(str(p) for p in corpus.glob("*.wav"))
    assert clips.clip_id.is_unique

    # tone_0 changes and 4 new files arrive: the change is processed in uri order with them,
    # replacing its old row (no gap, no duplicate)
    old_id = clips.set_index("uri").clip_id[str(corpus / "tone_0.wav")]
    for i in range(7, 11):
        write(corpus / f"tone_{i}.wav", sine(f=200 + 50 * i, dur=0.3), 22050)
    write(corpus / "tone_0.wav", sine(f=1000, dur=0.4), 22050)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 3  # uri order: tone_0 (changed), tone_10, tone_7
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    assert clips.uri.is_unique and len(clips) == 9
    assert clips.set_index("uri").clip_id[str(corpus / "tone_0.wav")] != old_id
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 2
    feats = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("features").to_pandas()
    assert len(feats) == 11 and feats.clip_id.is_unique

    # a changed file left for a later run keeps its old row and features until then
    before = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    old9 = before.set_index("uri").clip_id[str(corpus / "tone_9.wav")]
    for i in range(3):
        write(corpus / f"a_{i}.wav", sine(f=300 + 40 * i, dur=0.3), 22050)
    write(corpus / "tone_9.wav", sine(f=1500, dur=0.4), 22050)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 3 and "1 deferred" in r["message"]
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    assert clips.clip_id[str(corpus / "tone_9.wav")] == old9
    assert old9 in set(ds.table("features").to_pandas().clip_id)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 1
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    new9 = clips.clip_id[str(corpus / "tone_9.wav")]
    feats = set(ds.table("features").to_pandas().clip_id)
    assert new9 != old9 and new9 in feats and old9 not in feats and len(clips) == 14

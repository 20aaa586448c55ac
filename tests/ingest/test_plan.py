"""Shard planning: caps respected, bytes balanced, keys stable; min_shards from the cluster."""

from __future__ import annotations

import pytest

from audiopipe.catalog import FileEntry
from audiopipe.ingest import plan_shards


def _files(sizes: list[int]) -> list[FileEntry]:
    return [FileEntry(uri=f"/c/f{i:05d}.wav", size=s, mtime=1.0) for i, s in enumerate(sizes)]


def test_every_file_in_exactly_one_shard_in_uri_order():
    files = _files([100] * 1000)[::-1]  # discovery order does not matter
    shards = plan_shards(files, max_files=64, max_bytes=10**9, salt="s")
    flat = [f.uri for s in shards for f in s.files]
    assert flat == sorted(f.uri for f in files)
    counts = [len(s.files) for s in shards]
    assert len(shards) == 16 and max(counts) <= 64 and max(counts) - min(counts) <= 1


def test_min_shards_splits_a_small_corpus_by_bytes():
    # 300 files, one 100x bigger than the rest: 8 shards wanted, the big file alone-ish
    sizes = [1000] * 300
    sizes[150] = 100_000
    shards = plan_shards(_files(sizes), max_files=512, max_bytes=2**30, salt="s", min_shards=8)
    assert len(shards) >= 8
    total = sum(sizes)
    # balanced: no shard holds more than an eighth of the bytes, but for its last file
    assert all(s.n_bytes - max(f.size for f in s.files) <= total / 8 for s in shards)
    assert [s for s in shards if 100_000 in [f.size for f in s.files]][0].n_bytes == 100_000
    assert sum(len(s.files) for s in shards) == 300


@pytest.mark.parametrize(("n_files", "min_shards", "counts"), [
    (15, 4, [4, 4, 3, 4]),  # 2 workers: 8 and 7 files, not 9 and 6 (shards 3,3,3,3,3)
    (15, 2, [8, 7]),
    (10, 4, [3, 2, 3, 2]),
    (7, 8, [1] * 7),
])  # fmt: skip
def test_shards_are_balanced_without_a_small_leftover(n_files, min_shards, counts):
    files = _files([16_000_000 + 1000 * i for i in range(n_files)])  # ~equal FLAC files
    shards = plan_shards(files, max_files=512, max_bytes=256 * 2**20, salt="s", min_shards=min_shards)
    assert [len(s.files) for s in shards] == counts


def test_configured_caps_hold_after_balancing():
    sizes = [10] * 40 + [10_000] + [10] * 40
    shards = plan_shards(_files(sizes), max_files=30, max_bytes=300, salt="s", min_shards=2)
    assert all(len(s.files) <= 30 for s in shards)
    assert all(s.n_bytes <= 300 or len(s.files) == 1 for s in shards)
    assert [f.uri for s in shards for f in s.files] == [f.uri for f in _files(sizes)]


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


@pytest.mark.parametrize(("n_workers", "expected"), [(1, 2), (3, 6)])
def test_default_min_shards_is_two_per_worker(tmp_path, n_workers, expected):
    from audiopipe.config import load_config
    from audiopipe.ingest import plan_ingest
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    for i in range(12):
        write(tmp_path / "c" / f"{i:02d}.wav", sine(f=300, dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path / "c")}})
    plan = plan_ingest(load_config(cfg), "t", n_workers=n_workers)
    assert len(plan.shards) == expected
    assert sum(len(s.files) for s in plan.shards) == 12


def _ingest(cfg) -> dict:
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    plan = plan_ingest(load_config(cfg), "t")
    return publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


def test_files_that_vanished_during_a_run_are_retried_when_back(tmp_path):
    """A share dropping out between listing and reading says nothing about its files: the
    read errors (``missing``) are recorded, and the next run retries the files."""
    import audiopipe
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    for i in range(3):
        write(tmp_path / "share" / "audio" / f"{i}.wav", sine(f=300 + 50 * i, dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path / "share" / "audio")}})
    plan = plan_ingest(load_config(cfg), "t")
    (tmp_path / "share").rename(tmp_path / "share.off")  # unmounted while the run reads
    row = publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    (tmp_path / "share.off").rename(tmp_path / "share")
    assert row["files_failed"] == 3
    errors = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("errors").to_pandas()
    assert set(zip(errors.step, errors.error_type, strict=True)) == {("read", "missing")}
    row = _ingest(cfg)
    assert row["files_processed"] == 3 and "failed before" not in row["message"]


def test_a_failed_file_is_retried_when_block_seconds_changes(tmp_path):
    """``block_seconds`` decides how a file is decoded (a value too big for memory fails every
    file): a failure recorded under one value is retried under another."""
    from audiopipe.config import load_config
    from audiopipe.ingest import plan_ingest, publish
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    class DecoderCrashed(RuntimeError):
        kind = "decoder_crashed"  # a failure that is not retried while nothing changes

    for i in range(2):
        write(tmp_path / "c" / f"{i}.wav", sine(f=300 + 50 * i, dur=0.2), 22050)
    spec = {"source": str(tmp_path / "c"), "shard": {"min_shards": 1}}
    cfg = write_config(tmp_path, {"t": {**spec, "block_seconds": 60.0}})
    plan = plan_ingest(load_config(cfg), "t")
    publish(plan, [DecoderCrashed("killed the worker")] * len(plan.shards))
    assert "2 failed before and unchanged" in _ingest(cfg)["message"]
    cfg = write_config(tmp_path, {"t": {**spec, "block_seconds": 30.0}})
    row = _ingest(cfg)
    assert row["files_processed"] == 2 and "failed before" not in row["message"]


def test_a_source_holding_the_storage_does_not_ingest_the_datasets_outputs(tmp_path):
    """Storage inside a source folder (``source: .`` next to ``storage: out``): the audio a
    stage writes there (separated stems) never becomes clips, and the message says so."""
    import audiopipe
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    for i in range(2):
        write(tmp_path / f"clip{i}.wav", sine(f=300 + 50 * i, dur=0.2), 22050)
    stem = write(tmp_path / "out" / "t" / "stages" / "separate" / "a.wav", sine(dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path)}})
    row = _ingest(cfg)
    assert row["files_processed"] == 2
    assert f"1 audio file under the datasets' outputs ({str(tmp_path / 'out' / 't')!r}) not ingested" in row["message"]
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    assert sorted(clips.uri) == [str(tmp_path / f"clip{i}.wav") for i in range(2)]
    assert str(stem) not in set(clips.uri)


def test_outputs_of_a_dataset_the_config_no_longer_declares_are_not_ingested(tmp_path):
    """A dataset renamed, or stored under another root (another config's), keeps its folder:
    its separated stems were ingested as clips of a dataset whose source holds it (reviews 3
    and 4); any folder holding a ``runs`` table is outputs."""
    import audiopipe
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    write(tmp_path / "old_src" / "o.wav", sine(f=500, dur=0.2), 22050)
    old = load_config(write_config(tmp_path, {"old": {"source": str(tmp_path / "old_src")}}))
    plan = plan_ingest(old, "old")
    publish(plan, [extract_shard(sh, plan.context) for sh in plan.shards])
    stem = write(tmp_path / "out" / "old" / "stages" / "separate" / "x.wav", sine(dur=0.2), 22050)
    write(tmp_path / "rec" / "a.wav", sine(f=300, dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path)}})  # holds the storage
    row = _ingest(cfg)
    clips = set(audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas().uri)
    assert str(stem) not in clips and str(tmp_path / "rec" / "a.wav") in clips
    assert "under the datasets' outputs" in row["message"]
    # the storage moved elsewhere (or another config's): out/old is still a dataset's folder
    moved = write_config(tmp_path, {"t": {"source": str(tmp_path)}}, str(tmp_path / "store"))
    row = _ingest(moved)
    clips = set(audiopipe.open_dataset(str(tmp_path / "store"), "t").table("clips").to_pandas().uri)
    assert str(stem) not in clips and str(tmp_path / "rec" / "a.wav") in clips
    assert str(tmp_path / "out" / "old") in row["message"]


def test_audio_kept_under_the_storage_root_outside_the_datasets_outputs_is_ingested(tmp_path):
    """``storage: data`` with ``source: data/raw``: only ``data/<dataset>/`` holds outputs, the
    raw audio beside them is a source like any other (review 2 finding 6: it was all left
    out and the error blamed the source)."""
    import yaml

    from tests.audio_fixtures import sine, write

    for i in range(3):
        write(tmp_path / "data" / "raw" / f"a{i}.wav", sine(f=300 + 50 * i, dur=0.2), 22050)
    stem = write(tmp_path / "data" / "t" / "stages" / "separate" / "x.wav", sine(dur=0.2), 22050)
    spec = {"source": "data", "sample_rate": 22050}
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump(
        {"storage": "data", "datasets": {"t": spec, "u": {**spec, "source": "data/raw"}}}
    ))  # fmt: skip
    row = _ingest(tmp_path / "datasets.yaml")
    assert row["files_processed"] == 3
    assert "1 audio file under the datasets' outputs" in row["message"]
    import audiopipe

    clips = audiopipe.open_dataset(str(tmp_path / "data"), "t").table("clips").to_pandas()
    assert str(stem) not in set(clips.uri) and len(clips) == 3


def test_a_source_inside_a_datasets_outputs_is_named_in_the_empty_source_error(tmp_path):
    """A new dataset whose source holds only another dataset's outputs: EmptySourceError says
    the files were left out as outputs, not that the folder is missing or unmounted."""
    from audiopipe.config import load_config
    from audiopipe.ingest import EmptySourceError, plan_ingest
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    for i in range(2):
        write(tmp_path / "out" / "a" / "stages" / "separate" / f"{i}.wav", sine(dur=0.2), 22050)
    cfg = write_config(tmp_path, {
        "a": {"source": str(tmp_path / "corpus")},
        "b": {"source": str(tmp_path / "out" / "a" / "stages")},
    })  # fmt: skip
    with pytest.raises(EmptySourceError) as err:
        plan_ingest(load_config(cfg), "b")
    msg = str(err.value)
    assert "2 audio files under the datasets' outputs" in msg and str(tmp_path / "out" / "a") in msg
    assert "mounted" not in msg


def test_an_ingest_over_a_lost_table_is_refused_and_a_rebuild_recomputes_it(tmp_path):
    """A data table the last run recorded but storage lost: an ingest took every file for new
    (``clips`` gone) or wrote features beside a hole and recorded it as fine; it is refused
    before any work, naming the table and the way out, and a rebuild restores the dataset."""
    import shutil

    import audiopipe
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from audiopipe.store import TableMissing
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    for i in range(3):
        write(tmp_path / "audio" / f"{i}.wav", sine(f=300 + 50 * i, dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path / "audio")}})
    assert _ingest(cfg)["files_processed"] == 3
    shutil.rmtree(tmp_path / "out" / "t" / "tables" / "features")
    runs_before = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("runs").num_rows
    with pytest.raises(TableMissing, match="'features' version 0.*audiopipe rebuild t"):
        _ingest(cfg)
    plan = plan_ingest(load_config(cfg), "t", kind="rebuild")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.table("features").num_rows == 3 and not ds.missing_tables()
    assert ds.table("runs").num_rows == runs_before + 1  # the refused ingest recorded nothing


def test_a_rebuild_over_a_clips_table_written_anew_shorter_recomputes_every_file(tmp_path):
    """Review 12 finding 4: the remedy the refusal names (`audiopipe rebuild`) failed in
    delta-rs when the clips table written anew had a shorter log than the recorded version:
    the plan read the stored clips at that version. The rebuild starts the table over: every
    file recomputed, the rows no run published (a file not in the corpus) gone."""
    import shutil

    import pyarrow as pa

    import audiopipe
    from audiopipe.store import TableMissing
    from audiopipe.store.location import Location
    from audiopipe.store.tables import append
    from tests.ingest._small import cfg, corpus, ingest

    corpus(tmp_path / "corpus", n=2)
    ingest(cfg(tmp_path))
    files = corpus(tmp_path / "corpus", n=3)
    ingest(cfg(tmp_path))
    loc = Location(str(tmp_path / "out"), "t")
    ds = audiopipe.open_dataset(loc.root, "t")
    assert ds.versions["clips"] >= 1
    clips = ds.table("clips").sort_by("uri")
    ghost = clips.slice(0, 1).set_column(
        clips.schema.get_field_index("uri"), "uri", pa.array([str(tmp_path / "gone.wav")]))
    shutil.rmtree(loc.table_uri("clips"))  # the folder lost, and a killed run wrote it anew
    assert append(loc, "clips", pa.concat_tables([clips.slice(0, 1), ghost])) == 0
    with pytest.raises(TableMissing, match="'clips' version .*audiopipe rebuild t"):
        ingest(cfg(tmp_path))

    row = ingest(cfg(tmp_path), kind="rebuild")
    assert row["status"] == "ok" and row["files_processed"] == 3
    now = audiopipe.open_dataset(loc.root, "t")
    assert not now.missing_tables()
    assert sorted(now.table("clips")["uri"].to_pylist()) == sorted(str(f) for f in files)
    ids = set(now.table("clips")["clip_id"].to_pylist())
    assert set(now.table("features")["clip_id"].to_pylist()) == ids
    assert all(len(now.frames(c, "rms")) > 0 for c in ids)
    assert ingest(cfg(tmp_path))["files_processed"] == 0  # ingestion goes on from there


def test_a_labels_file_not_there_is_named_by_its_key_before_any_work(tmp_path):
    """Called as a library, as by the flows: the plan names the key (it raised the bare
    FileNotFoundError of whatever it read first) and nothing is written."""
    from audiopipe.config import load_config
    from audiopipe.ingest import plan_ingest
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    write(tmp_path / "audio" / "a.wav", sine(dur=0.2), 22050)
    cfg = write_config(tmp_path, {"t": {"source": str(tmp_path / "audio"),
                                        "labels": {"path": str(tmp_path / "gone.csv")}}})
    with pytest.raises(FileNotFoundError, match=r"datasets\.t\.labels\.path: .*gone\.csv"):
        plan_ingest(load_config(cfg), "t")
    assert not (tmp_path / "out").exists()

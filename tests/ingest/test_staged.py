"""Shards staged by a killed run: kept while a run can use them, vacuumed once none can."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest
from audiopipe.store.location import Location
from audiopipe.store.vacuum import vacuum
from tests.audio_fixtures import sine, write
from tests.conftest import write_config
from tests.ingest._small import FEATURES
from tests.ingest._small import cfg as _cfg
from tests.ingest._small import corpus as _corpus
from tests.ingest._small import ingest as _ingest
from tests.ingest._small import table as _table


def _killed_run(cfg: Path) -> list[tuple[str, list[str]]]:
    """Plan and stage every shard, then stop before publishing (a killed run): each shard's
    key and the names of its files."""
    plan = plan_ingest(load_config(cfg), "t")
    for s in plan.shards:
        extract_shard(s, plan.context)
    return [(s.key, [Path(f.uri).name for f in s.files]) for s in plan.shards]


def _age(folder: Path, hours: float) -> None:
    """Set every file under ``folder`` to have been written ``hours`` ago."""
    t = time.time() - hours * 3600
    for p in folder.rglob("*"):
        os.utime(p, (t, t))


def _staged(out: Path) -> set[str]:
    d = out / "t" / "_staging"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def _parts_of(out: Path, key: str) -> list[str]:
    return [p.name for p in (out / "t" / "frames").iterdir() if p.name.rsplit("-", 1)[0] == key]


def test_vacuum_deletes_staged_shards_no_run_can_use_and_keeps_the_others(tmp_path, monkeypatch):
    """A killed run staged two shards; one file of the first changed again since, so no plan
    names that shard any more: vacuum deletes it (and its frames part) once it is older than
    the retention window and an hour, and keeps the second, which the next run reuses."""
    files = _corpus(tmp_path / "corpus", 4)
    cfg = _cfg(tmp_path, shard={"min_shards": 2})
    _ingest(cfg)
    for i, f in enumerate(files):
        write(f, sine(f=1000 + 60 * i, dur=0.3), 22050)
    (dead, dead_files), (alive, alive_files) = _killed_run(cfg)
    assert dead_files == ["tone_0.wav", "tone_1.wav"] and alive_files == ["tone_2.wav", "tone_3.wav"]
    write(files[0], sine(f=1500, dur=0.4), 22050)  # changed again: the first shard is dead
    out, loc = tmp_path / "out", Location(str(tmp_path / "out"), "t")
    dead_parts = _parts_of(out, dead)
    assert _staged(out) == {dead, alive} and dead_parts and _parts_of(out, alive)

    src = [str(tmp_path / "corpus")]
    r = vacuum(loc, retain_hours=0, sources=src)  # written just now: never, whatever the retention
    assert r.staged == [] and _staged(out) == {dead, alive}
    _age(out / "t" / "_staging", 2)
    _age(out / "t" / "frames", 2)
    assert vacuum(loc, retain_hours=24, sources=src).staged == []  # newer than the retention
    r = vacuum(loc, retain_hours=1)  # without the sources a changed file cannot be told
    assert r.staged == [] and set(r.staged_undecided) == {dead, alive}
    r = vacuum(loc, retain_hours=1, dry_run=True, sources=src)
    assert r.staged == [dead] and _staged(out) == {dead, alive}
    r = vacuum(loc, retain_hours=1, sources=src)
    assert r.staged == [dead] and "1 staged shards of killed runs" in r.summary()
    assert _staged(out) == {alive} and set(dead_parts) <= set(r.parts)
    assert not _parts_of(out, dead) and _parts_of(out, alive)

    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg)  # the kept shard is reused: only the first shard's files are decoded
    log = (tmp_path / "corpus" / ".decoded.log").read_text()
    assert {Path(line.split()[1]).name for line in log.splitlines()} == {"tone_0.wav", "tone_1.wav"}
    assert row["files_processed"] == 4 and row["clips_total"] == 4
    assert len(_table(tmp_path, "features")) == 4 and _staged(out) == set()


def test_vacuum_deletes_staged_shards_whose_work_another_run_published(tmp_path):
    """A killed run's shards, then a run sharding the same files otherwise (one shard)
    publishes them: the staged shards are work no run will plan again. A shard left without
    its marker (a worker killed while staging it) is never read either: both go."""
    files = _corpus(tmp_path / "corpus", 4)
    _ingest(_cfg(tmp_path))
    for i, f in enumerate(files):
        write(f, sine(f=1000 + 60 * i, dur=0.3), 22050)
    keys = [k for k, _ in _killed_run(_cfg(tmp_path, shard={"min_shards": 2}))]
    out = tmp_path / "out"
    (out / "t" / "_staging" / keys[1] / "_SUCCESS").unlink()
    row = _ingest(_cfg(tmp_path, shard={"min_shards": 1}))
    assert row["files_processed"] == 4 and _staged(out) == set(keys)  # not its shards
    _age(out / "t" / "_staging", 2)
    r = vacuum(Location(str(out), "t"), retain_hours=1)
    assert sorted(r.staged) == sorted(keys) and _staged(out) == set()


def _reused_after_vacuum(cfg: Path, src: str, out: Path) -> None:
    """Stage every shard of a killed run, age it past the retention, vacuum with the source
    listed as a plan lists it: no shard is deleted, and the next plan names the same keys."""
    keys = sorted(k for k, _ in _killed_run(cfg))
    _age(out / "t", 3)
    r = vacuum(Location(str(out), "t"), retain_hours=1, sources=[src])
    assert r.staged == [] and r.staged_undecided == {} and _staged(out) == set(keys)
    assert sorted(s.key for s in plan_ingest(load_config(cfg), "t").shards) == keys


@pytest.fixture()
def minio_listing(monkeypatch):
    """moto made to answer as MinIO does: ListObjects dates keep their milliseconds while
    HEAD's Last-Modified has whole seconds (moto otherwise lists ``.000Z``). This patches
    moto's two date renderings, nothing of audiopipe or s3fs."""
    import moto.core.serialize as serialize
    import moto.s3.models as models

    monkeypatch.setattr(models.FakeKey, "last_modified_ISO8601",
                        property(lambda self: self.last_modified.isoformat() + "Z"))
    monkeypatch.setattr(
        serialize.TimestampSerializer, "_timestamp_iso8601_zeroed",
        lambda self, v: v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z",
    )


def test_vacuum_keeps_shards_of_an_s3_source_listed_with_milliseconds(tmp_path, s3, minio_listing):
    """review 4, finding 1: a plan records the listing's (size, mtime); MinIO's HEAD rounds
    the mtime to the second, so a check by HEAD took every staged shard for changed."""
    import boto3
    import s3fs

    client = boto3.client("s3", endpoint_url=s3)
    for f in _corpus(tmp_path / "files", 4):
        time.sleep(0.137)  # mtimes off whole seconds
        client.upload_file(str(f), "audio", f"corpus/{f.name}")
    cfg = write_config(tmp_path, {"t": {"source": "s3://audio/corpus", "sample_rate": 22050,
                                        "features": FEATURES, "shard": {"min_shards": 2}}})
    plan = plan_ingest(load_config(cfg), "t")
    assert any(f.mtime % 1 for s in plan.shards for f in s.files)  # the listing has ms
    s3fs.S3FileSystem.clear_instance_cache()  # `audiopipe vacuum` runs in another process
    _reused_after_vacuum(cfg, "s3://audio/corpus", tmp_path / "out")


def test_vacuum_keeps_shards_of_an_http_source(tmp_path):
    """review 4, finding 1: an HTTP folder listing gives no size (a plan records 0), a HEAD
    the real one: the staged shards were deleted though the next plan names them."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    _corpus(tmp_path / "www" / "corpus", 4)
    srv = ThreadingHTTPServer(("127.0.0.1", 0),
                              functools.partial(Quiet, directory=str(tmp_path / "www")))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = f"http://127.0.0.1:{srv.server_port}/corpus/"
        cfg = write_config(tmp_path, {"t": {"source": src, "sample_rate": 22050,
                                            "features": FEATURES, "shard": {"min_shards": 2}}})
        _reused_after_vacuum(cfg, src, tmp_path / "out")
    finally:
        srv.shutdown()


def test_vacuum_keeps_staged_shards_while_the_source_is_not_there(tmp_path, monkeypatch):
    """review 4, finding 2: with the share unmounted (its folder gone, or an empty mount
    point) every file looked removed, and vacuum deleted every shard the next run reuses.
    They are kept and counted as undecided; the next ingest decodes nothing again."""
    _corpus(tmp_path / "corpus", 4)
    cfg = _cfg(tmp_path, shard={"min_shards": 2})
    keys = {k for k, _ in _killed_run(cfg)}
    out, loc = tmp_path / "out", Location(str(tmp_path / "out"), "t")
    _age(out / "t", 3)
    corpus = tmp_path / "corpus"
    corpus.rename(tmp_path / "away")
    for _ in ("gone", "empty mount point"):
        r = vacuum(loc, retain_hours=1, sources=[str(corpus)])
        assert r.staged == [] and set(r.staged_undecided) == keys and _staged(out) == keys
        assert "kept 2 staged shards it could not check" in r.summary()
        assert _parts_of(out, sorted(keys)[0])
        corpus.mkdir(exist_ok=True)
    corpus.rmdir()
    (tmp_path / "away").rename(corpus)
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg)
    assert row["files_processed"] == 4 and not (corpus / ".decoded.log").exists()


def test_vacuum_decides_shard_by_shard_and_keeps_what_it_cannot_read(tmp_path):
    """review 4, finding 2: a shard staged before errors rows had ``bytes`` and ``mtime``
    made the whole vacuum fail (ArrowInvalid), tables and parts included; so would any
    shard it could not read. Such a shard is kept and reported; the others are decided."""
    import pyarrow.parquet as pq

    files = _corpus(tmp_path / "corpus", 2)
    files[1].write_bytes(b"not audio at all" * 10)
    cfg = _cfg(tmp_path, shard={"min_shards": 1})
    ((key, _),) = _killed_run(cfg)
    out, loc = tmp_path / "out", Location(str(tmp_path / "out"), "t")
    errors = out / "t" / "_staging" / key / "errors.parquet"
    t = pq.read_table(errors)
    pq.write_table(t.drop_columns(["bytes", "mtime"]), errors)  # as staged before 2c63f0f
    broken = out / "t" / "_staging" / ("f" * len(key))
    broken.mkdir()
    (broken / "_SUCCESS").write_text("{}")
    (broken / "clips.parquet").write_bytes(b"not parquet")
    _age(out / "t", 3)
    src = [str(tmp_path / "corpus")]
    r = vacuum(loc, retain_hours=1, sources=src)
    assert r.staged == [] and _staged(out) == {key, broken.name}
    assert "older audiopipe" in r.staged_undecided[key] and broken.name in r.staged_undecided
    files[0].unlink()  # a file the shard does know: removed, so no run can use it
    r = vacuum(loc, retain_hours=1, sources=src)
    assert r.staged == [key] and set(r.staged_undecided) == {broken.name}
    assert _staged(out) == {broken.name}


def test_vacuum_keeps_a_frames_part_an_orphaned_worker_is_still_writing(tmp_path):
    """review 4, finding 6: ``vacuum --retain-hours 0`` deleted the frames part a worker
    orphaned by a killed run was writing; the worker then staged its shard complete, the
    next ingest reused it and published clips whose frames were gone. An unreferenced part
    written less than an hour ago is kept, whatever the retention."""
    import threading

    import audiopipe

    _corpus(tmp_path / "corpus", 4)
    cfg = _cfg(tmp_path, shard={"min_shards": 1})
    plan = plan_ingest(load_config(cfg), "t")  # the killed run's plan
    (shard,) = plan.shards
    go, started = threading.Event(), threading.Event()

    def hook(uri: str) -> None:
        if uri.endswith("tone_2.wav"):
            started.set()
            go.wait(60)

    worker = threading.Thread(target=lambda: extract_shard(shard, plan.context, decoder_hook=hook))
    worker.start()
    try:
        assert started.wait(60)
        out = tmp_path / "out"
        part = _parts_of(out, shard.key)
        assert part and not _staged(out)  # a part being written, nothing staged yet
        r = vacuum(Location(str(out), "t"), retain_hours=0)
        assert r.parts == [] and _parts_of(out, shard.key) == part
    finally:
        go.set()
        worker.join()
    assert _staged(out) == {shard.key}
    row = _ingest(cfg)  # reuses the staged shard
    assert row["clips_total"] == 4
    ds = audiopipe.open_dataset(str(out), "t")
    for cid in ds.table("clips").to_pandas().clip_id:
        assert len(ds.frames(cid, "rms"))

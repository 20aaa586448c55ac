"""Shards staged by a killed run: kept while a run can use them, vacuumed once none can."""

from __future__ import annotations

import os
import time
from pathlib import Path

from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest
from audiopipe.store.location import Location
from audiopipe.store.vacuum import vacuum
from tests.audio_fixtures import sine, write
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

    r = vacuum(loc, retain_hours=0)  # written just now: never, whatever the retention
    assert r.staged == [] and _staged(out) == {dead, alive}
    _age(out / "t" / "_staging", 2)
    _age(out / "t" / "frames", 2)
    assert vacuum(loc, retain_hours=24).staged == []  # newer than the retention window
    r = vacuum(loc, retain_hours=1, dry_run=True)
    assert r.staged == [dead] and _staged(out) == {dead, alive}
    r = vacuum(loc, retain_hours=1)
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

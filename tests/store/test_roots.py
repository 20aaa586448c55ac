"""Storage roots and source paths holding ``#``, ``?``, ``[``, spaces and ``%``.

delta-rs parses a table's location as a URL: in an S3 key ``#`` began a fragment and ``?`` a
query, so every table of ``s3://audio/take#2`` was written to ``s3://audio/take``; ``%XX``
is decoded (once when writing, twice when reading), so no form of such a root works, and it
is refused before any work; locally ``[``, ``]``, ``|``, ``^`` and ``\\`` fail too.
fsspec's ``rm`` (and zarr's overwrite, through it) read ``*?[`` in an object key as a glob:
removing ``q?x/...`` removed ``qax/...`` as well, and so did zarr's deletes of single chunks.
"""

from __future__ import annotations

import numpy as np
import pytest

import audiopipe
from audiopipe.store.location import Location
from tests.stages.mir_data import build_dataset

T = np.arange(16000) / 16000
#: source files whose names hold what URLs read specially (they are local paths: taken as named)
FILES = {
    name: ((0.2 * np.sin(2 * np.pi * f * T)).astype(np.float32), 16000)
    for name, f in (("take#2 50%41 off?.wav", 220), ("x%2Fy [mix].wav", 330))
}


def _keys(endpoint: str) -> set[str]:
    """The bucket's keys (moto keeps one bucket for the process: earlier tests' keys too)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="audio")
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _check_read_back(ds: audiopipe.Dataset) -> None:
    clips = ds.table("clips")
    assert sorted(u.rsplit("/", 1)[-1] for u in clips.column("uri").to_pylist()) == sorted(FILES)
    assert ds.table("features").num_rows == 2
    assert ds.missing_tables() == {}
    for cid in clips.column("clip_id").to_pylist():
        assert ds.frames(cid, "rms").shape[0] > 10
        z, sr = ds.load_audio(cid, sr=16000)
        assert sr == 16000 and len(z) == len(T)


@pytest.mark.parametrize("folder", ["take#2", "q?x", "x[1] y+z"])
def test_an_s3_root_with_url_characters_keeps_every_table_under_it(tmp_path, s3, folder):
    from audiopipe.stages import run_stage

    root = f"s3://audio/{folder}"
    before = _keys(s3)
    ds = build_dataset(tmp_path, FILES, storage=root, sample_rate=16000)
    _check_read_back(ds)
    beats = run_stage(ds, "beats")
    assert not beats["skipped"]
    ds = audiopipe.open_dataset(root, "d")
    _check_read_back(ds)
    assert ds.table("tempo").num_rows == 2
    runs = ds.table("runs").to_pylist()
    assert sorted(r["kind"] for r in runs) == ["ingest", "stage"] and {r["status"] for r in runs} == {"ok"}
    # nothing was written anywhere else in the bucket (delta-rs wrote `take#2`'s tables to `take`)
    keys = _keys(s3) - before
    assert keys and all(k.startswith(f"{folder}/d/") for k in keys), sorted(
        {k.split("/d/")[0] for k in keys})


@pytest.mark.parametrize(("folder", "escape"), [("out%20x", "%20"), ("pct%2Fslash", "%2F"),
                                                ("a%25b", "%25")])
def test_an_s3_root_with_a_percent_escape_is_refused_before_any_write(tmp_path, s3, folder, escape):
    from audiopipe.errors import ConfigError

    before = _keys(s3)
    with pytest.raises(ConfigError, match=rf"^storage: the storage root 's3://audio/{folder}' "
                                          rf"contains '{escape}', a percent-escape"):
        build_dataset(tmp_path, FILES, storage=f"s3://audio/{folder}", sample_rate=16000)
    with pytest.raises(ValueError, match=f"contains '{escape}'"):
        audiopipe.open_dataset(f"s3://audio/{folder}", "d")
    assert _keys(s3) == before


@pytest.mark.parametrize("folder", ["out%20x", "pct%2Fslash", "take[2]", "a\\b"])
def test_a_local_root_delta_lake_cannot_hold_is_refused_before_any_write(tmp_path, folder):
    from audiopipe.errors import ConfigError

    root = tmp_path / "o" / folder
    char = {"out%20x": "'%20'", "pct%2Fslash": "'%2F'", "take[2]": "'\\['"}.get(folder, "'\\\\\\\\'")
    with pytest.raises(ConfigError, match=f"^storage: the storage root .* contains {char}"):
        build_dataset(tmp_path, FILES, storage=str(root), sample_rate=16000)
    with pytest.raises(ValueError, match=f"contains {char}"):
        Location(str(root), "d")
    assert not (tmp_path / "o").exists()


def test_a_local_root_with_hash_question_mark_and_a_stray_percent_works(tmp_path):
    """(These worked before and keep working: a local path is handed to delta-rs as a path.)"""
    from audiopipe.stages import run_stage

    root = tmp_path / "out #1? 50%"
    ds = build_dataset(tmp_path, FILES, storage=str(root), sample_rate=16000)
    _check_read_back(ds)
    assert not run_stage(ds, "beats")["skipped"]
    assert audiopipe.open_dataset(str(root), "d").table("tempo").num_rows == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "out #1? 50%"]


@pytest.mark.parametrize(("folder", "other"), [("g?x", "gax"), ("h[1]", "h1"), ("rm*", "rmb")])
def test_removing_under_an_s3_root_with_glob_characters_removes_only_its_own(s3, folder, other):
    """A shard's staged files cleaned after publishing, and a frames part written again (a
    shard retried), went through fsspec's ``rm``, which took ``g?x`` as a glob: the other
    dataset's files at ``gax`` went too (``h[1]``: only ``h1``'s)."""
    import boto3

    from audiopipe.ingest.staging import clean
    from audiopipe.store.frames import FrameWriter, read_frames

    c = boto3.client("s3", endpoint_url=s3)
    locs = {f: Location(f"s3://audio/{f}", "d") for f in (other, folder)}

    def write_part(loc: Location, value: float) -> None:
        w = FrameWriter(loc.frames_uri("p.zarr"), {"rms": 1}, loc.fsspec_options)
        w.add({"rms": np.full((1, 5), value, np.float32)})
        w.close()

    for value, (f, loc) in enumerate(locs.items(), start=1):
        c.put_object(Bucket="audio", Key=f"{f}/d/_staging/K/clips.parquet", Body=b"x")
        write_part(loc, value)
    write_part(locs[folder], 3.0)  # the same part written again: its own folder is replaced
    clean(locs[folder], ["K"])
    keys = _keys(s3)
    assert f"{other}/d/_staging/K/clips.parquet" in keys
    assert f"{folder}/d/_staging/K/clips.parquet" not in keys
    for f, want in ((other, 1.0), (folder, 3.0)):
        got = read_frames(locs[f].frames_uri("p.zarr"), "rms", 0, 5, locs[f].fsspec_options)
        assert got.shape == (5, 1) and (got == want).all(), (f, got.ravel())


@pytest.mark.parametrize(("folder", "other"), [("q?x", "qax"), ("h[1]", "h1"), ("rm*", "rmb")])
def test_zarr_deletes_under_an_s3_root_with_glob_characters_remove_only_its_own(s3, folder, other):
    """zarr deletes a chunk's key when the chunk is all fill (a silent clip) and when
    ``rollback_clip`` shrinks an array; through fsspec's ``rm`` the key was a glob, and the
    same chunks of the other dataset's part went (they then read 0.0, no error), while under
    ``h[1]`` the rolled-back chunk itself stayed."""
    from audiopipe.store.frames import FrameWriter, read_frames

    locs = {f: Location(f"s3://audio/{f}", "d") for f in (other, folder)}
    theirs = np.repeat(np.arange(1, 5, dtype=np.float32), 16)  # four chunks: 1, 2, 3, 4
    w = FrameWriter(locs[other].frames_uri("silent.zarr"), {"rms": 1}, chunk_frames=16)
    w.add({"rms": theirs[None, :]})
    w.end_clip()
    w.close()
    their_keys = {k for k in _keys(s3) if k.startswith(f"{other}/")}

    w = FrameWriter(locs[folder].frames_uri("silent.zarr"), {"rms": 1}, chunk_frames=16,
                    flush_chunks=1)
    spans = []
    for value, n in ((5.0, 16), (0.0, 16)):  # a clip, then a silent one (an all-fill chunk)
        w.add({"rms": np.full((1, n), value, np.float32)})
        spans.append(w.end_clip())
    w.add({"rms": np.full((1, 32), 7.0, np.float32)})  # flushed (chunks 2, 3), then failed
    w.rollback_clip()
    w.add({"rms": np.full((1, 8), 9.0, np.float32)})
    spans.append(w.end_clip())
    w.close()

    keys = _keys(s3)
    assert {k for k in keys if k.startswith(f"{other}/")} == their_keys
    got = read_frames(locs[other].frames_uri("silent.zarr"), "rms", 0, 64)
    np.testing.assert_array_equal(got.ravel(), theirs)
    assert spans == [(0, 16), (16, 32), (32, 40)]
    mine = read_frames(locs[folder].frames_uri("silent.zarr"), "rms", 0, 40).ravel()
    np.testing.assert_array_equal(mine, np.repeat(np.float32([5, 0, 9]), [16, 16, 8]))
    assert f"{folder}/d/frames/silent.zarr/rms/c/3/0" not in keys  # the rolled-back chunk went


def test_s3_sources_whose_keys_hold_hash_question_mark_percent_and_brackets(tmp_path, s3):
    """(These worked before and keep working: sources are read through fsspec, not delta-rs.)"""
    import io

    import boto3
    import soundfile as sf

    from audiopipe.config import parse_config
    from audiopipe.stages import run_stage
    from tests.conftest import ingest_in_process

    c = boto3.client("s3", endpoint_url=s3)
    for name, (y, sr) in FILES.items():
        buf = io.BytesIO()
        sf.write(buf, y, sr, format="WAV")
        c.put_object(Bucket="audio", Key=f"src #1? 9%/{name}", Body=buf.getvalue())
    root = str(tmp_path / "out")
    cfg = parse_config({"storage": root, "datasets": {"d": {"source": "s3://audio/src #1? 9%/",
                                                            "sample_rate": 16000}}})
    assert ingest_in_process(cfg, "d")["status"] == "ok"
    ds = audiopipe.open_dataset(root, "d")
    _check_read_back(ds)
    assert ds.table("errors").num_rows == 0
    run_stage(ds, "beats")
    assert audiopipe.open_dataset(root, "d").table("tempo").num_rows == 2

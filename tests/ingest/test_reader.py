"""Reading a shard's files: an event per file in order, its blocks or its error where it
belongs, second passes, limits checked before hashing. (Reading them from several threads:
tests/ingest/test_pool.py and test_extract.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.audio import AudioError
from audiopipe.catalog import FileEntry
from audiopipe.config import LimitsConfig
from audiopipe.ingest.reader import Failed, Opened, Same, ShardReader
from tests.audio_fixtures import bad_inputs, sine, write


def _entries(paths, prev=None):
    return [FileEntry(str(p), p.stat().st_size, p.stat().st_mtime, prev_clip_id=prev) for p in paths]


def _corpus(tmp_path):
    good = [
        write(tmp_path / f"g{i}.flac", np.stack([sine(f=200 * (i + 1), dur=2.5, sr=44100)] * 2, 1),
              44100, "FLAC", "PCM_16")
        for i in range(3)
    ]  # fmt: skip
    bad = bad_inputs(tmp_path / "bad")
    return [good[0], bad["text"][0], good[1], bad["truncated_flac"][0], good[2]]


def _reader(**kw):
    return ShardReader(22050, "mix", block_seconds=0.5, **kw)


def _consume(events, fail_on=None):
    """What an extractor would see: per file its kind and its blocks (or its error)."""
    out = []
    for ev in events:
        name = ev.entry.uri.rsplit("/", 1)[-1]
        if isinstance(ev, Opened):
            got = []
            try:
                for i, b in enumerate(ev.blocks()):
                    if name == fail_on and i == 1:
                        raise RuntimeError("the features failed")
                    got.append(b)
                out.append((name, "ok", np.concatenate(got)))
            except Exception as err:  # noqa: BLE001
                out.append((name, type(err).__name__, None))
        else:
            out.append((name, type(ev).__name__, getattr(ev, "error", None).__class__.__name__))
    return out


@pytest.mark.parametrize("fail_on", [None, "g1.flac"])
def test_each_file_is_an_event_in_order_with_its_blocks_or_its_error(tmp_path, fail_on):
    files = _entries(_corpus(tmp_path))
    here = _consume(_reader().events(files), fail_on)
    assert [h[:2] for h in here] == [
        ("g0.flac", "ok"),
        ("text.wav", "Failed"),  # unreadable header: failed before decoding
        ("g1.flac", "RuntimeError" if fail_on else "ok"),
        ("truncated.flac", "AudioError"),  # fails part-way through decoding
        ("g2.flac", "ok"),
    ]
    for h in here:
        if isinstance(h[2], np.ndarray):
            assert h[2].size == int(2.5 * 22050)


def test_a_second_pass_decodes_again_and_same_bytes_are_not_decoded(tmp_path):
    paths = _corpus(tmp_path)
    files = _entries([paths[0]])
    (ev,) = list(_reader().events(files))
    first = np.concatenate(list(ev.blocks()))
    second = np.concatenate(list(ev.blocks()))  # two-pass recipes read the clip twice
    np.testing.assert_array_equal(first, second)
    reader = _reader()
    clip_id = reader.clip_id(files[0])
    decoded = []
    reader.hook = decoded.append
    (same,) = list(reader.events(_entries([paths[0]], prev=clip_id)))
    assert isinstance(same, Same) and same.clip_id == clip_id and decoded == []


def test_limits_and_empty_files_fail_before_hashing(tmp_path):
    p = write(tmp_path / "a.wav", sine(dur=0.5), 22050)
    big = FileEntry(str(p), p.stat().st_size, 1.0)
    reader = _reader(limits={"max_bytes": 100})
    (ev,) = list(reader.events([big]))
    assert isinstance(ev, Failed) and ev.clip_id is None and ev.error.kind == "limits"
    (ev,) = list(_reader().events([FileEntry(str(p), 0, 1.0)]))
    assert isinstance(ev.error, AudioError) and ev.error.kind == "empty"
    assert reader.timings["hash"] == 0


def _remote_corpus(folder, client):
    """Files of a corpus written locally and uploaded to ``s3://audio/corpus``: FLAC and Ogg
    to resample and mix, a cut FLAC and a cut Ogg (their errors come from decoding and from
    the Ogg page walk over the bytes)."""
    good = [
        write(folder / f"g{i}.flac", np.stack([sine(f=200 * (i + 1), dur=1.5, sr=44100)] * 2, 1),
              44100, "FLAC", "PCM_16")
        for i in range(2)
    ]  # fmt: skip
    good.append(write(folder / "g2.ogg", sine(f=500, dur=2.0, sr=22050), 22050, "OGG", "VORBIS"))
    data = good[2].read_bytes()
    (folder / "cut.ogg").write_bytes(data[: len(data) * 2 // 3])
    bad = bad_inputs(folder.parent / "bad")
    (folder / "truncated.flac").write_bytes(bad["truncated_flac"][0].read_bytes())
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for p in files:
        client.upload_file(str(p), "audio", f"corpus/{p.name}")
    return files


@pytest.mark.parametrize("spare_core", [False, True], ids=["one-thread", "file-pool"])
def test_a_remote_file_is_read_once_hashed_and_decoded_from_its_bytes(
    tmp_path, s3, s3_requests, spare_core
):
    """An ingest from object storage read each file twice and more (to hash it, for its
    header, to decode it): one GET per file now, and the same rows, frames and errors as
    the same files ingested from a local folder."""
    import boto3
    import s3fs

    import audiopipe
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from tests.conftest import write_config
    from tests.ingest._small import FEATURES

    s3fs.S3FileSystem.clear_instance_cache()
    files = _remote_corpus(tmp_path / "corpus", boto3.client("s3", endpoint_url=s3))
    rows = {}
    for where, src in (("local", str(tmp_path / "corpus")), ("s3", "s3://audio/corpus")):
        (tmp_path / where).mkdir()
        cfg = write_config(tmp_path / where, {"t": {
            "source": src, "sample_rate": 22050, "features": FEATURES,
            "shard": {"min_shards": 2}}})  # fmt: skip
        plan = plan_ingest(load_config(cfg), "t", read_ahead=spare_core)
        s3_requests.clear()
        publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
        ds = audiopipe.open_dataset(str(tmp_path / where / "out"), "t")
        clips = ds.table("clips").to_pandas().sort_values("uri")
        errors = ds.table("errors").to_pandas().sort_values("uri")
        names = [u.rsplit("/", 1)[-1] for u in clips.uri]
        frames = {n: ds.frames(c, "rms") for n, c in zip(names, clips.clip_id, strict=True)}
        rows[where] = (clips, errors, frames)
        if where == "s3":
            gets = [path for method, path in s3_requests if method == "GET"]
            assert sorted(gets) == sorted(f"/audio/corpus/{p.name}" for p in files)
    (lc, le, lf), (rc, re_, rf) = rows["local"], rows["s3"]
    assert list(rc.uri) == [f"s3://audio/corpus/{n}" for n in ("g0.flac", "g1.flac", "g2.ogg")]
    assert list(rc.content_hash) == list(lc.content_hash)
    for col in ("format", "native_sr", "channels", "frames", "duration_s"):
        assert list(rc[col]) == list(lc[col]), col
    assert lf.keys() == rf.keys()
    for name in lf:
        np.testing.assert_array_equal(rf[name], lf[name], err_msg=name)
    assert [u.rsplit("/", 1)[-1] for u in re_.uri] == ["cut.ogg", "truncated.flac"]
    for col in ("step", "error_type", "message"):
        assert list(re_[col]) == list(le[col]), col
    assert list(re_.error_type) == ["truncated", "decode"]  # (the FLAC's decoder fails)


def test_a_remote_file_grown_past_the_limit_is_refused_before_it_is_read(tmp_path, s3, s3_requests):
    """The listed size is checked against limits.max_bytes; a file grown since (the store's
    HEAD says more) is refused without a GET: never more than the limit in memory."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3})
    data = write(tmp_path / "a.wav", sine(dur=0.5), 22050).read_bytes()
    fs.pipe("audio/a.wav", data)
    s3_requests.clear()
    listed = FileEntry("s3://audio/a.wav", 1000, 1.0)  # as listed before it grew
    (ev,) = list(_reader(limits=LimitsConfig(max_bytes=5000).model_dump()).events([listed]))
    assert isinstance(ev, Failed) and ev.error.kind == "limits"
    assert "grown past 5000 bytes" in str(ev.error)
    assert [m for m, _ in s3_requests if m == "GET"] == []
    at_limit = LimitsConfig(max_bytes=len(data)).model_dump()  # (the limit itself is allowed)
    (ev,) = list(_reader(limits=at_limit).events([FileEntry("s3://audio/a.wav", len(data), 1.0)]))
    assert isinstance(ev, Opened) and ev.data == data
    assert np.concatenate(list(ev.blocks())).size == int(0.5 * 22050)

"""Reading a shard's files: an event per file in order, its blocks or its error where it
belongs, second passes, limits checked before hashing. (Reading them from several threads:
tests/ingest/test_pool.py and test_extract.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.audio import AudioError
from audiopipe.catalog import FileEntry
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

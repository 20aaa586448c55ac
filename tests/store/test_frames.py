import numpy as np
import pytest
import zarr

from audiopipe.store.frames import FrameWriter, read_frames


def _block(n, d, start):
    return {"a": np.arange(start, start + n * d, dtype=np.float32).reshape(n, d).T.copy()}


def test_clips_are_appended_in_order_across_chunk_boundaries(tmp_path):
    uri = str(tmp_path / "p.zarr")
    w = FrameWriter(uri, {"a": 3}, chunk_frames=8)
    spans = []
    for n_blocks, size in [(3, 5), (1, 1), (4, 7)]:
        for b in range(n_blocks):
            w.add(_block(size, 3, 1000 * len(spans) + b * size * 3))
        spans.append(w.end_clip())
    w.close()
    assert spans == [(0, 15), (15, 16), (16, 44)]
    arr = zarr.open_group(uri, mode="r")["a"]
    assert arr.shape == (44, 3) and arr.chunks == (8, 3)
    first = read_frames(uri, "a", 0, 15)
    np.testing.assert_array_equal(first[:5], _block(5, 3, 0)["a"].T)


def test_rollback_drops_a_failed_clip_even_after_a_flush(tmp_path):
    uri = str(tmp_path / "p.zarr")
    w = FrameWriter(uri, {"a": 2}, chunk_frames=4, flush_chunks=1)
    w.add(_block(3, 2, 0))
    assert w.end_clip() == (0, 3)
    w.add(_block(10, 2, 500))  # flushed to storage partially
    w.rollback_clip()
    w.add(_block(2, 2, 900))
    assert w.end_clip() == (3, 5)
    w.close()
    out = read_frames(uri, "a", 0, 5)
    np.testing.assert_array_equal(out[3:], _block(2, 2, 900)["a"].T)
    assert zarr.open_group(uri, mode="r")["a"].shape == (5, 2)


def test_mismatched_frames_are_refused(tmp_path):
    w = FrameWriter(str(tmp_path / "p.zarr"), {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="frames"):
        w.add({"a": np.zeros((1, 3), np.float32), "b": np.zeros((1, 4), np.float32)})
    with pytest.raises(KeyError, match="not in"):
        w.close()
        read_frames(str(tmp_path / "p.zarr"), "zzz", 0, 1)


@pytest.mark.parametrize("flush_chunks", [1, 3, None])
def test_batched_writes_give_the_same_part(tmp_path, flush_chunks):
    """Writing several chunks at a time changes neither the chunks nor the rows."""
    uri = str(tmp_path / "p.zarr")
    w = FrameWriter(uri, {"a": 3}, chunk_frames=8, flush_chunks=flush_chunks)
    for i in range(7):
        w.add(_block(13, 3, 100 * i))
        w.end_clip()
    w.add(_block(9, 3, 5000))
    w.rollback_clip()  # the last clip failed
    w.close()
    arr = zarr.open_group(uri, mode="r")["a"]
    assert arr.shape == (91, 3) and arr.chunks == (8, 3)
    want = np.concatenate([_block(13, 3, 100 * i)["a"].T for i in range(7)])
    np.testing.assert_array_equal(arr[:], want)

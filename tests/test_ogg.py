"""The Ogg page walk fed the bytes in order (a remote file, read once) answers as the walk
seeking through a local file does, on whole, cut, padded, tagged and chained files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from audiopipe.ogg import OggWalk, Tap, problem
from tests.test_audio import _TRAILERS, _ogg_in_blocks


def _variants(tmp_path) -> dict[str, bytes]:
    """Ogg files as they come: whole, cut anywhere, followed by bytes that are not Ogg, with
    junk inside, chained; from Vorbis and Opus."""
    out: dict[str, bytes] = {}
    rng = np.random.default_rng(7)
    for sub in ("VORBIS", "OPUS"):
        data = _ogg_in_blocks(tmp_path / f"{sub}.ogg", sub, dur=1.5).read_bytes()
        out[f"{sub} whole"] = data
        for n in [*rng.integers(1, len(data), 12), len(data) - 7, 27, 4]:
            out[f"{sub} cut at {n}"] = data[:n]
        for name, trailer in _TRAILERS.items():
            out[f"{sub} + {name}"] = data + trailer
            out[f"{sub} cut + {name}"] = data[: len(data) - 7] + trailer
        mid = len(data) // 2
        out[f"{sub} junk inside"] = data[:mid] + bytes(300) + data[mid:]
        out[f"{sub} chained"] = data + data
        out[f"{sub} chained over junk"] = data + bytes(500) + data
    out["not ogg"] = b"RIFF" + bytes(100)
    return out


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return _variants(tmp_path_factory.mktemp("ogg"))


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20, "random"])
def test_the_walk_fed_in_order_answers_as_the_walk_seeking(variants, chunk):
    rng = np.random.default_rng(1)
    for name, data in variants.items():
        walk = OggWalk(len(data))
        pos = 0
        while pos < len(data):
            n = int(rng.integers(1, 70_000)) if chunk == "random" else chunk
            walk.feed(memoryview(data)[pos : pos + n])
            pos += n
            assert len(walk.buf) <= 2 * 65_307 + (n if chunk != 1 else 1), name  # about a page
        assert walk.problem() == problem(io.BytesIO(data)), name
    with pytest.raises(ValueError, match="fed"):
        OggWalk(10).problem()


def test_a_tap_libsndfile_reads_through_answers_as_the_walk_seeking(variants):
    """The bytes libsndfile reads decoding an Ogg file (its headers, its tail, then front to
    back), and what it left unread, are the file's bytes in order."""
    for name, data in variants.items():
        if not data.startswith(b"OggS"):
            continue
        tap = Tap(io.BytesIO(data))
        try:
            with sf.SoundFile(tap) as f:
                while f.read(4096).size:
                    pass
        except (sf.LibsndfileError, RuntimeError):
            continue  # (libsndfile refused it outright: nothing to check)
        assert tap.problem() == problem(io.BytesIO(data)), name

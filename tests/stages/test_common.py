"""Helpers shared by the stages (``audiopipe.stages._common``)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audiopipe.stages._common import uri_matcher, uri_tails
from audiopipe.stages.segment.heart import clip_key

from ._ingest import ingest


def test_a_name_two_clips_answer_to_matches_neither(tmp_path):
    src = tmp_path / "src"
    t = np.arange(8000) / 8000
    for i, folder in enumerate(("a", "b")):
        (src / folder).mkdir(parents=True)
        sf.write(src / folder / "c.wav", 0.1 * np.sin(2 * np.pi * (200 + 100 * i) * t), 8000)
    sf.write(src / "a" / "d.wav", 0.1 * np.sin(2 * np.pi * 500 * t), 8000)
    ds = ingest(tmp_path / "out", "m", str(src), None, 8000, {"compute": {"rms": {}}})
    by_uri = {u.rsplit("/", 2)[-2] + "/" + u.rsplit("/", 1)[-1]: c
              for c, u in zip(*ds.table("clips", ["clip_id", "uri"]).to_pydict().values(),
                              strict=True)}
    for keys in (uri_tails, clip_key):
        match = uri_matcher(ds, keys=keys)
        assert match("a/c.wav") == by_uri["a/c.wav"] and match("/b/c.wav") == by_uri["b/c.wav"]
        assert match("d.wav") == by_uri["a/d.wav"]  # a name only one clip has
        with pytest.warns(UserWarning, match="names 2 clips"):
            assert match("c.wav") is None  # not the first clip published: neither
    assert uri_matcher(ds, keys=clip_key)("a/c") == by_uri["a/c.wav"]

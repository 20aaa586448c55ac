"""uri: local paths opened as names (``::`` included), URLs through fsspec."""

from __future__ import annotations

import fsspec
import pytest

from audiopipe.uri import local_path, open_uri


def test_local_names_are_opened_as_written(tmp_path):
    p = tmp_path / "take 1::mix.bin"
    p.write_bytes(b"abc")
    (tmp_path / "take 1").write_bytes(b"wrong file")  # what fsspec's URL chaining would open
    for uri in (str(p), f"file://{p}"):
        with open_uri(uri, {"anon": True}) as f:  # options are for URLs: ignored here
            assert f.read() == b"abc"
    assert local_path(f"file://{p}") == str(p)
    with pytest.raises(FileNotFoundError):
        with open_uri(str(tmp_path / "nope::x")):
            pass


def test_urls_go_through_fsspec():
    with fsspec.open("memory://audiopipe-test/a.bin", "wb") as f:
        f.write(b"xyz")
    assert local_path("memory://audiopipe-test/a.bin") is None
    with open_uri("memory://audiopipe-test/a.bin") as f:
        assert f.read() == b"xyz"

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


def test_remove_async_under_glob_characters_on_s3_removes_only_the_named_keys(s3):
    """zarr's frames store deletes through ``remove_async``: s3fs's ``rm`` read ``h[1]`` as a
    glob (it removed ``h1``'s objects and left its own); more objects than one batch."""
    import asyncio

    import boto3
    import s3fs

    from audiopipe.uri import _BATCH, remove_async

    c = boto3.client("s3", endpoint_url=s3)
    n = 2 * _BATCH + 3
    for folder in ("ra/h[1]", "ra/h1"):
        for i in range(n):
            c.put_object(Bucket="audio", Key=f"{folder}/p.zarr/c/{i}", Body=b"x")

    async def run() -> None:
        fs = s3fs.S3FileSystem(asynchronous=True, skip_instance_cache=True)
        session = await fs.set_session()
        try:
            await remove_async(fs, "audio/ra/h[1]/p.zarr/c/0")  # one key
            await remove_async(fs, "audio/ra/h[1]/p.zarr/c/0")  # already gone: no error
            assert await fs._exists("audio/ra/h[1]/p.zarr/c/1")
            await remove_async(fs, "audio/ra/h[1]", recursive=True)
        finally:
            await session.close()

    asyncio.run(run())
    pages = c.get_paginator("list_objects_v2").paginate(Bucket="audio", Prefix="ra/")
    keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
    assert keys == {f"ra/h1/p.zarr/c/{i}" for i in range(n)}

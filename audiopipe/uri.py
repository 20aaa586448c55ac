"""Open a file named by a uri: a local path with ``open``, a URL through fsspec.

Local paths (plain, or ``file://``) never go through fsspec's URL parsing, which reads
``::`` as a chain of URLs: a file named ``take 1::mix.wav`` would open ``take 1``. One
place for every reader of source files (catalog, store, stages).

Examples
--------
>>> from audiopipe.uri import local_path
>>> local_path("music/take 1::mix.wav"), local_path("file:///data/a.wav")
('music/take 1::mix.wav', '/data/a.wav')
>>> local_path("s3://bucket/a.wav") is None
True
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["file_identity", "info_mtime", "local_path", "open_uri"]


def local_path(uri: str) -> str | None:
    """The path of a local uri (a plain path or ``file://``), None for a URL."""
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


@contextmanager
def open_uri(uri: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """``uri`` opened for reading bytes: a local path with ``open``, a URL through fsspec
    with ``storage_options`` (which local paths ignore)."""
    path = local_path(uri)
    if path is not None:
        with open(path, "rb") as f:
            yield f
    else:
        import fsspec

        with fsspec.open(uri, "rb", **(storage_options or {})) as f:
            yield f


def info_mtime(info: Mapping[str, Any]) -> float:
    """The modification time (epoch seconds) in an fsspec ``info`` dict (0.0 when it has none),
    as files are listed and compared between runs."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return 0.0


def file_identity(uri: str, storage_options: Mapping[str, Any] | None = None) -> tuple[int, float] | None:
    """``(size, mtime)`` of the file ``uri`` names, as a listing gives them (None: not there)."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    path = local_path(uri)
    try:
        if path is not None:
            info = LocalFileSystem().info(LocalFileSystem._strip_protocol(path))
        else:
            fs, p = fsspec.core.url_to_fs(uri, **(storage_options or {}))
            info = fs.info(p)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(info.get("size") or 0), info_mtime(info)

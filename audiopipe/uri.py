"""Open a file named by a uri: a local path with ``open``, a URL through fsspec.

Local paths (plain, or ``file://``) never go through fsspec's URL parsing, which reads
``::`` as a chain of URLs: a file named ``take 1::mix.wav`` would open ``take 1``. One
place for every reader of source files (catalog, store, stages), and for what a storage
root must be for Delta Lake (:func:`root_problem`, :func:`delta_url`).

Examples
--------
>>> from audiopipe.uri import local_path
>>> local_path("music/take 1::mix.wav"), local_path("file:///data/a.wav")
('music/take 1::mix.wav', '/data/a.wav')
>>> local_path("s3://bucket/a.wav") is None
True
>>> delta_url("s3://bucket/take#2 (50% off)/tables/clips")
's3://bucket/take%232%20%2850%25%20off%29/tables/clips'
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

__all__ = [
    "AUDIO_EXTENSIONS",
    "delta_url",
    "info_mtime",
    "list_source",
    "local_path",
    "open_uri",
    "remove",
    "remove_async",
    "root_problem",
]

#: what a source's listing takes for audio (:func:`list_source`)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")


def local_path(uri: str) -> str | None:
    """The path of a local uri (a plain path or ``file://``), None for a URL."""
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return None if "://" in uri else uri


#: a percent-escape (``%20``, ``%2F``, ``%25``): what delta-rs decodes in a table's path
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
#: control characters: delta-rs refuses them in any path
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: what delta-rs cannot take in a local path ("Invalid object store url" panics for the
#: first four; it writes into ``a\b`` and reads ``a/b``); in an object key it takes them all
_LOCAL_BAD = re.compile(r"[\[\]|^]" if os.sep == "\\" else r"[\[\]|^\\]")


def root_problem(root: str) -> str | None:
    """Why ``root`` (a dataset's folder: a local path or URL) cannot hold Delta tables, or None.

    Measured with deltalake 1.6: a percent-escape (``%`` and two hex digits) cannot be given
    to delta-rs in any form: it decodes a table's path once when writing and twice when
    reading, so a folder ``out%20x`` was written as ``out%20x`` (locally) or ``out x`` (S3)
    and then read as ``out x``: the ingest failed after writing, or its tables landed under
    another key. Control characters are refused by delta-rs; in a local path so are ``[``,
    ``]``, ``|``, ``^`` and ``\\``. Any other character (``#``, ``?``, spaces, a ``%`` not
    followed by two hex digits) is handed over by :func:`delta_url`.

    Examples
    --------
    >>> root_problem("/data/out%20x").split(",")[0]
    "contains '%20'"
    >>> root_problem("/data/take[2]").split(",")[0]
    "contains '['"
    >>> root_problem("s3://bucket/take[2]#3?") is None
    True
    """
    m = _ESCAPE.search(root)
    if m is not None:
        return (
            f"contains {m.group()!r}, a percent-escape: Delta Lake (delta-rs) decodes it and "
            "would write or read the tables under another path; rename the folder (a '%' not "
            "followed by two hex digits is fine)"
        )
    m = _CONTROL.search(root)
    if m is not None:
        return (f"contains the control character {m.group()!r}, which Delta Lake (delta-rs) "
                "refuses in a path; rename the folder")
    m = _LOCAL_BAD.search(root) if local_path(root) is not None else None
    if m is not None:
        return (
            f"contains {m.group()!r}, which Delta Lake (delta-rs) cannot take in a local path "
            "(it fails, or writes under another folder); rename the folder (an object-store "
            "root can hold it)"
        )
    return None


def delta_url(uri: str) -> str:
    """``uri``, the folder of a Delta table (a local path or URL), as delta-rs must be given it.

    delta-rs parses a URL: in an object key ``#`` starts a fragment and ``?`` a query, both
    dropped (``s3://b/a#b/d/tables/clips`` wrote every table of the dataset to ``s3://b/a``),
    and ``%XX`` is decoded. The key is percent-encoded here (delta-rs decodes it back to the
    same key). A local path is given as a path, which delta-rs takes as it is, but for a
    percent-escape (:func:`root_problem`: refused before any work).
    """
    path = local_path(uri)
    if path is not None:
        return path
    from urllib.parse import quote

    scheme, _, rest = uri.partition("://")
    bucket, sep, key = rest.partition("/")
    return f"{scheme}://{bucket}{sep}{quote(key, safe='/')}"


#: what fsspec reads as a glob in a path (``fsspec.utils.has_magic``)
GLOB_CHARS = "*?["


def remove(fs: Any, path: str, recursive: bool = False) -> None:
    """Remove ``path`` of filesystem ``fs`` as it is named (with ``recursive``, a folder and
    everything under it); every removal under a storage root goes through here.

    fsspec's ``rm`` on an object store reads ``*``, ``?`` and ``[`` in a path as a glob
    (s3fs 2026.9): removing ``s3://b/q?x/d/_staging/K`` removed ``s3://b/qax/d/_staging/K`` as
    well, another dataset's, and ``x[1]/...`` removed ``x1/...`` and left itself. Such a
    path's objects are listed (a listing takes the key as it is) and removed one by one.
    Zarr's deletes go through :func:`remove_async` (``audiopipe.store.frames``).

    Examples
    --------
    >>> import tempfile, fsspec
    >>> d = tempfile.mkdtemp() + "/q?x"
    >>> fs = fsspec.filesystem("file"); fs.makedirs(d + "/a"); fs.touch(d + "/a/f")
    >>> remove(fs, d, recursive=True); fs.exists(d)
    False
    """
    if not _rm_globs(fs, path):
        fs.rm(path, recursive=recursive)
        return
    for name in fs.find(path) if recursive else [path]:
        fs.rm_file(name)


#: how many objects :func:`remove_async` removes at once
_BATCH = 32


async def remove_async(fs: Any, path: str, recursive: bool = False) -> None:
    """:func:`remove` on an async filesystem (``asynchronous=True``: a Zarr ``FsspecStore``'s),
    awaited: ``path`` removed as it is named, never read as a glob.

    Examples
    --------
    >>> import asyncio, fsspec
    >>> from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    >>> fs = fsspec.filesystem("memory")  # (its rm reads `?` as a glob, as s3fs's does)
    >>> fs.pipe({"/remove_async/q?x/f": b"1", "/remove_async/qax/f": b"2"})
    >>> asyncio.run(remove_async(AsyncFileSystemWrapper(fs), "/remove_async/q?x", recursive=True))
    >>> fs.exists("/remove_async/q?x/f"), fs.exists("/remove_async/qax/f")
    (False, True)
    """
    if not _rm_globs(fs, path):
        await fs._rm(path, recursive=recursive)
        return
    names = await fs._find(path) if recursive else [path]
    for i in range(0, len(names), _BATCH):  # (a rewritten part: hundreds of chunk keys)
        done = await asyncio.gather(
            *(fs._rm_file(name) for name in names[i : i + _BATCH]), return_exceptions=True
        )
        for e in done:  # (an object already gone is removed: the others still are)
            if isinstance(e, BaseException) and not isinstance(e, FileNotFoundError):
                raise e


def _rm_globs(fs: Any, path: str) -> bool:
    """Whether ``fs``'s ``rm`` would read ``path`` as a glob (a local rm takes it as named)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" not in protocols and any(c in path for c in GLOB_CHARS)


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


def _fs_for(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    if local_path(url) is not None:
        return LocalFileSystem(), LocalFileSystem._strip_protocol(url)
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path


def _unstrip(path: str, original: str) -> str:
    """Give a listed path back its protocol (s3://...) or make it absolute locally."""
    if "://" in original:
        proto = original.split("://", 1)[0]
        return f"{proto}://{path}" if not path.startswith(f"{proto}://") else path
    return os.path.abspath(path)


def list_source(
    src: str, extensions: tuple[str, ...], storage_options: Mapping[str, Any] | None = None
) -> dict[str, tuple[int, float]]:
    """``{uri: (size, mtime)}`` of the files a source names (a folder, searched recursively,
    a glob or a file) whose names end with one of ``extensions``, as the listing gives them.

    :func:`audiopipe.catalog.discover` lists sources with it; whatever compares a file with
    what a run recorded for it lists it here too (a listing and a ``HEAD`` may disagree: a
    MinIO listing has milliseconds, its HEAD whole seconds; an HTTP listing has no size).
    Missing sources raise ``FileNotFoundError`` naming the source.
    """
    fs, path = _fs_for(src, storage_options)
    if any(ch in path for ch in "*?[") and not fs.exists(path):  # `Album [2020]`: a folder
        found = fs.glob(path, detail=True)
        if not found and not fs.exists(path.split("*")[0].rstrip("/") or "/"):
            raise FileNotFoundError(f"source {src!r}: no such folder")
    elif fs.isdir(path):
        found = fs.find(path, detail=True, withdirs=True)
    elif fs.exists(path):
        found = {path: fs.info(path)}
    else:
        raise FileNotFoundError(f"source {src!r}: no such file or folder")
    out: dict[str, tuple[int, float]] = {}
    for p, inf in found.items():
        if not p.rstrip("/").lower().endswith(extensions):
            continue
        if inf.get("type") == "directory":
            if "://" in src:  # object stores have no folders, only key prefixes
                continue
            p = p.rstrip("/")  # a folder named like audio: listed, the reader says so
        out[_unstrip(p, src)] = (int(inf.get("size") or 0), info_mtime(inf))
    return out

"""Shards staged by killed runs that no run can use any more.

An ingest stages each shard's rows under ``_staging/<key>/`` and removes them once it has
published them; a run killed before publishing leaves them, and the next run reuses a shard
when it plans the very same work (its key hashes the files' uri, size and mtime with the
settings). A staged shard can never be used again once one of its files

- is stored in ``clips`` with the size and mtime it was staged with (another run published
  that work: an unchanged file is never processed again), or
- is no longer on its source with that size and mtime (changed or removed since: a plan
  names it with its new identity);

nor can a shard without its ``_SUCCESS`` marker (it is recomputed, never read). Such shards
are what :func:`audiopipe.store.vacuum.vacuum` deletes, under the dataset lock (no ingest
plans or publishes meanwhile) and only when their last write is older than its retention
window and :data:`MIN_AGE_S`, so a worker orphaned by a killed run that is still writing
one is never cut short (a marker written into a deleted shard would make a shard of no rows).
A shard whose files are all still to be processed as staged is kept, whatever its age.

A file's size and mtime on its source are those of a listing of the dataset's sources made
as an ingest's plan makes it (:func:`audiopipe.uri.list_source`, what
:func:`audiopipe.catalog.discover` records): a ``HEAD`` may say otherwise (MinIO lists
milliseconds but answers whole seconds; an HTTP folder listing has no size), and a shard a
plan would reuse must not be taken for changed. When the sources are not given, or one of
them cannot be listed or lists no audio file at all (an unmounted share looks like an empty
folder), no shard is taken for changed or removed: it is kept, as one that could not be
decided.

So is a shard staged by an older audiopipe whose ``errors`` rows lack ``bytes`` and
``mtime`` (unless one of its other files decides), and one whose files cannot be read: an
error on one shard never stops the vacuum of the others.

Examples
--------
>>> import tempfile
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> staged_keys(loc), unusable(loc, [], cutoff=0.0)
([], ([], {}))
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq

from audiopipe.uri import AUDIO_EXTENSIONS, list_source

from .location import Location
from .runs import pinned_versions
from .tables import read_table

__all__ = [
    "MIN_AGE_S", "SUCCESS", "list_sources", "newest_write", "staged_keys", "staged_files", "unusable",
]

#: the marker written last into a complete staged shard (its ShardResult as JSON)
SUCCESS = "_SUCCESS"
#: a staged shard written less than this long ago is never deleted, whatever the retention
MIN_AGE_S = 3600.0


def staged_keys(loc: Location) -> list[str]:
    """The keys of the shards staged under the dataset's ``_staging/``."""
    fs, root = loc.fs, loc.staging_uri()
    if not fs.exists(root):
        return []
    fs.invalidate_cache(root)
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))


def newest_write(fs: Any, path: str) -> float:
    """Newest modification time of the files under ``path`` (epoch seconds; 0 if unknown)."""
    newest = 0.0
    for info in fs.find(path, detail=True).values():
        m = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        if isinstance(m, datetime):
            m = m.timestamp()
        if m is not None:
            newest = max(newest, float(m))
    return newest


def staged_files(loc: Location, key: str) -> dict[str, tuple[int, float] | None] | None:
    """``{uri: (size, mtime)}`` of the files a complete staged shard holds (its ``clips``
    and ``errors`` rows, and the changed files whose bytes were the same); None when the
    shard is not complete (no marker). A file's identity is None when the shard does not
    record it (``errors`` rows staged before they had ``bytes`` and ``mtime``)."""
    fs = loc.fs
    marker = loc.staging_uri(key, SUCCESS)
    if not fs.exists(marker):
        return None
    with fs.open(marker, "r") as f:
        result = json.loads(f.read() or "{}")
    files: dict[str, tuple[int, float] | None] = {
        str(u): (int(s), float(m)) for u, s, m in result.get("same_bytes") or []
    }
    for name in ("clips", "errors"):
        p = loc.staging_uri(key, f"{name}.parquet")
        if fs.exists(p):
            with fs.open(p, "rb") as f:
                t = pq.read_table(f)
            col = {c: t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows
                   for c in ("uri", "bytes", "mtime")}
            for u, s, m in zip(col["uri"], col["bytes"], col["mtime"], strict=True):
                if u is None:
                    continue
                if s is not None and m is not None:
                    files[u] = (int(s), float(m))
                else:
                    files.setdefault(u, None)
    return files


def _stored(loc: Location) -> dict[str, tuple[int, float]]:
    """``{uri: (bytes, mtime)}`` of the clips the last ingest or rebuild published."""
    v = pinned_versions(loc).get("clips")
    t = read_table(loc, "clips", version=v, columns=["uri", "bytes", "mtime"]) if v is not None else None
    if t is None:
        return {}
    d = t.to_pydict()
    return {u: (int(s), float(m)) for u, s, m in zip(d["uri"], d["bytes"], d["mtime"], strict=True)}


def _same(a: tuple[int, float] | None, b: tuple[int, float] | None) -> bool:
    return a is not None and b is not None and a[0] == b[0] and abs(a[1] - b[1]) < 1e-6


def list_sources(sources: Sequence[str] | None) -> tuple[dict[str, tuple[int, float]] | None, str]:
    """``({uri: (size, mtime)}, "")`` of the audio files of a dataset's ``sources``, listed
    as an ingest's plan lists them; ``(None, why)`` when they are not given, or one cannot be
    listed or lists no audio file (nothing can then be taken for changed or removed)."""
    if sources is None:
        return None, "the dataset's sources were not given"
    listing: dict[str, tuple[int, float]] = {}
    for src in sources:
        try:
            got = list_source(src, AUDIO_EXTENSIONS)
        except Exception as e:  # noqa: BLE001 - unmounted, unreachable, refused: undecided
            return None, f"source {src!r} could not be listed ({type(e).__name__}: {e})"
        if not got:
            return None, f"source {src!r} lists no audio file (not mounted?)"
        listing.update(got)
    return listing, ""


def unusable(
    loc: Location, keys: Iterable[str], cutoff: float, sources: Sequence[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The staged shards among ``keys`` whose last write is before ``cutoff`` (epoch seconds)
    and :data:`MIN_AGE_S` ago that no run can use (see the module's docstring), and those
    that could not be decided, with why (they are to be kept).
    ``sources`` are the dataset's sources as its config resolves them (None: files are not
    looked up on them). Call it holding the dataset lock."""
    cutoff = min(cutoff, time.time() - MIN_AGE_S)
    known: dict[str, Any] = {}  # the stored clips and the sources' listing, read once
    out: list[str] = []
    undecided: dict[str, str] = {}
    for key in keys:
        try:
            verdict = _verdict(loc, key, cutoff, sources, known)
        except Exception as e:  # noqa: BLE001 - one shard's error never stops the vacuum
            verdict = f"{type(e).__name__}: {e}"
        if verdict is True:
            out.append(key)
        elif isinstance(verdict, str):
            undecided[key] = verdict
    return out, undecided


def _verdict(
    loc: Location, key: str, cutoff: float, sources: Sequence[str] | None, known: dict[str, Any]
) -> bool | str:
    """True: no run can use the shard; False: kept (recent, or usable); a str: undecided, why."""
    if newest_write(loc.fs, loc.staging_uri(key)) > cutoff:
        return False  # written recently: maybe by a worker of a killed run, still going
    files = staged_files(loc, key)
    if files is None:  # incomplete: recomputed by any run that plans it, never read
        return True
    if "stored" not in known:
        known["stored"] = _stored(loc)
    if any(_same(known["stored"].get(u), ident) for u, ident in files.items()):
        return True  # another run published this work
    if "listed" not in known:
        known["listed"] = list_sources(sources)
    listing, why = known["listed"]
    if listing is None:
        return why
    if any(u not in listing or (ident is not None and not _same(listing[u], ident))
           for u, ident in files.items()):
        return True  # a file changed or removed since
    n = sum(ident is None for ident in files.values())
    if n:
        return f"{n} of its files staged without their size and mtime (by an older audiopipe)"
    return False

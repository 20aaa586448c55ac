"""Find a dataset's files, identify them by content, join labels, diff against the store.

A clip's id is a BLAKE2b hash of its bytes. Files whose size and modification
time match what the store holds are taken as unchanged without re-reading them,
so re-scanning a large unchanged corpus is cheap.

Examples
--------
>>> from audiopipe.catalog import discover
>>> files = discover(["corpus/**/*.wav"])         # doctest: +SKIP
>>> files[0].uri, files[0].size                   # doctest: +SKIP
('/abs/corpus/a.wav', 12044)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

__all__ = ["FileEntry", "Diff", "AUDIO_EXTENSIONS", "discover", "hash_file", "read_labels", "diff"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
HASH_CHUNK = 1 << 20


@dataclass
class FileEntry:
    """A discovered file. ``clip_id`` is filled by :func:`hash_file` or from the store."""

    uri: str
    size: int
    mtime: float
    clip_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: for a changed file (new size or mtime), the clip id stored for it: when the bytes
    #: hash to the same id (a copy, a ``touch``), its features are kept, not recomputed
    prev_clip_id: str | None = None

    @property
    def format(self) -> str:
        return Path(self.uri.split("?")[0]).suffix.lower().lstrip(".")


def _fs_for(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path


def _mtime(info: Mapping[str, Any]) -> float:
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


def _unstrip(fs: Any, path: str, original: str) -> str:
    """Give a listed path back its protocol (s3://...) or make it absolute locally."""
    if "://" in original:
        proto = original.split("://", 1)[0]
        return f"{proto}://{path}" if not path.startswith(f"{proto}://") else path
    return os.path.abspath(path)


def discover(
    sources: Iterable[str],
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    storage_options: Mapping[str, Any] | None = None,
) -> list[FileEntry]:
    """List audio files under folders, globs or URLs; sorted by uri, no duplicates.

    A folder is searched recursively for files with an audio extension; a glob
    (``**`` allowed) is taken as written. A local folder named like an audio file is
    listed too (its files are listed on their own): the reader turns it into an ``errors``
    row saying what it is, rather than skipping it without a word. Missing sources raise ``FileNotFoundError``
    naming the source.
    """
    seen: dict[str, FileEntry] = {}
    for src in sources:
        fs, path = _fs_for(src, storage_options)
        if any(ch in path for ch in "*?["):
            found = fs.glob(path, detail=True)
            if not found and not fs.exists(path.split("*")[0].rstrip("/") or "/"):
                raise FileNotFoundError(f"source {src!r}: no such folder")
        elif fs.isdir(path):
            found = fs.find(path, detail=True, withdirs=True)
        elif fs.exists(path):
            found = {path: fs.info(path)}
        else:
            raise FileNotFoundError(f"source {src!r}: no such file or folder")
        for p, inf in found.items():
            if not p.rstrip("/").lower().endswith(extensions):
                continue
            if inf.get("type") == "directory":
                if "://" in src:  # object stores have no folders, only key prefixes
                    continue
                p = p.rstrip("/")  # a folder named like audio: listed, the reader says so
            uri = _unstrip(fs, p, src)
            seen[uri] = FileEntry(uri=uri, size=int(inf.get("size") or 0), mtime=_mtime(inf))
    return [seen[k] for k in sorted(seen)]


def hash_file(uri: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """BLAKE2b-128 of the file's bytes, hex: the clip id."""
    h = hashlib.blake2b(digest_size=16)
    with fsspec.open(uri, "rb", **(storage_options or {})) as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_labels(path: str, on: str = "path", root: str | None = None) -> dict[str, dict[str, str]]:
    """Read a labels CSV/Parquet into ``{absolute uri: {column: value}}``.

    Values are kept as strings (a column's type is the analyst's business);
    the ``on`` column is resolved relative to ``root`` (default: the labels file's folder).
    """
    with fsspec.open(path, "rb") as f:
        df = (
            pd.read_parquet(f)
            if path.endswith(".parquet")
            else pd.read_csv(f, dtype=str, keep_default_na=False)
        )
    if on not in df.columns:
        raise ValueError(f"labels file {path}: no column {on!r} (columns: {', '.join(df.columns)})")
    base = (
        root
        if root is not None
        else (path.rsplit("/", 1)[0] if "://" in path else str(Path(path).parent))
    )
    out: dict[str, dict[str, str]] = {}
    for row in df.astype(str).to_dict("records"):
        rel = row.pop(on)
        if "://" in rel or os.path.isabs(rel):
            uri = rel
        elif "://" in base:
            uri = f"{base.rstrip('/')}/{rel}"
        else:
            uri = os.path.abspath(os.path.join(base, rel))
        out[uri] = row
    return out


@dataclass
class Diff:
    """What a run must do: process ``new`` + ``changed``, drop ``removed``."""

    new: list[FileEntry]
    changed: list[FileEntry]
    removed: list[str]
    unchanged: list[FileEntry]
    #: new or changed files left for a later run (``max_files_per_run``): their stored rows,
    #: if any, stay as they are
    deferred: list[FileEntry] = field(default_factory=list)

    @property
    def to_process(self) -> list[FileEntry]:
        return sorted(self.new + self.changed, key=lambda e: e.uri)

    def capped(self, max_files: int | None) -> Diff:
        """This diff with at most ``max_files`` files to process (the first in uri order).

        Examples
        --------
        >>> d = diff([FileEntry(f"/{c}.wav", 1, 1.0) for c in "abc"], {}).capped(2)
        >>> [f.uri for f in d.to_process], [f.uri for f in d.deferred]
        (['/a.wav', '/b.wav'], ['/c.wav'])
        """
        todo = self.to_process
        if max_files is None or len(todo) <= max_files:
            return self
        keep = {f.uri for f in todo[:max_files]}
        return Diff(
            new=[f for f in self.new if f.uri in keep],
            changed=[f for f in self.changed if f.uri in keep],
            removed=self.removed,
            unchanged=self.unchanged,
            deferred=self.deferred + todo[max_files:],
        )

    def summary(self) -> str:
        s = (
            f"{len(self.new)} new, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged"
        )
        return s + (f", {len(self.deferred)} deferred to later runs" if self.deferred else "")


def diff(found: list[FileEntry], stored: Mapping[str, tuple[int, float, str]]) -> Diff:
    """Compare discovered files with ``stored`` = ``{uri: (size, mtime, clip_id)}``.

    Nothing is read here: files with the same size and mtime keep their stored
    clip id; the others are (re)processed by the workers, which hash the bytes.
    A re-written file with identical bytes gets the same clip id back.

    Examples
    --------
    >>> d = diff([FileEntry("/a.wav", 10, 1.0)], {"/b.wav": (5, 1.0, "x")})
    >>> d.summary()
    '1 new, 0 changed, 1 removed, 0 unchanged'
    """
    new, changed, unchanged = [], [], []
    for e in found:
        prev = stored.get(e.uri)
        if prev is None:
            new.append(e)
            continue
        size, mtime, cid = prev
        if size == e.size and abs(mtime - e.mtime) < 1e-6:
            e.clip_id = cid
            unchanged.append(e)
        else:
            e.prev_clip_id = cid
            changed.append(e)
    present = {e.uri for e in found}
    removed = sorted(u for u in stored if u not in present)
    return Diff(new=new, changed=changed, removed=removed, unchanged=unchanged)

"""Find a dataset's files, identify them by content, join labels, diff against the store.

A file's content hash is the BLAKE2b-128 of its bytes; its clip id hashes that content hash
with its uri (:func:`clip_id_for`), so two copies of one recording are two clips, each with a
key of its own, and share a ``content_hash``. Files whose size and modification time match what
the store holds are taken as unchanged without re-reading them, so re-scanning a large
unchanged corpus is cheap.

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

from audiopipe.uri import AUDIO_EXTENSIONS, list_source, open_uri

__all__ = [
    "LabelsError",
    "FileEntry", "Diff", "AUDIO_EXTENSIONS", "discover", "hash_file", "hash_bytes", "clip_id_for",
    "read_labels", "load_labels", "Labels", "diff",
]

HASH_CHUNK = 1 << 20


@dataclass
class FileEntry:
    """A discovered file. ``clip_id`` is filled by the workers (:func:`clip_id_for`) or from
    the store."""

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


def discover(
    sources: Iterable[str],
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    storage_options: Mapping[str, Any] | None = None,
) -> list[FileEntry]:
    """List audio files under folders, globs or URLs; sorted by uri, no duplicates.

    A folder is searched recursively for files with an audio extension; a glob
    (``**`` allowed) is taken as written, unless a file or folder has that very name
    (``Album [2020]``), which is then listed as it is. A local folder named like an audio
    file is listed too (its files are listed on their own): the reader turns it into an
    ``errors`` row saying what it is, rather than skipping it without a word. Missing sources
    raise ``FileNotFoundError`` naming the source.
    """
    seen: dict[str, FileEntry] = {}
    for src in sources:
        for uri, (size, mtime) in list_source(src, extensions, storage_options).items():
            seen[uri] = FileEntry(uri=uri, size=size, mtime=mtime)
    return [seen[k] for k in sorted(seen)]


def hash_file(uri: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """BLAKE2b-128 of the file's bytes, hex: the content hash (equal for copies of a file)."""
    h = hashlib.blake2b(digest_size=16)
    with open_uri(uri, storage_options) as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """:func:`hash_file` of a file's bytes already in memory (the same content hash).

    Examples
    --------
    >>> len(hash_bytes(b"RIFF")), hash_bytes(b"a") == hash_bytes(bytearray(b"a"))
    (32, True)
    """
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def clip_id_for(content_hash: str, uri: str) -> str:
    """A file's clip id: BLAKE2b-128 of its content hash and its uri (hex).

    The same bytes at the same uri keep their id (a ``touch`` or a copy over itself changes
    nothing); two copies of one file at two uris are two clips.

    >>> a = clip_id_for("00" * 16, "/c/a.wav")
    >>> a == clip_id_for("00" * 16, "/c/a.wav"), a == clip_id_for("00" * 16, "/c/copy.wav")
    (True, False)
    """
    return hashlib.blake2b(f"{content_hash}\0{uri}".encode(), digest_size=16).hexdigest()


class LabelsError(ValueError):
    """A labels file that cannot be joined to the dataset's files (nothing matches, or one path
    has rows with different values)."""


@dataclass
class Labels:
    """A labels file read: ``rows`` ``{absolute uri: {column: value}}``, with ``n_rows`` rows
    in the file of which ``n_duplicated`` repeated an earlier row of the same path (with the
    same values: kept once)."""

    rows: dict[str, dict[str, str]]
    n_rows: int = 0
    n_duplicated: int = 0
    columns: tuple[str, ...] = ()


def load_labels(path: str, on: str = "path", root: str | None = None) -> Labels:
    """Read a labels CSV/Parquet, keyed by absolute uri (see :func:`read_labels`).

    A path listed twice with the same values counts in ``n_duplicated`` and is kept once; a
    path listed twice with different values raises :class:`LabelsError` naming it (there is no
    way to tell which row is right).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = p.write_text("path,genre\\na.wav,rock\\na.wav,rock\\nb.wav,jazz\\n")
    >>> lab = load_labels(str(p))
    >>> len(lab.rows), lab.n_rows, lab.n_duplicated
    (2, 3, 1)
    """
    import pandas as pd  # here: ~0.5 s to import, and commands that only list files skip it

    with open_uri(path) as f:
        df = (
            pd.read_parquet(f)
            if path.endswith(".parquet")
            else pd.read_csv(f, dtype=str, keep_default_na=False)
        )
    if on not in df.columns:
        raise LabelsError(
            f"labels file {path}: no column {on!r} (columns: {', '.join(df.columns)})"
        )
    base = (
        root
        if root is not None
        else (path.rsplit("/", 1)[0] if "://" in path else str(Path(path).parent))
    )
    out: dict[str, dict[str, str]] = {}
    n_dup = 0
    conflicts: dict[str, list[str | int]] = {}  # uri -> [path as written, rows]
    for row in df.astype(str).to_dict("records"):
        rel = row.pop(on)
        if "://" in rel or os.path.isabs(rel):
            uri = rel
        elif "://" in base:
            uri = f"{base.rstrip('/')}/{rel}"
        else:
            uri = os.path.abspath(os.path.join(base, rel))
        if uri in out:
            n_dup += 1
            if out[uri] != row:
                conflicts.setdefault(uri, [rel, 1])[1] += 1  # type: ignore[operator]
            continue
        out[uri] = row
    if conflicts:
        shown = "; ".join(
            f"{rel}: {n} rows with different values" for rel, n in sorted(conflicts.values())[:5]
        )
        more = f" (and {len(conflicts) - 5} more paths)" if len(conflicts) > 5 else ""
        raise LabelsError(
            f"labels file {path}: {shown}{more}. Keep one row per path: there is no telling "
            "which row is right"
        )
    cols = tuple(c for c in df.columns if c != on)
    return Labels(rows=out, n_rows=len(df), n_duplicated=n_dup, columns=cols)


def read_labels(path: str, on: str = "path", root: str | None = None) -> dict[str, dict[str, str]]:
    """Read a labels CSV/Parquet into ``{absolute uri: {column: value}}``.

    Values are kept as strings (a column's type is the analyst's business);
    the ``on`` column is resolved relative to ``root`` (default: the labels file's folder).
    Duplicated rows follow :func:`load_labels` (identical: kept once; conflicting: an error).
    """
    return load_labels(path, on, root).rows


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
    #: unchanged files whose labels changed: their ``clips`` rows are rewritten, nothing is
    #: recomputed
    relabeled: list[FileEntry] = field(default_factory=list)
    #: files that failed before and have not changed since (same size and mtime, same
    #: settings): not retried unless asked (``retry_failed``)
    failed_before: list[FileEntry] = field(default_factory=list)

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
            relabeled=self.relabeled,
            failed_before=self.failed_before,
        )

    def summary(self) -> str:
        s = (
            f"{len(self.new)} new, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged"
        )
        if self.deferred:
            s += f", {len(self.deferred)} deferred to later runs"
        if self.failed_before:
            s += (
                f", {len(self.failed_before)} failed before and unchanged, not retried "
                "(--retry-failed)"
            )
        if self.relabeled:
            s += f"; labels of {len(self.relabeled)} clips changed (features kept)"
        return s


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

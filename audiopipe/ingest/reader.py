"""Read a shard's files for extraction: sizes, hashes, headers and decoded audio blocks.

:meth:`ShardReader.events` walks a shard's files in order and says, per file, what the
extractor must do with it: :class:`Same` (a changed file whose bytes are those ingested, so
its clip id is its stored one: keep its rows), :class:`Failed` (too big, unreadable header... before decoding: an
``errors`` row), or :class:`Opened` (a clip to extract, with a source of its audio blocks:
decode, mono, resample). Decoding happens when the extractor pulls the blocks.

With a spare core, :func:`audiopipe.ingest.pool.ordered_streams` takes these events from
several threads (one at a time, in order) and decodes each clip in the thread that took it.

A remote file (an fsspec URL: ``s3://``...) of at most :data:`IN_MEMORY_BYTES` is read once:
its bytes are fetched into memory (never more than ``limits.max_bytes`` of them), hashed, and
its header and audio decoded from them (``Opened.data``); the object store serves one
``GET`` per file instead of one to hash it and more to decode it. A local file is hashed,
then decoded from its path (libsndfile reads a path natively, and the second read comes from
the page cache: ``benchmarks/read_once.py`` measures both ways).

Examples
--------
>>> import tempfile, numpy as np, soundfile as sf
>>> from audiopipe.catalog import FileEntry
>>> d = tempfile.mkdtemp()
>>> sf.write(f"{d}/a.wav", np.zeros(8000, np.float32), 8000)
>>> entries = [FileEntry(f"{d}/a.wav", 16044, 1.0), FileEntry(f"{d}/b.wav", 0, 1.0)]
>>> reader = ShardReader(sample_rate=8000, channels="mix", block_seconds=60.0)
>>> [(isinstance(e, Opened), isinstance(e, Failed)) for e in reader.events(entries)]
[(True, False), (False, True)]
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, BinaryIO

import fsspec
import numpy as np

from audiopipe.audio import AudioError, AudioInfo, check_header, info, stream
from audiopipe.catalog import HASH_CHUNK, FileEntry, clip_id_for, hash_bytes, hash_file
from audiopipe.ingest.shard import DecoderHook

__all__ = [
    "ShardReader", "Same", "Failed", "Opened", "READER_PHASES", "READ_KINDS", "IN_MEMORY_BYTES",
    "check_local_file", "os_error",
]  # fmt: skip

#: the ``error_type`` of a file that could not be read at all (step ``read`` of ``errors``)
READ_KINDS = ("symlink_loop", "dangling_link", "permission", "not_a_file", "missing", "io_error")

#: the phases a reader times (decode, mix and resample are timed by audiopipe.audio.stream)
READER_PHASES = ("hash", "header", "decode", "mix", "resample")

#: a remote file of at most this many bytes (its listed size) is read once, into memory, and
#: decoded from there; a bigger one is hashed as it streams, then decoded through fsspec (read
#: twice, memory bounded by fsspec's cache block): with :mod:`audiopipe.ingest.pool`'s window
#: of files in flight, a worker holds at most a few of them
IN_MEMORY_BYTES = 256 * 2**20

BlockSource = Callable[[], Iterator[np.ndarray]]


@dataclass
class Same:
    """A changed file whose bytes are those already ingested: its stored rows stay."""

    entry: FileEntry
    clip_id: str


@dataclass
class Failed:
    """A file that failed before its audio was decoded."""

    entry: FileEntry
    clip_id: str | None
    error: Exception


@dataclass
class Opened:
    """A clip to extract. ``blocks()`` yields its mono blocks at the feature rate
    (``sample_rate``); each call reads the audio from the start (two-pass recipes call it
    twice)."""

    entry: FileEntry
    clip_id: str
    header: AudioInfo
    sample_rate: int
    blocks: BlockSource
    #: BLAKE2b-128 of the file's bytes (the clip id hashes it with the uri)
    content_hash: str | None = None
    #: the file's bytes, read once to hash them, when it is remote (and not too big to hold
    #: in memory): ``blocks`` decodes them instead of reading the file again
    data: bytes | None = None


Event = Same | Failed | Opened


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


@contextmanager
def opened(
    uri: str, storage_options: Mapping[str, Any] | None, data: bytes | None = None
) -> Iterator[str | BinaryIO]:
    """The file's bytes already read (``data``) as an in-memory file, else a local file as its
    path (libsndfile reads it natively), anything else through fsspec."""
    if data is not None:
        yield io.BytesIO(data)  # (shares ``data``: nothing is copied)
        return
    if is_local(uri):
        yield uri.removeprefix("file://")
        return
    with fsspec.open(uri, "rb", **(storage_options or {})) as f:
        yield f


def os_error(err: OSError, what: str = "the file") -> AudioError:
    """An :class:`AudioError` naming the cause of an ``OSError`` met reading a file, in a line.

    Examples
    --------
    >>> os_error(PermissionError(13, "Permission denied")).kind
    'permission'
    """
    code = err.errno
    if code in (errno.EACCES, errno.EPERM):
        return AudioError(f"permission denied: cannot read {what} (check its owner and mode)",
                          "permission")
    if code == errno.ELOOP:
        return AudioError("symbolic link loop: the link resolves to itself", "symlink_loop")
    if code == errno.ENOENT:
        return AudioError(f"{what} disappeared after it was listed", "missing")
    if code == errno.EISDIR:
        return AudioError("is a directory named like an audio file, not a file", "not_a_file")
    return AudioError(f"cannot read {what}: {err.strerror or err}", "io_error")


def check_local_file(path: str) -> None:
    """Raise :class:`AudioError` when a listed local path is not a readable regular file.

    Symbolic link loops, dangling links, directories and special files (a FIFO would block
    the reader forever) named like audio files, and files this process may not read, each
    with the cause named (their listed size of 0 would otherwise read as "file is empty").
    """
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ENOENT and os.path.islink(path):
            raise AudioError(
                f"dangling symbolic link: its target {os.readlink(path)!r} does not exist",
                "dangling_link",
            ) from None
        raise os_error(err) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError("is a directory named like an audio file, not a file", "not_a_file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(
            "is not a regular file (a FIFO, socket or device named like an audio file)",
            "not_a_file",
        )
    if not os.access(path, os.R_OK):
        raise os_error(PermissionError(errno.EACCES, "Permission denied"))


class ShardReader:
    """How a shard's files are read: decode settings, limits, storage, the decoder hook.

    ``timings`` accumulates the seconds spent per phase (:data:`READER_PHASES`).
    """

    def __init__(
        self,
        sample_rate: int,
        channels: str | int,
        block_seconds: float,
        limits: Mapping[str, Any] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        hook: DecoderHook | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_seconds = block_seconds
        self.limits = SimpleNamespace(**limits) if limits is not None else None
        self.storage_options = storage_options
        self.hook = hook
        self.timings: dict[str, float] = dict.fromkeys(READER_PHASES, 0.0)

    def events(self, files: Iterator[FileEntry] | list[FileEntry]) -> Iterator[Event]:
        """What to do with each file, in order (decoding is left to ``Opened.blocks``)."""
        for entry in files:
            clip_id = content_hash = data = None
            try:
                content_hash, data = self._fetch(entry)
                clip_id = clip_id_for(content_hash, entry.uri)
                if entry.prev_clip_id is not None and clip_id == entry.prev_clip_id:
                    yield Same(entry, clip_id)
                    continue
                if self.hook is not None:
                    self.hook(entry.uri)
                header = self.header(entry.uri, data)
            except Exception as err:  # noqa: BLE001 - a file's failure is an event, not the end
                yield Failed(entry, clip_id, err)
                continue
            yield Opened(
                entry,
                clip_id,
                header,
                self.sample_rate,
                lambda uri=entry.uri, data=data: self.blocks(uri, data),
                content_hash,
                data,
            )

    def clip_id(self, entry: FileEntry) -> str:
        """The file's clip id (its content hash with its uri), after checking what it is and
        its size."""
        return self.identify(entry)[0]

    def identify(self, entry: FileEntry) -> tuple[str, str]:
        """The file's clip id and content hash (BLAKE2b-128 of its bytes), after checking
        what it is and its size."""
        content_hash = self._fetch(entry, keep=False)[0]
        return clip_id_for(content_hash, entry.uri), content_hash

    def _fetch(self, entry: FileEntry, keep: bool = True) -> tuple[str, bytes | None]:
        """The file's content hash, and its bytes when ``keep`` and it is remote and at most
        :data:`IN_MEMORY_BYTES` (read once, hashed, decoded from there), else None."""
        if is_local(entry.uri):
            check_local_file(entry.uri.removeprefix("file://"))
        if entry.size == 0:
            raise AudioError("file is empty (0 bytes)", "empty")
        max_bytes = getattr(self.limits, "max_bytes", None)
        if max_bytes is not None and entry.size > max_bytes:
            raise AudioError(
                f"file has {entry.size} bytes, over limits.max_bytes={max_bytes}", "limits"
            )
        t0 = time.perf_counter()
        try:
            if keep and not is_local(entry.uri) and entry.size <= IN_MEMORY_BYTES:
                data = self._read(entry.uri, IN_MEMORY_BYTES if max_bytes is None
                                  else min(max_bytes, IN_MEMORY_BYTES))  # fmt: skip
                return hash_bytes(data), data
            return hash_file(entry.uri, self.storage_options), None
        except PermissionError as err:
            raise os_error(err) from None
        except (FileNotFoundError, IsADirectoryError) as err:
            raise os_error(err) from None
        finally:
            self.timings["hash"] += time.perf_counter() - t0

    def _read(self, uri: str, limit: int) -> bytes:
        """The bytes of a remote file, refused (:class:`AudioError`) as soon as there are more
        than ``limit`` (it grew since it was listed): never more than that in memory."""
        over = AudioError(
            f"file has grown past {limit} bytes since it was listed (limits.max_bytes, or "
            f"the {IN_MEMORY_BYTES} a remote file is read into memory up to): not read", "limits",
        )  # fmt: skip
        buf = io.BytesIO()
        with opened(uri, self.storage_options) as f:
            if (getattr(f, "size", None) or 0) > limit:
                raise over
            while chunk := f.read(min(HASH_CHUNK, limit + 1 - buf.tell())):
                buf.write(chunk)
                if buf.tell() > limit:
                    raise over
        return buf.getvalue()

    def header(self, uri: str, data: bytes | None = None) -> AudioInfo:
        """The file's header (from ``data``, its bytes, when read already), checked against
        the limits."""
        t0 = time.perf_counter()
        try:
            with opened(uri, self.storage_options, data) as src:
                hdr = info(src)
            check_header(hdr, self.limits)
            return hdr
        finally:
            self.timings["header"] += time.perf_counter() - t0

    def blocks(self, uri: str, data: bytes | None = None) -> Iterator[np.ndarray]:
        """The file's mono blocks at the feature rate (decoded as pulled; from ``data``, its
        bytes, when read already)."""
        with opened(uri, self.storage_options, data) as src:
            yield from stream(
                src,
                self.sample_rate,
                channels=self.channels,
                block_seconds=self.block_seconds,
                limits=self.limits,
                timings=self.timings,
            )

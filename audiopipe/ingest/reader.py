"""Read a shard's files for extraction: sizes, hashes, headers and decoded audio blocks.

:meth:`ShardReader.events` walks a shard's files in order and says, per file, what the
extractor must do with it: :class:`Same` (a changed file whose bytes are those ingested, so
its clip id is its stored one: keep its rows), :class:`Failed` (too big, unreadable header... before decoding: an
``errors`` row), or :class:`Opened` (a clip to extract, with a source of its audio blocks:
decode, mono, resample). Decoding happens when the extractor pulls the blocks.

:func:`read_ahead` runs the same walk in a second thread that hashes, decodes and mixes
ahead of the extractor (a bounded queue of native-rate mono blocks in between), while the
extractor's thread resamples and computes features: on a machine with a spare core a shard
then runs at about the speed of the slower thread, which measured about even (hash + decode
+ mix, against resample + features + Zarr). libsndfile, numpy, soxr and hashlib release the
GIL while they work.

Examples
--------
>>> import tempfile, numpy as np, soundfile as sf
>>> from audiopipe.catalog import FileEntry
>>> d = tempfile.mkdtemp()
>>> sf.write(f"{d}/a.wav", np.zeros(8000, np.float32), 8000)
>>> entries = [FileEntry(f"{d}/a.wav", 16044, 1.0), FileEntry(f"{d}/b.wav", 0, 1.0)]
>>> reader = ShardReader(sample_rate=8000, channels="mix", block_seconds=60.0)
>>> [(isinstance(e, Opened), isinstance(e, Failed)) for e in read_ahead(reader.events(entries))]
[(True, False), (False, True)]
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, BinaryIO

import fsspec
import numpy as np

from audiopipe.audio import AudioError, AudioInfo, check_header, info, resample_blocks, stream
from audiopipe.catalog import FileEntry, clip_id_for, hash_file
from audiopipe.ingest.shard import DecoderHook

__all__ = [
    "ShardReader", "Same", "Failed", "Opened", "read_ahead", "READER_PHASES", "READ_KINDS",
    "check_local_file", "os_error",
]  # fmt: skip

#: the ``error_type`` of a file that could not be read at all (step ``read`` of ``errors``)
READ_KINDS = ("symlink_loop", "dangling_link", "permission", "not_a_file", "missing", "io_error")

#: the phases a reader times (decode, mix and resample are timed by audiopipe.audio.stream)
READER_PHASES = ("hash", "header", "decode", "mix", "resample")

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
    twice). ``native()`` yields them at the file's rate, not resampled."""

    entry: FileEntry
    clip_id: str
    header: AudioInfo
    sample_rate: int
    blocks: BlockSource
    native: BlockSource
    #: BLAKE2b-128 of the file's bytes (the clip id hashes it with the uri)
    content_hash: str | None = None

    def finish(self) -> None:
        """Skip what is left of the first pass (after a failure part-way through it)."""


Event = Same | Failed | Opened


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


@contextmanager
def opened(uri: str, storage_options: Mapping[str, Any] | None) -> Iterator[str | BinaryIO]:
    """A local file as its path (libsndfile reads it natively), anything else through fsspec."""
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
            clip_id = content_hash = None
            try:
                clip_id, content_hash = self.identify(entry)
                if entry.prev_clip_id is not None and clip_id == entry.prev_clip_id:
                    yield Same(entry, clip_id)
                    continue
                if self.hook is not None:
                    self.hook(entry.uri)
                header = self.header(entry.uri)
            except Exception as err:  # noqa: BLE001 - a file's failure is an event, not the end
                yield Failed(entry, clip_id, err)
                continue
            yield Opened(
                entry,
                clip_id,
                header,
                self.sample_rate,
                lambda uri=entry.uri: self.blocks(uri),
                lambda uri=entry.uri: self.blocks(uri, resample=False),
                content_hash,
            )

    def clip_id(self, entry: FileEntry) -> str:
        """The file's clip id (its content hash with its uri), after checking what it is and
        its size."""
        return self.identify(entry)[0]

    def identify(self, entry: FileEntry) -> tuple[str, str]:
        """The file's clip id and content hash (BLAKE2b-128 of its bytes), after checking
        what it is and its size."""
        content_hash = self._content_hash(entry)
        return clip_id_for(content_hash, entry.uri), content_hash

    def _content_hash(self, entry: FileEntry) -> str:
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
            return hash_file(entry.uri, self.storage_options)
        except PermissionError as err:
            raise os_error(err) from None
        except (FileNotFoundError, IsADirectoryError) as err:
            raise os_error(err) from None
        finally:
            self.timings["hash"] += time.perf_counter() - t0

    def header(self, uri: str) -> AudioInfo:
        t0 = time.perf_counter()
        try:
            with opened(uri, self.storage_options) as src:
                hdr = info(src)
            check_header(hdr, self.limits)
            return hdr
        finally:
            self.timings["header"] += time.perf_counter() - t0

    def blocks(self, uri: str, resample: bool = True) -> Iterator[np.ndarray]:
        """The file's mono blocks at the feature rate, or its own (decoded as pulled)."""
        with opened(uri, self.storage_options) as src:
            yield from stream(
                src,
                self.sample_rate if resample else None,
                channels=self.channels,
                block_seconds=self.block_seconds,
                limits=self.limits,
                timings=self.timings,
            )


_END = object()


class _Ahead(Opened):
    """An :class:`Opened` whose first pass comes from the reading thread's queue (decoded and
    mixed there) and is resampled here, so the two threads share the work about evenly."""

    def __init__(
        self, ev: Opened, q: queue.Queue, timings: MutableMapping[str, float] | None
    ) -> None:
        super().__init__(
            ev.entry, ev.clip_id, ev.header, ev.sample_rate, self._first, ev.native, ev.content_hash
        )
        self._q = q
        self._timings = timings
        self._again = ev.blocks  # a second pass decodes here, synchronously
        self._used = False
        self._done = False

    def _first(self) -> Iterator[np.ndarray]:
        if self._used or self._done:  # a second pass, or the first was skipped
            yield from self._again()
            return
        self._used = True
        yield from resample_blocks(
            self._queued(), self.header.sample_rate, self.sample_rate, timings=self._timings
        )

    def _queued(self) -> Iterator[np.ndarray]:
        while True:
            item = self._get()
            if item is _END:
                return
            yield item

    def _get(self) -> Any:
        item = self._q.get()
        if item is _END or isinstance(item, BaseException):
            self._done = True
        if isinstance(item, BaseException):
            raise item
        return item

    def finish(self) -> None:
        while not self._done:
            try:
                self._get()
            except BaseException:  # noqa: BLE001 - the file failed already; drain only
                pass


def read_ahead(
    events: Iterator[Event],
    depth: int = 2,
    *,
    timings: MutableMapping[str, float] | None = None,
    walk_ahead: int = 1,
) -> Iterator[Event]:
    """``events`` produced, and their first pass of audio decoded, in a second thread.

    The thread decodes and mixes to mono; the consumer's thread resamples (its time goes to
    ``timings["resample"]``) and extracts. At most ``depth`` blocks wait in between (bounded
    memory). With ``walk_ahead`` > 0 a third thread walks the files (hash, header) up to
    that many files ahead of the decoding: hashing is a sixth of the reading thread's work
    (BLAKE2b at ~450 MB/s against FLAC decoding at ~80 MB/s), and without it the reading
    thread, not the extraction, set the pace. The consumer must call ``finish()`` on an
    :class:`Opened` it stops reading early. If the consumer stops, the threads stop at
    their next block or file.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    if walk_ahead > 0:
        events = _walked_ahead(events, walk_ahead, stop)

    def put(item: Any) -> None:
        _put(q, item, stop)

    def produce() -> None:
        try:
            for ev in events:
                if not isinstance(ev, Opened):
                    put(ev)
                    continue
                put(("opened", ev))
                try:
                    for block in ev.native():
                        put(block)
                except _Stopped:
                    raise
                except Exception as err:  # noqa: BLE001 - the consumer raises it for this file
                    put(err)
                    continue
                put(_END)
            put(None)
        except _Stopped:
            pass
        except BaseException as err:  # noqa: BLE001 - reported to the consumer
            with contextlib.suppress(_Stopped):
                put(_Crash(err))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # (the walking thread, if any, ends with it)

    thread = threading.Thread(target=produce, name="audiopipe-read-ahead", daemon=True)
    thread.start()
    last: _Ahead | None = None
    try:
        while True:
            if last is not None:
                last.finish()  # the queue holds the rest of its first pass: skip it
            item = q.get()
            if item is None:
                return
            if isinstance(item, _Crash):
                raise item.error
            if isinstance(item, tuple):
                last = _Ahead(item[1], q, timings)
                yield last
            else:
                last = None
                yield item
    finally:
        stop.set()
        thread.join(timeout=10)  # (a block being decoded, or a decoder hook, finishes first)


def _walked_ahead(
    events: Iterator[Event], ahead: int, stop: threading.Event
) -> Iterator[Event]:
    """``events`` produced in a thread of their own, at most ``ahead`` waiting; a failure of
    the walk itself is raised here, where the events are consumed. The thread ends at the
    last event, when ``stop`` is set, or when this generator is closed."""
    q: queue.Queue = queue.Queue(maxsize=ahead)
    closed = threading.Event()

    def walk() -> None:
        try:
            for ev in events:
                _put(q, ev, stop, closed)
            _put(q, _END, stop, closed)
        except _Stopped:
            pass
        except BaseException as err:  # noqa: BLE001 - raised in the consuming thread
            with contextlib.suppress(_Stopped):
                _put(q, _Crash(err), stop, closed)

    thread = threading.Thread(target=walk, name="audiopipe-read-ahead-walk", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    raise _Stopped from None
                continue
            if item is _END:
                return
            if isinstance(item, _Crash):
                raise item.error
            yield item
    finally:
        closed.set()
        thread.join(timeout=10)


def _put(q: queue.Queue, item: Any, *stops: threading.Event) -> None:
    """Put ``item`` once there is room; :class:`_Stopped` when any of ``stops`` is set."""
    while not any(s.is_set() for s in stops):
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped


class _Stopped(Exception):
    """The consumer went away: the reading thread ends."""


@dataclass
class _Crash:
    error: BaseException

"""Read a shard's files for extraction: sizes, hashes, headers and decoded audio blocks.

:meth:`ShardReader.events` walks a shard's files in order and says, per file, what the
extractor must do with it: :class:`Same` (a changed file whose bytes hash to its stored clip
id: keep its rows), :class:`Failed` (too big, unreadable header... before decoding: an
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
import queue
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
from audiopipe.catalog import FileEntry, hash_file
from audiopipe.ingest.shard import DecoderHook

__all__ = ["ShardReader", "Same", "Failed", "Opened", "read_ahead", "READER_PHASES"]

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
            clip_id = None
            try:
                clip_id = self.clip_id(entry)
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
            )

    def clip_id(self, entry: FileEntry) -> str:
        """The file's clip id (hash of its bytes), after checking its size."""
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
        super().__init__(ev.entry, ev.clip_id, ev.header, ev.sample_rate, self._first, ev.native)
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
) -> Iterator[Event]:
    """``events`` produced, and their first pass of audio decoded, in a second thread.

    The thread hashes, reads headers, decodes and mixes to mono; the consumer's thread
    resamples (its time goes to ``timings["resample"]``) and extracts. At most ``depth``
    blocks wait in between (bounded memory). The consumer must call ``finish()`` on an
    :class:`Opened` it stops reading early. If the consumer stops, the thread stops at its
    next block.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

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


class _Stopped(Exception):
    """The consumer went away: the reading thread ends."""


@dataclass
class _Crash:
    error: BaseException

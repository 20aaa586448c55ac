"""Work on a shard's files in several threads, whole files each, and hand the results back in
file order.

:func:`ordered_streams` is how a worker with spare cores extracts a shard: ``n_threads``
threads each take the next file from the shard's walk (hash, header: one thread at a time,
in file order) and run its whole extraction (decode, mix, resample, features, statistics),
putting what it yields into that file's own bounded queue; the calling thread takes the
files back in order and writes them (the frames part, the rows). A thread that is done with
a file takes the next one, so no core idles while another has a backlog, whatever each
stage costs (a fixed split of the stages between threads leaves the faster one waiting).
libsndfile, numpy's FFT and ufuncs, soxr and hashlib release the GIL on large buffers.

Memory is bounded: at most ``window`` files are taken and not yet handed back, and each of
them holds at most ``depth`` results in its queue (a thread whose queue is full waits for
the consumer).

Examples
--------
>>> def squares(n):
...     for i in range(n):
...         yield i * i
>>> [(n, list(items)) for n, items in ordered_streams(iter([3, 1, 2]), squares, n_threads=2)]
[(3, [0, 1, 4]), (1, [0]), (2, [0, 1])]
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["ordered_streams"]

T = TypeVar("T")

_END = object()
_POLL = 0.1  # seconds between checks that the consumer is still there


class _Stopped(Exception):
    """The consumer went away (or gave up on this item): the thread stops producing."""


class _Raised:
    """What the item's function raised: re-raised in the consumer at that point."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Slot:
    """One item taken from the input: its results, in a bounded queue."""

    def __init__(self, item: Any, depth: int) -> None:
        self.item = item
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.abandoned = threading.Event()

    def put(self, x: Any, stop: threading.Event) -> None:
        while not (stop.is_set() or self.abandoned.is_set()):
            try:
                self.q.put(x, timeout=_POLL)
                return
            except queue.Full:
                continue
        raise _Stopped


def ordered_streams(
    items: Iterator[T],
    fn: Callable[[T], Iterable[Any]],
    n_threads: int = 2,
    *,
    window: int | None = None,
    depth: int = 64,
    name: str = "audiopipe-files",
) -> Iterator[tuple[T, Iterator[Any]]]:
    """``(item, results)`` for each of ``items`` in order, ``results`` produced by ``fn(item)``
    in one of ``n_threads`` threads.

    ``items`` is consumed by the threads, one ``next()`` at a time (a lock serialises it, so a
    generator that walks files in order keeps its order and its thread safety). What ``fn``
    raises is raised by ``results`` where it happened (an exception is a per-item result: the
    threads go on with the next items); what ``items`` itself raises is raised here, after the
    items before it. Take each ``results`` before the next item: when the consumer moves on,
    or stops early, what is left of the previous item is dropped and its thread told to stop
    it. At most ``window`` items (default ``2 * n_threads``) are in flight, each with at most
    ``depth`` results waiting. Closing the generator stops the threads at their next result.
    """
    n_threads = max(1, int(n_threads))
    window = max(n_threads, window or 2 * n_threads)
    lock = threading.Lock()  # taking the next item
    ready = threading.Condition()  # a slot appeared, or the input ended
    slots: dict[int, _Slot] = {}
    state: dict[str, Any] = {"next": 0, "end": None, "crash": None}
    room = threading.Semaphore(window)
    stop = threading.Event()

    def take() -> tuple[int, _Slot] | None:
        """The next item as a slot (None at the end of the input, or when stopping)."""
        while not room.acquire(timeout=_POLL):
            if stop.is_set():
                return None
        with lock:
            if stop.is_set() or state["end"] is not None:
                room.release()
                return None
            i = state["next"]
            try:
                item = next(items)
            except StopIteration:
                with ready:
                    state["end"] = i
                    ready.notify_all()
                room.release()
                return None
            except BaseException as err:  # noqa: BLE001 - the walk broke: the consumer raises it
                with ready:
                    state["end"], state["crash"] = i, err
                    ready.notify_all()
                room.release()
                return None
            state["next"] = i + 1
            slot = _Slot(item, depth)
            with ready:
                slots[i] = slot
                ready.notify_all()
            return i, slot

    def work() -> None:
        while not stop.is_set():
            taken = take()
            if taken is None:
                return
            _, slot = taken
            try:
                results = iter(fn(slot.item))
                try:
                    for x in results:
                        slot.put(x, stop)
                finally:
                    close = getattr(results, "close", None)
                    if close is not None:
                        close()
                slot.put(_END, stop)
            except _Stopped:
                continue
            except BaseException as err:  # noqa: BLE001 - this item's failure, raised in the consumer
                with contextlib.suppress(_Stopped):
                    slot.put(_Raised(err), stop)

    threads = [
        threading.Thread(target=work, name=f"{name}-{k}", daemon=True) for k in range(n_threads)
    ]
    for t in threads:
        t.start()

    def results_of(slot: _Slot) -> Iterator[Any]:
        while True:
            x = slot.q.get()
            if x is _END:
                return
            if isinstance(x, _Raised):
                raise x.error
            yield x

    try:
        i = 0
        while True:
            with ready:
                while i not in slots and (state["end"] is None or i < state["end"]):
                    ready.wait(_POLL)
                slot = slots.pop(i, None)
            if slot is None:  # the input ended (or broke) here
                if state["crash"] is not None:
                    raise state["crash"]
                return
            try:
                yield slot.item, results_of(slot)
            finally:
                slot.abandoned.set()  # what the consumer did not take is dropped
                room.release()
            i += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)  # (a block being decoded, or a decoder hook, finishes first)

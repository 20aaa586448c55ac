"""The lease of a held lock ticket: a heartbeat its holder renews, the storage's clock to age it.

A ticket of :mod:`audiopipe.store.lock` held by a process of another host (a Dask worker, a
second machine, a container with another hostname) cannot be checked with its pid. So while a
ticket ``<n>.json`` is held, a daemon thread of its holder (:class:`Lease`) overwrites a *beat*
object ``<n>.beat`` beside it every :data:`BEAT_S` seconds; the ticket records the holder's
lease (``lease_s``). Nothing but the beat is ever overwritten, and never by another process:
taking the lock over is still creating the next ticket, as before.

How old a beat is (:func:`beat_age_s`) is judged on **the storage's clock only**: the beat's
mtime (``LastModified`` on S3) against the mtime of a small object (``<folder>/_clock``) the
judging process has just written to the same storage - the storage's notion of now. Two
hosts' clocks never meet: a holder whose clock is an hour off is aged right, and so is one
judged by a host whose clock is. (Watching the beat unchanged over :data:`LEASE_S` of local
monotonic time needs no write, but every short-lived command - an ingest refused at once -
would then wait a whole lease before it could tell a dead holder; a write per
:data:`CLOCK_TTL_S` per folder is cheaper.) The storage's now is the probe's mtime plus the
time since its write returned on a clock neither a wall-clock step nor a suspend fools
(:func:`_steady`), measured at most every :data:`CLOCK_TTL_S`; S3 stores whole seconds, so an age may be
a second off, which a lease of minutes does not notice. When the storage's clock cannot be read
(a read-only observer), or its write took longer than :data:`CLOCK_WRITE_MAX_S`, the age is
unknown and the holder is taken as alive.

A holder must not keep working on a lease it lost: :meth:`Lease.held` (cheap: a flag and one
existence check) is false once its beat could not be written for :data:`LEASE_S` / 2 (on
:func:`_steady`: a suspended host counts), or once a later ticket exists (another process took
the lock over; an ingest, rebuild or vacuum takes over the lock of a stage it judges dead:
:func:`audiopipe.store.lock.stages_running`); the beat thread then warns once
(:class:`RuntimeWarning` naming the ticket). A loss by a late beat only is undone when the
beat is written again within :data:`RECOVER_S` of a lease of the last (nobody could have taken
the lock over) and no later ticket exists. :meth:`Lease.check` raises :class:`LeaseLost`;
:func:`check_lease` does it for the lease this process holds on a folder, if any (the ingest's
publish calls it before its first commit, a stage before the ``runs`` row that makes its
outputs visible). A check cannot fence a commit already under way: the lease is minutes long
and a holder that stalls that long between its check and its commit is not defended against.

Examples
--------
>>> import tempfile
>>> from audiopipe.store.location import Location
>>> from audiopipe.store.lock import dataset_lock
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> with dataset_lock(loc) as lease:
...     lease.held()
True
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from typing import Any

__all__ = [
    "BEAT_S",
    "CLOCK_TTL_S",
    "LEASE_S",
    "LEGACY_STALE_S",
    "RECOVER_S",
    "Lease",
    "LeaseLost",
    "beat_age_s",
    "check_lease",
    "mtime",
]

#: seconds between two beats of a held ticket (set smaller in tests, before taking a lock)
BEAT_S = 10.0
#: a ticket of another host (or whose pid cannot be checked) whose beat is older than this is
#: stale: its holder died. The larger of this and the ticket's own ``lease_s`` is used.
LEASE_S = 120.0
#: a ticket of another host written by an audiopipe without heartbeats (no ``lease_s``) is
#: taken over only once older than this (a week: longer than any run; a dead one no longer
#: blocks for ever). Younger, its error says which folder to remove.
LEGACY_STALE_S = 7 * 86400.0
#: seconds a measured offset between this host's clock and the storage's is reused
CLOCK_TTL_S = 60.0
#: a write of the clock probe that took longer than this is not used to read the storage's
#: clock (when in the call it landed is too uncertain); the age is unknown that time
CLOCK_WRITE_MAX_S = 5.0
CLOCK_NAME = "_clock"
#: a lease lost by a late beat is held again when the next beat is written within this share
#: of :data:`LEASE_S` of the last one (the margin covers S3's whole-second mtimes)
RECOVER_S = 0.75

_offsets: dict[str, tuple[float, float, float]] = {}  # folder -> (storage s, at, valid until)
_offsets_lock = threading.Lock()
_held: dict[str, Lease] = {}  # folder -> the lease this process holds on it
_held_lock = threading.Lock()


class LeaseLost(RuntimeError):
    """This process's lease of a lock was lost (its beat failed, or the lock was taken over)."""


def mtime(fs: Any, path: str) -> float | None:
    """The storage's modification time of ``path`` (epoch seconds), or None when absent."""
    try:
        fs.invalidate_cache(path)  # object-store metadata is cached by fsspec
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        return None
    m = info.get("mtime") or info.get("LastModified") or info.get("created")
    if m is None:
        return None
    return m.timestamp() if hasattr(m, "timestamp") else float(m)


def _steady() -> float:
    """Seconds on a clock no step of the wall clock moves and that counts a host's suspend
    (``CLOCK_BOOTTIME`` on Linux; :func:`time.monotonic` elsewhere)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.monotonic() if boottime is None else time.clock_gettime(boottime)


def _storage_now(fs: Any, folder: str) -> float | None:
    """Now on the storage's clock, never later than it: the mtime ``m`` of ``<folder>/_clock``
    just written (at most every :data:`CLOCK_TTL_S`) plus the :func:`_steady` time since the
    write returned (the write landed before: ages are never overstated; a wall-clock step
    moves nothing). None when it cannot be written, or the write took more than
    :data:`CLOCK_WRITE_MAX_S`."""
    now = _steady()
    with _offsets_lock:
        cached = _offsets.get(folder)
    if cached is None or cached[2] < now:
        probe = f"{folder}/{CLOCK_NAME}"
        t0 = _steady()
        try:
            fs.pipe_file(probe, b"")
        except OSError:
            return None
        t1 = _steady()
        m = mtime(fs, probe)
        if m is None or t1 - t0 > CLOCK_WRITE_MAX_S:
            return None
        cached = (m, t1, t1 + CLOCK_TTL_S)
        with _offsets_lock:
            _offsets[folder] = cached
    return cached[0] + (_steady() - cached[1])


def beat_path(ticket: str) -> str:
    """The beat object of ticket ``<n>.json``: ``<n>.beat``."""
    return ticket.removesuffix(".json") + ".beat"


def beat_age_s(fs: Any, folder: str, ticket: str, has_beat: bool = True) -> float | None:
    """Seconds since ``ticket`` last beat (its beat, or the ticket itself before its first
    beat: ``has_beat`` False, as a listing said, spares a request), on the storage's clock;
    None when unknown."""
    now = _storage_now(fs, folder)
    last = mtime(fs, beat_path(ticket)) if has_beat else None
    if last is None:
        last = mtime(fs, ticket)
    if now is None or last is None:
        return None
    if not has_beat and now - last > BEAT_S:  # (it may have beaten since the listing)
        last = max(last, mtime(fs, beat_path(ticket)) or last)
    return max(0.0, now - last)


def ticket_age_s(fs: Any, folder: str, ticket: str) -> float | None:
    """Seconds since ``ticket`` was written, on the storage's clock; None when unknown."""
    now, made = _storage_now(fs, folder), mtime(fs, ticket)
    return None if now is None or made is None else max(0.0, now - made)


class Lease:
    """The lease of ticket ``ticket`` (``<folder>/<n>.json``) this process holds: a daemon
    thread renews its beat every :data:`BEAT_S` until :meth:`stop`.

    Thread-safe: the state the beat thread and the holder's threads share is under a lock.
    """

    def __init__(self, fs: Any, folder: str, ticket: str, next_ticket: str) -> None:
        self.fs, self.folder, self.ticket, self._next = fs, folder, ticket, next_ticket
        self.beat = beat_path(ticket)
        self._stop = threading.Event()
        self._last_ok = _steady()  # (the ticket's creation is its first beat)
        self._lost: str | None = None
        self._beat_lost = False  # (lost only by a late beat: a later beat may undo it)
        self._worst_gap = 0.0  # (since that loss: see _beaten)
        self._err: BaseException | None = None
        self._mu = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"lease {ticket}", daemon=True)

    def start(self) -> Lease:
        with _held_lock:
            _held[self.folder] = self
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (the ticket is being released)."""
        self._stop.set()
        with _held_lock:
            if _held.get(self.folder) is self:
                del _held[self.folder]
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(BEAT_S, 1.0))

    def _taken_over(self) -> bool:
        try:
            self.fs.invalidate_cache(self._next)
            return bool(self.fs.exists(self._next))
        except OSError:
            return False  # (unknown: the beat's own age says the rest)

    def _by(self) -> str:
        """``: by <what> (pid, host)`` of the later ticket, as far as it can be read."""
        try:
            who = json.loads(self.fs.cat_file(self._next).decode() or "{}")
            return f": by {who['what']} (pid {who.get('pid')} on {who.get('host')})"
        except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            return ""

    def _run(self) -> None:
        warned = False
        while not self._stop.wait(BEAT_S):
            began = _steady()
            try:
                self.fs.pipe_file(self.beat, str(time.time()).encode())
                self._beaten(began)
            except Exception as e:  # noqa: BLE001 - any failure to beat is reported below
                self._err = e
            if self._stop.is_set():
                return
            if self.held():
                warned = False
                continue
            if not warned:
                warnings.warn(f"lock ticket {self.ticket} (pid {os.getpid()}): {self._lost}: "
                              f"this run no longer holds it and must not commit",
                              RuntimeWarning, stacklevel=1)
                warned = True
            with self._mu:
                for_good = not self._beat_lost or max(
                    self._worst_gap, _steady() - self._last_ok) >= RECOVER_S * LEASE_S
            if for_good:
                return  # lost for good: stop beating (the lock is taken over a lease later)

    def _beaten(self, began: float) -> None:
        """A beat written, its write begun at ``began``. A loss by a late beat is undone when
        nobody could have judged the beat stale - from the loss on, no span between the start
        of a beat's write and the end of the next reached :data:`RECOVER_S` of the lease -,
        this write was itself prompt, and no later ticket exists."""
        with self._mu:
            now = _steady()
            gap, self._last_ok, self._err = now - self._last_ok, began, None
            if self._beat_lost:
                self._worst_gap = max(self._worst_gap, gap)
            recovered = (self._beat_lost and self._worst_gap < RECOVER_S * LEASE_S
                         and now - began <= LEASE_S / 2)
        if recovered and not self._taken_over():
            with self._mu:
                if self._beat_lost:
                    self._lost, self._beat_lost = None, False
            warnings.warn(f"lock ticket {self.ticket} (pid {os.getpid()}): held again: no "
                          f"heartbeat was older than {self._worst_gap:.1f} s, before anyone "
                          f"could take the lock over", RuntimeWarning, stacklevel=1)

    def held(self) -> bool:
        """Whether this process still holds the lease: beaten within :data:`LEASE_S` / 2
        (or, late, beaten again soon enough: :meth:`_beaten`) and no later ticket exists (one
        existence check)."""
        with self._mu:
            if self._lost is None and (late := _steady() - self._last_ok) > LEASE_S / 2:
                self._lost = (f"its heartbeat {self.beat} could not be written for {late:.1f} "
                              f"s ({self._err!r}); another run takes the lock over once it is "
                              f"{LEASE_S:g} s old")
                self._beat_lost, self._worst_gap = True, 0.0
            lost = self._lost
        if lost is None and self._taken_over():
            by = self._by()
            with self._mu:
                self._lost = f"the lock was taken over (a later ticket {self._next} exists{by})"
                self._beat_lost = False
        return self._lost is None

    def check(self) -> None:
        """Raise :class:`LeaseLost` naming the ticket and why, unless :meth:`held`."""
        if not self.held():
            raise LeaseLost(f"lock ticket {self.ticket} is no longer held by this run (pid "
                            f"{os.getpid()}): {self._lost}; nothing more is committed")


def check_lease(folder: str) -> None:
    """Raise :class:`LeaseLost` if this process holds a lease on lock folder ``folder`` and
    has lost it; nothing when it holds none there (a caller without the lock)."""
    with _held_lock:
        lease = _held.get(folder)
    if lease is not None:
        lease.check()

"""One writer of a dataset at a time: a lock made of numbered, create-if-absent objects.

The lock lives in ``<dataset>/_lock/`` as a sequence of *tickets* ``000000000001.json``,
``000000000002.json``, ... The highest ticket is the current state of the lock. It is free
when that ticket has a ``.released`` marker beside it, or when its holder is a process of
this host (same boot and pid namespace) that no longer exists (a killed run), or when the ticket is unreadable and older
than :data:`UNREADABLE_STALE_S` (a writer that died between creating and filling it). To
take a free lock a process creates the *next* ticket with the storage's atomic
create-if-absent (``O_CREAT | O_EXCL`` locally, a conditional ``If-None-Match: *`` put on
S3): of several processes that found the same stale ticket, exactly one creates the next
one and the others see it held. Nothing is ever deleted to take a lock over, so a slow
process can never remove a lock that another one has just taken (the race of the old
remove-then-create takeover). Old tickets below the current one are pruned.

A holder on another host cannot be checked by its pid: while a ticket is held, its holder
beats (:mod:`audiopipe.store.lease`: ``<n>.beat`` rewritten every ``BEAT_S``), and a ticket
of another host (or with no pid to check) is stale once its beat is older than ``LEASE_S``
on the storage's own clock. A ticket of another host from an audiopipe without heartbeats
(no ``lease_s`` in it) is taken over only once older than ``LEGACY_STALE_S`` (a week); until
then its error names the ticket to remove. The lease is what :func:`dataset_lock` and
:func:`stage_lock` give to the block: ``lease.held()`` / ``lease.check()`` before a commit.

Examples
--------
>>> import tempfile
>>> from audiopipe.store.location import Location
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> with dataset_lock(loc):
...     holder(loc)["what"]
'ingest'
>>> holder(loc) is None
True
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from audiopipe.store import lease as _lease
from audiopipe.store.lease import Lease, LeaseLost, beat_age_s, ticket_age_s
from audiopipe.store.location import Location
from audiopipe.uri import remove

__all__ = [
    "DatasetLocked",
    "Lease",
    "LeaseLost",
    "dataset_lock",
    "holder",
    "stage_lock",
    "stages_running",
    "stages_refusal",
    "LOCK_DIR",
    "STAGE_LOCK_PREFIX",
    "STAGES_WAIT_S",
    "UNREADABLE_STALE_S",
]

LOCK_DIR = "_lock"
#: a stage's own lock folder is ``<prefix><stage>`` (one run of a stage at a time)
STAGE_LOCK_PREFIX = "_lock_stage_"
#: an empty or unparseable ticket older than this is a writer that died mid-create
UNREADABLE_STALE_S = 30.0
#: seconds an ingest or rebuild waits for running stages to end before it refuses
STAGES_WAIT_S = 5.0
_WIDTH = 12
_KEEP = 2  # tickets kept below the current one when pruning
_RELEASE_TRIES = 4  # a failed write of a release mark is tried again (a storage blip)
_PRUNE_EVERY = 8  # prune on every 8th release (a listing and deletes cost round trips)


class DatasetLocked(RuntimeError):
    """Another run holds the dataset."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _boot_id() -> str | None:
    """This kernel's boot id (a pid means nothing after a reboot); None when unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _pid_ns() -> str | None:
    """This process's pid namespace (``pid:[4026531836]``): a pid means nothing in another
    (a container sharing the hostname); None when unknown."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot: field 22 of ``/proc/<pid>/stat``),
    which tells a reused pid; None when unknown (or no such process)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _identity() -> dict[str, Any]:
    """What makes this process's pid meaningful to a reader of its ticket (see
    :func:`_pid_verdict`)."""
    return {"boot_id": _boot_id(), "pid_ns": _pid_ns(), "start": _start_ticks(os.getpid())}


def _pid_verdict(who: dict[str, Any], pid: int) -> bool | None:
    """Whether ticket ``who``'s holder ``pid`` (of this hostname, with a lease) is alive as far
    as its pid can tell: True, False (gone, or its pid now another process's), or None when
    its pid means nothing here (another boot or pid namespace, or not recorded): judge by the
    lease alone."""
    boot, ns = who.get("boot_id"), who.get("pid_ns")
    if "boot_id" in who and (boot, ns, _boot_id(), _pid_ns()) == (None,) * 4:
        return _alive(pid)  # (no /proc on either side - not Linux: the pid, as before)
    if boot is None or ns is None or boot != _boot_id() or ns != _pid_ns():
        return None
    if not _alive(pid):
        return False
    start = who.get("start")
    return start is None or start == _start_ticks(pid)


def _tickets(fs: Any, folder: str) -> tuple[dict[int, str], set[int], set[int]]:
    """``{number: path}`` of the tickets, the numbers that have a release marker and those
    that have a beat."""
    try:
        fs.invalidate_cache(folder)  # object-store listings are cached by fsspec
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return {}, set(), set()
    tickets: dict[int, str] = {}
    released: set[int] = set()
    beats: set[int] = set()
    for p in names:
        base = p.rstrip("/").rsplit("/", 1)[-1]
        stem, _, ext = base.partition(".")
        if not stem.isdigit():
            continue
        if ext == "json":
            tickets[int(stem)] = p
        elif ext == "released":
            released.add(int(stem))
        elif ext == "beat":
            beats.add(int(stem))
    return tickets, released, beats


def _read(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        d = json.loads(fs.cat_file(path).decode() or "null")  # one GET on object stores
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) and "pid" in d else None


def _pid(who: dict[str, Any]) -> int | None:
    try:
        return int(who["pid"])
    except (TypeError, ValueError):
        return None


def _state(fs: Any, folder: str, host: str) -> tuple[int, dict[str, Any] | None, str | None]:
    """``(current ticket number, its holder or None when the lock is free, its path)``; the
    path is None when that ticket is released (free, nothing to take over).

    A ticket of this hostname is judged by its pid only when its ``boot_id``, ``pid_ns`` and
    ``start`` (:func:`_identity`) say the pid is the holder's; otherwise, and in any case once
    its beat is older than its lease, by its lease (tickets without a lease: by pid).

    The holder says how it was judged alive (``judged_by``): ``pid`` (of this host),
    ``lease`` (``beat_age_s``, None when unknown, below ``lease_s``), ``ticket_age`` (of
    another host without heartbeats: ``ticket_age_s``) or ``starting`` (unreadable, fresh)."""
    tickets, released, beats = _tickets(fs, folder)
    if not tickets:
        return 0, None, None
    n = max(tickets)
    path = tickets[n]
    if n in released:
        return n, None, None  # (free, and nothing to take over)
    who = _read(fs, path)
    if who is None:
        if (ticket_age_s(fs, folder, path) or 0.0) > UNREADABLE_STALE_S:
            return n, None, path  # a writer died between creating and filling its ticket
        starting = {"pid": None, "host": None, "what": "run (starting)", "since": time.time()}
        return n, {**starting, "judged_by": "starting"}, path
    pid = _pid(who)
    leased = isinstance(who.get("lease_s"), int | float)
    if who.get("host") == host and pid and not leased:  # an older audiopipe: its pid alone
        if not _alive(pid):
            return n, None, path  # stale: its process is gone
        return n, {**who, "judged_by": "pid"}, path
    # (of this hostname, a pid is trusted only on this boot, in this pid namespace, with its
    # start time: a restarted container reuses pids, another container cannot see them)
    verdict = _pid_verdict(who, pid) if who.get("host") == host and pid else None
    if verdict is False:
        return n, None, path  # stale: its process is gone
    if not leased:  # another host, no heartbeat (an older audiopipe)
        age = ticket_age_s(fs, folder, path)
        if age is not None and age > _lease.LEGACY_STALE_S:
            return n, None, path
        return n, {**who, "judged_by": "ticket_age", "ticket_age_s": age}, path
    lease_s = max(_lease.LEASE_S, float(who["lease_s"]))
    age = beat_age_s(fs, folder, path, has_beat=n in beats)
    if age is not None and age > lease_s:
        return n, None, path  # stale: its holder stopped beating a lease ago (pid alive or not)
    judged = "pid" if verdict else "lease"
    return n, {**who, "judged_by": judged, "beat_age_s": age, "lease_s": lease_s}, path


def _create(fs: Any, path: str, body: bytes, remote: bool) -> bool:
    """Create ``path`` with ``body`` only if absent; False when it already exists."""
    try:
        if remote:
            with fs.open(path, "xb") as f:  # one conditional put (If-None-Match: *)
                f.write(body)
        else:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
    except FileExistsError:
        return False
    return True


def holder(loc: Location, name: str = LOCK_DIR) -> dict[str, Any] | None:
    """Who holds the dataset's lock (or the lock folder ``name``): ``pid``, ``host``,
    ``what``, ``since``; or None."""
    return _state(loc.fs, loc.join(name), socket.gethostname())[1]


def stages_running(loc: Location, fence: str | None = None) -> dict[str, dict[str, Any]]:
    """``{stage: holder}`` of the stage runs holding their stage's lock now.

    ``fence`` (what the caller is: a holder of the dataset's lock that goes ahead when no
    stage runs): a stage lock whose holder is judged dead (its beat a lease old: a host
    suspended, a partition) is taken over and released at once, so that its run, if alive
    after all, finds its lease lost (:meth:`Lease.check`) and appends no ``runs`` row.
    """
    fs, host = loc.fs, socket.gethostname()
    try:
        fs.invalidate_cache(loc.base)
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(loc.base, detail=False)]
    except FileNotFoundError:
        return {}
    out = {}
    for name in sorted(names):
        if not name.startswith(STAGE_LOCK_PREFIX):
            continue
        folder = loc.join(name)
        n, who, path = _state(fs, folder, host)
        if who is not None:
            out[name.removeprefix(STAGE_LOCK_PREFIX)] = who
        elif fence is not None and path is not None:  # judged dead, not released: fence it
            body = {"pid": os.getpid(), "host": host, "since": time.time(),
                    "what": f"{fence}, which judged this stage's run dead ({path})"}
            if _create(fs, f"{folder}/{n + 1:0{_WIDTH}d}.json", json.dumps(body).encode(),
                       loc.is_remote):
                _release(fs, folder, n + 1, loc.is_remote)
    return out


def _since(who: dict[str, Any]) -> str:
    # with the date: a lock left by a run that died yesterday must not look current
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who.get("since") or 0))


def _heartbeat(who: dict[str, Any]) -> str:
    """``, heartbeat 12 s ago`` for a holder judged by its lease; else nothing."""
    if who.get("judged_by") != "lease" or who.get("beat_age_s") is None:
        return ""
    return f", heartbeat {who['beat_age_s']:.0f} s ago"


def _if_dead(who: dict[str, Any], path: str | None) -> str:
    """What becomes of the lock if its holder ``who`` (ticket ``path``) is dead."""
    if who.get("judged_by") == "lease":
        known = "" if who.get("beat_age_s") is not None else (
            " (its heartbeat's age is unknown: the storage's clock could not be written)")
        return (f"if that run is dead, the lock is taken over once its heartbeat is "
                f"{who['lease_s']:.0f} s old{known}")
    if who.get("judged_by") == "ticket_age":  # another host, no heartbeat
        return (f"its ticket has no heartbeat (an audiopipe of before leases): if that run is "
                f"dead on another host, remove {path} (it is taken over once "
                f"{_lease.LEGACY_STALE_S / 3600:.0f} h old)")
    if who.get("judged_by") == "starting":
        return f"an unreadable ticket is taken over once {UNREADABLE_STALE_S:.0f} s old"
    return "the lock of a dead process of this host is taken over at once"


@contextmanager
def dataset_lock(
    loc: Location,
    what: str = "ingest",
    wait_s: float = 0.0,
    name: str = LOCK_DIR,
    no_stages: bool = False,
    stages_wait_s: float | None = None,
) -> Iterator[Lease]:
    """Hold the dataset's lock (or the lock folder ``name``, e.g. one per stage) for the block,
    which is given the ticket's :class:`~audiopipe.store.lease.Lease` (beating until the end:
    ``lease.held()``, ``lease.check()`` before a commit).

    Waits up to ``wait_s`` seconds for a running holder, then raises
    :class:`DatasetLocked` naming it. ``no_stages`` (a vacuum, which deletes files a running
    stage may read or be about to commit; an ingest or rebuild, which would publish new data
    tables under it): holding the lock, also wait up to ``stages_wait_s`` (default
    ``wait_s``) for running stages (:func:`stages_running`) to end, else release it and
    raise :class:`DatasetLocked` naming each (pid, host, since when). (A stage checks the
    dataset lock after taking its own, :func:`stage_lock`: of an ingest or vacuum and a
    stage starting at once, one sees the other.)
    """
    fs = loc.fs
    folder = loc.join(name)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time(),
          "lease_s": _lease.LEASE_S, **_identity()}
    body = json.dumps(me).encode()
    deadline = time.monotonic() + wait_s
    if not loc.is_remote:
        fs.makedirs(folder, exist_ok=True)
    while True:
        n, who, path = _state(fs, folder, me["host"])
        if who is None:
            mine = f"{folder}/{n + 1:0{_WIDTH}d}.json"
            if _create(fs, mine, body, loc.is_remote):
                break
            continue  # another process took ticket n + 1 first: look again
        if time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        raise DatasetLocked(
            f"dataset {loc.dataset!r} is locked by another {who.get('what', 'run')} "
            f"(pid {who.get('pid')} on {who.get('host')}, since {_since(who)}{_heartbeat(who)}); "
            f"wait for it to finish; {_if_dead(who, path)}"
        )
    if stages_wait_s is not None:
        deadline = time.monotonic() + stages_wait_s
    lease = Lease(fs, folder, mine, f"{folder}/{n + 2:0{_WIDTH}d}.json").start()
    try:  # (the ticket is released whatever fails from here: a storage error included)
        while no_stages and (running := stages_running(loc, fence=what)):
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise stages_refusal(loc, what, running)
        yield lease
    finally:
        lease.stop()
        _release(fs, folder, n + 1, loc.is_remote)


def stages_refusal(
    loc: Location, what: str, running: dict[str, dict[str, Any]], why: str = ""
) -> DatasetLocked:
    """The error of a ``what`` (ingest, rebuild, vacuum) refused because the stages
    ``running`` (:func:`stages_running`) run: each named with its pid, host, start and
    heartbeat, and what becomes of its lock folder if its run is dead."""
    runs = ", ".join(f"{s} (pid {w.get('pid')} on {w.get('host')}, since {_since(w)}"
                     f"{_heartbeat(w)})" for s, w in running.items())
    fates = "; ".join(f"{s}: lock folder {loc.join(STAGE_LOCK_PREFIX + s)}: "
                      f"{_if_dead(w, loc.join(STAGE_LOCK_PREFIX + s))}"
                      for s, w in running.items())
    return DatasetLocked(
        f"dataset {loc.dataset!r}: stage runs are running: {runs}; no {what} while a stage "
        f"runs{why}: wait for them to finish ({fates})"
    )


@contextmanager
def stage_lock(loc: Location, stage: str, wait_s: float = 0.0) -> Iterator[Lease]:
    """Hold stage ``stage``'s own lock (one run of a stage at a time; two stages run at once)
    while no ingest, rebuild or vacuum holds the dataset's lock.

    Waits up to ``wait_s`` seconds for the dataset's lock to be free, then raises
    :class:`DatasetLocked` naming its holder. An ingest, rebuild or vacuum does not start
    while the stage runs: each waits a little for it, then refuses naming it
    (:func:`dataset_lock` ``no_stages``). The block is given the stage lock's
    :class:`~audiopipe.store.lease.Lease`.
    """
    with dataset_lock(loc, f"stage {stage}", name=f"{STAGE_LOCK_PREFIX}{stage}") as lease:
        deadline = time.monotonic() + wait_s
        folder = loc.join(LOCK_DIR)
        while (state := _state(loc.fs, folder, socket.gethostname()))[1] is not None:
            who, path = state[1], state[2]
            if time.monotonic() >= deadline:
                raise DatasetLocked(
                    f"dataset {loc.dataset!r} is locked by {who.get('what', 'a run')} (pid "
                    f"{who.get('pid')} on {who.get('host')}, since {_since(who)}"
                    f"{_heartbeat(who)}); stage {stage} did not start: run it again when that "
                    f"has finished; {_if_dead(who, path)}"
                )
            time.sleep(0.2)
        yield lease


def _release(fs: Any, folder: str, n: int, remote: bool) -> None:
    """Mark ticket ``n`` released, then prune tickets well below it."""
    mark = f"{folder}/{n:0{_WIDTH}d}.released"
    for attempt in range(_RELEASE_TRIES):
        try:
            _create(fs, mark, b"", remote)
            break
        except OSError as err:
            if attempt + 1 == _RELEASE_TRIES:  # held until this process is gone (then stale)
                warnings.warn(
                    f"could not release the lock ticket {folder}/{n:0{_WIDTH}d}.json ({err}): "
                    f"it holds the dataset while this process (pid {os.getpid()}) lives; "
                    f"remove the ticket, or end the process",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return
            time.sleep(0.5 * (attempt + 1))
    if n % _PRUNE_EVERY:
        return
    tickets, released, beats = _tickets(fs, folder)
    for k in sorted(set(tickets) | released | beats):
        if k < n - _KEEP:
            for suffix in ("json", "released", "beat"):
                try:
                    remove(fs, f"{folder}/{k:0{_WIDTH}d}.{suffix}")
                except (FileNotFoundError, OSError):
                    pass

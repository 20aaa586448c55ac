"""A Delta table's log entries read one by one (one GET each), and their commit times read
once per process while the table's history stays the one they were read in.

delta-rs's ``history`` lists the log (against the tests' S3 server, moto in the same
process, that listing timed out after 180 s); :mod:`audiopipe.store.tables` and
:mod:`audiopipe.store.anew` read the entries they need here instead.

Examples
--------
>>> import tempfile, pyarrow as pa
>>> from deltalake import DeltaTable, write_deltalake
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> write_deltalake(loc.table_uri("t"), pa.table({"v": [1]}))
>>> times = CommitTimes(loc, "t", DeltaTable(loc.table_uri("t")))
>>> times(0) > 0, times(0) == entry_time(log_entry(loc, "t", 0))
(True, True)
>>> log_entry(loc, "t", 1) is None
True
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from deltalake import DeltaTable

from audiopipe.store.location import Location

__all__ = ["GONE", "log_entry", "entry_time", "CommitTimes"]

#: a log entry cleaned up after a checkpoint (:class:`CommitTimes`)
GONE: Any = object()


def log_entry(loc: Location, name: str, version: int) -> str | None:
    """The text of table ``name``'s log entry ``version`` (None when not there), read with one
    GET (delta-rs's ``history`` lists the log: against the tests' S3 server, moto in the same
    process, that listing timed out after 180 s)."""
    path = f"{loc.table_uri(name)}/_delta_log/{version:020d}.json"
    try:
        if loc.is_remote:
            fs = loc.fs
            # a listing of the log folder cached by fsspec (a vacuum's sizes, a find) answers
            # s3fs's size check for a newer entry: "not there" (an append then could not find
            # the commit it just made)
            fs.invalidate_cache(path)
            return fs.cat_file(path).decode()
        with open(path.removeprefix("file://"), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


@dataclass
class _LogRead:
    """What this process read of one table's log (one table uri and metadata id): per
    version, the commit time (ms, or None) and a digest of the entry's text; and the
    snapshots (version: :func:`_snapshot_digest`) the entries were found to belong to."""

    times: dict[int, float | None] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    snapshots: dict[int, str] = field(default_factory=dict)


#: ``{(table uri, table id): _LogRead}``: a version's log entry is written once and never
#: changes, but a table restored from a copy at its path keeps its id with another history
#: after the copy's last version (:func:`_trusted_log` tells)
_COMMIT_TIMES: dict[tuple[str, str], _LogRead] = {}
_COMMIT_TIMES_LOCK = threading.Lock()


def _digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _snapshot_digest(dt: DeltaTable) -> str:
    """A digest of the data files of ``dt`` as loaded (in memory, no request): data file
    names are unique (uuids), so two histories that differ after some version hold other
    files at a later one (unless every file added since was removed again)."""
    return _digest("\n".join(sorted(dt.file_uris())))


def entry_time(text: str) -> float | None:
    """The commit time (ms) in a log entry's text (None when it has none)."""
    import json

    infos = [json.loads(line) for line in text.splitlines() if '"commitInfo"' in line]
    stamps = [a["commitInfo"].get("timestamp") for a in infos if "commitInfo" in a]
    return stamps[0] if stamps else None


def _trusted_log(loc: Location, name: str, key: tuple[str, str], dt: DeltaTable) -> _LogRead:
    """The entries this process read of the table (``key``), checked against ``dt``, the table
    as loaded at version V: trusted at once when a snapshot V with the same data files was
    seen before; else the entry at V (or, if not read yet, the newest read below V) is read
    again, and when its text is not the one read before (restored from a copy, written
    anew...) everything read of the table is forgotten. One GET per snapshot not seen before,
    none per cached lookup."""
    version, snap = dt.version(), _snapshot_digest(dt)
    with _COMMIT_TIMES_LOCK:
        log = _COMMIT_TIMES.setdefault(key, _LogRead())
        if log.snapshots.get(version) == snap:
            return log
        below = [v for v in log.digests if v <= version]
        check = max(below) if below and version not in log.snapshots else None
        if version in log.snapshots:  # the same version, other files: another history
            log = _COMMIT_TIMES[key] = _LogRead()
    if check is not None:
        text = log_entry(loc, name, check)
        with _COMMIT_TIMES_LOCK:
            if text is None or _digest(text) != log.digests.get(check):
                log = _COMMIT_TIMES[key] = _LogRead()
            if text is not None:
                log.times[check], log.digests[check] = entry_time(text), _digest(text)
    with _COMMIT_TIMES_LOCK:
        log.snapshots[version] = snap
    return log


class CommitTimes:
    """The commit times (ms) of table ``name`` as loaded (``dt``): ``times(version)`` for a
    version up to the loaded one; None when its entry has none, :data:`GONE` when the entry is
    not there. Each entry is read once per process (thread-safe) while the table's history
    is the one it was read in: made with a snapshot not seen before, the entries read are
    checked (:func:`_trusted_log`, one GET), so a table restored from a copy at its path
    (the same Delta id, another history after the copy's last version) is read again; a
    snapshot seen before costs no request.

    Limit: a history told from another by its data files at the loaded version alone, so two
    histories that differ only in commits whose every added file was removed again by then
    (the same files) pass for one until a version of theirs is read again.
    """

    def __init__(self, loc: Location, name: str, dt: DeltaTable) -> None:
        self.loc, self.name = loc, name
        self._log = _trusted_log(loc, name, (loc.table_uri(name), str(dt.metadata().id)), dt)

    def __call__(self, version: int) -> Any:
        log = self._log
        with _COMMIT_TIMES_LOCK:
            if version in log.times:
                return log.times[version]
        text = log_entry(self.loc, self.name, version)
        if text is None:
            return GONE
        stamp = entry_time(text)
        with _COMMIT_TIMES_LOCK:
            log.times[version], log.digests[version] = stamp, _digest(text)
        return stamp

"""Tables made anew: whether a table's recorded version is still the table a run recorded.

A table whose folder was lost and written again from scratch (a killed run wrote it anew)
restarts its versions at 0; once its new log reaches the version the last successful run
recorded, that version number names other rows, and reading it would silently give them.
A run row records each table's Delta metadata id next to its version (``table_ids``, filled
in by :func:`~audiopipe.store.runs.append_run`); a table made anew has another id. Rows
written before that column existed are checked by time instead: the commit at the recorded
version must have been made no later than the recording run finished, give or take
:data:`COMMIT_SKEW_S` (the commit's time is the writer host's clock, the run's end its own).

Examples
--------
>>> import datetime as dt
>>> rows = [RunRow(dataset="d", kind="stage", status="ok", run_id="r",
...                finished=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
...                table_versions='{"t": 2}', table_ids='{"t": "id-1"}')]
>>> recorded(rows, "t", 2).table_id
'id-1'
>>> recorded(rows, "t", 3) is None
True
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

from audiopipe.store._log import GONE, CommitTimes, log_entry
from audiopipe.store.location import Location
from audiopipe.store.records import RunRow
from audiopipe.store.tables import open_table

__all__ = ["COMMIT_SKEW_S", "Recorded", "table_id", "with_table_ids", "recording_runs",
           "recorded", "made_anew", "outputs_made_anew"]

#: seconds a commit may seem to be made after the run that recorded it finished (clock skew
#: between the hosts that wrote the table and the run row); only for rows without table ids
COMMIT_SKEW_S = 60.0


class Recorded(NamedTuple):
    """What a run recorded of a table's version: the table's metadata id (None: a row older
    than ``table_ids``) and when the run finished."""

    table_id: str | None
    finished: dt.datetime | None


def table_id(loc: Location, name: str) -> str | None:
    """The Delta metadata id of table ``name`` (None: no table), read from its first log
    entry with one GET (the whole log is opened only when a checkpoint cleaned that up)."""
    text = log_entry(loc, name, 0)
    if text is not None:
        for line in text.splitlines():
            if '"metaData"' in line:
                meta = json.loads(line).get("metaData")
                if meta and meta.get("id"):
                    return str(meta["id"])
    dt_ = open_table(loc, name)
    return None if dt_ is None else str(dt_.metadata().id)


def with_table_ids(loc: Location, row: RunRow) -> RunRow:
    """``row`` with ``table_ids`` of the tables it recorded a version of (a successful row
    that has none yet; one GET per table)."""
    from dataclasses import replace

    if row.status != "ok" or row.table_ids is not None:
        return row
    ids = {n: table_id(loc, n) for n, v in row.versions().items() if v is not None}
    return replace(row, table_ids=json.dumps({n: i for n, i in ids.items() if i}))


def recording_runs(rows: Iterable[RunRow], run: RunRow | None = None) -> list[RunRow]:
    """The runs whose records tell whether a table an open reads was made anew since: the
    successful runs of ``rows`` (an open pinned to ``run``: those finished by its end, and
    ``run``), what :func:`recorded` is then asked of (an open and a vacuum ask the same).

    >>> import datetime as dt
    >>> def row(run_id, hour):
    ...     t = dt.datetime(2026, 1, 1, hour, tzinfo=dt.UTC)
    ...     return RunRow(dataset="d", kind="ingest", status="ok", run_id=run_id, finished=t)
    >>> a, b = row("a", 0), row("b", 1)
    >>> [r.run_id for r in recording_runs([a, b])], [r.run_id for r in recording_runs([a, b], a)]
    (['a', 'b'], ['a', 'a'])
    """
    done = [r for r in rows if r.status == "ok" and r.finished is not None]
    if run is None:
        return done
    end = run.finished or run.started  # (a failed run's row may lack an end)
    return [*(r for r in done if end is not None and (r.finished, r.run_id) <= (end, run.run_id)),
            run]


def recorded(rows: Iterable[RunRow], name: str, version: int) -> Recorded | None:
    """What the newest of ``rows`` (by end, then run id) that recorded ``version`` of table
    ``name`` (written, or a stage run's input) recorded of it; None when none did."""
    hits = [r for r in rows if r.tables().get(name) == version]
    if not hits:
        return None
    last = max(hits, key=_newest)
    writers = [r for r in hits if r.versions().get(name) == version
               and json.loads(r.table_ids or "{}").get(name)]
    tid = json.loads(max(writers, key=_newest).table_ids or "{}")[name] if writers else None
    return Recorded(tid, last.finished or last.started)


def _newest(r: RunRow) -> tuple[dt.datetime, str]:
    return (r.finished or r.started or dt.datetime.min.replace(tzinfo=dt.UTC), r.run_id)


def made_anew(
    loc: Location, name: str, version: int, rec: Recorded | None, loaded: Any = None
) -> bool:
    """Whether table ``name``, at ``version``, is another table than the one ``rec`` recorded
    (made anew since). ``loaded``: the ``DeltaTable`` as loaded at ``version`` (its metadata
    id saves a GET, and its commit times are read once per process).
    A table or version not on storage is not told here (see the callers)."""
    if rec is None:
        return False
    loaded_id = None if loaded is None else str(loaded.metadata().id)
    if rec.table_id is not None:
        now = loaded_id if loaded_id is not None else table_id(loc, name)
        return now is not None and now != rec.table_id
    if rec.finished is None:
        return False
    stamp: Any
    if loaded is not None:
        stamp = CommitTimes(loc, name, loaded)(version)
    else:
        text = log_entry(loc, name, version)
        infos = [json.loads(x) for x in (text or "").splitlines() if '"commitInfo"' in x]
        stamp = next((a["commitInfo"].get("timestamp") for a in infos if "commitInfo" in a),
                     None)
    if stamp is None or stamp is GONE:
        return False
    return bool(stamp > (rec.finished.timestamp() + COMMIT_SKEW_S) * 1000)


def outputs_made_anew(loc: Location, row: RunRow, skip: Collection[str] = ()) -> list[str]:
    """The tables run ``row`` wrote (less ``skip``) that were made anew since (one GET each)."""
    ids = json.loads(row.table_ids or "{}")
    return [
        n for n, v in sorted(row.versions().items())
        if v is not None and n not in skip
        and made_anew(loc, n, v, Recorded(ids.get(n), row.finished or row.started))
    ]

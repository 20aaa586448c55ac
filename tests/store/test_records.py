"""Typed rows: round trips, and reading them stays cheap for quick commands."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from audiopipe.store.records import RunRow


def test_run_rows_round_trip_with_utc_times_and_nulls():
    now = dt.datetime(2026, 12, 1, 23, 59, 59, 123456, tzinfo=dt.UTC)
    rows = [
        RunRow(run_id="a", dataset="d", kind="ingest", status="ok", started=now, finished=None),
        RunRow(run_id="b", dataset="d", kind="stage", status="failed", stage="beats",
               started=now - dt.timedelta(days=400), finished=now),
    ]
    back = RunRow.rows(RunRow.table(rows))
    assert back == rows
    assert back[1].finished.tzinfo == dt.UTC and back[0].finished is None


def test_reading_run_rows_does_not_import_pandas(tmp_path):
    """pyarrow converts zone-aware timestamps through pandas (a third of `status`'s start)."""
    from audiopipe.store.location import Location
    from audiopipe.store.runs import append_run

    now = dt.datetime(2026, 12, 1, 12, 0, 0, 5, tzinfo=dt.UTC)
    append_run(Location(str(tmp_path), "d"),
               RunRow(run_id="r", dataset="d", kind="ingest", status="ok", started=now))
    code = (
        "import sys\n"
        "from audiopipe.store.location import Location\n"
        "from audiopipe.store.runs import read_runs\n"
        f"(r,) = read_runs(Location({str(tmp_path)!r}, 'd'))\n"
        "print('pandas' in sys.modules, r.started.isoformat())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", now.isoformat()]


def test_utc_timestamps_of_every_unit_read_back_without_a_cast():
    """Tables written by other tools may store seconds, ms or ns: each reads as the same time."""
    import pyarrow as pa

    from audiopipe.store.records import _pylist

    when = dt.datetime(2026, 12, 1, 23, 59, 59, 123000, tzinfo=dt.UTC)
    for unit in ("s", "ms", "us", "ns"):
        want = when.replace(microsecond=0) if unit == "s" else when
        t = pa.table({"t": pa.array([want, None], pa.timestamp(unit, tz="UTC")), "k": [1, 2]})
        assert _pylist(t) == [{"k": 1, "t": want}, {"k": 2, "t": None}], unit

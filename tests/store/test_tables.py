import pyarrow as pa
import pytest

from audiopipe.store.location import Location
from audiopipe.store.tables import (
    append,
    column_to_numpy,
    open_table,
    read_table,
    replace_where,
    sql_in,
    string_codes,
    table_version,
    version_as_of,
)


def test_replace_where_is_one_commit_of_removes_and_adds(tmp_path):
    loc = Location(str(tmp_path), "d")
    replace_where(loc, "t", pa.table({"k": ["a", "b", "c"], "v": [1, 2, 3]}), "k", [])
    v0 = table_version(loc, "t")
    v1 = replace_where(loc, "t", pa.table({"k": ["b", "d"], "v": [20, 40]}), "k", {"b", "c", "d"})
    assert v1 == v0 + 1
    rows = sorted(read_table(loc, "t").to_pylist(), key=lambda r: r["k"])
    assert rows == [{"k": "a", "v": 1}, {"k": "b", "v": 20}, {"k": "d", "v": 40}]
    # pure delete: no rows, keys only
    replace_where(
        loc,
        "t",
        pa.table({"k": pa.array([], pa.string()), "v": pa.array([], pa.int64())}),
        "k",
        {"a"},
    )
    assert sorted(r["k"] for r in read_table(loc, "t").to_pylist()) == ["b", "d"]
    assert read_table(loc, "t", version=v0).num_rows == 3  # time travel keeps the old version


def test_version_as_of_reads_commit_times_from_the_log(tmp_path):
    """The last commit made by a time: read from the log entries (one GET each on S3, where
    delta-rs's ``history`` listing timed out); before the first commit, None."""
    import time
    from datetime import UTC, datetime

    loc = Location(str(tmp_path), "d")
    stamps = []
    for k in range(3):
        append(loc, "t", pa.table({"v": [k]}))
        time.sleep(0.05)
        stamps.append(datetime.now(UTC))
        time.sleep(0.05)
    dt = open_table(loc, "t")
    assert [version_as_of(loc, "t", dt, when) for when in stamps] == [0, 1, 2]
    assert version_as_of(loc, "t", dt, None) == 2
    assert version_as_of(loc, "t", dt, datetime(2000, 1, 1, tzinfo=UTC)) is None



def test_version_as_of_reads_each_log_entry_once_and_sees_a_table_written_anew(
    tmp_path, monkeypatch
):
    """A vacuum asks for every run it keeps, and each asking read the whole log again (1808
    GETs for a table of 300 commits and 5 runs): each entry is read once per process. A table
    deleted and written anew has new entries under the same versions: not the cached ones."""
    import shutil
    from datetime import UTC, datetime

    from audiopipe.store import _log as L

    loc = Location(str(tmp_path), "d")
    for k in range(12):
        append(loc, "t", pa.table({"v": [k]}))
    reads = []
    entry = L.log_entry
    monkeypatch.setattr(L, "log_entry", lambda *a: reads.append(a[2]) or entry(*a))
    before = datetime(2000, 1, 1, tzinfo=UTC)
    dt = open_table(loc, "t")
    assert version_as_of(loc, "t", dt, before) is None
    assert sorted(reads) == list(range(12))
    for _ in range(3):  # (another kept run, another pinned open)
        assert version_as_of(loc, "t", open_table(loc, "t"), before) is None
    assert len(reads) == 12
    append(loc, "t", pa.table({"v": [12]}))
    reads.clear()  # (append reads its own entry)
    assert version_as_of(loc, "t", open_table(loc, "t"), before) is None
    # the new commit, and the newest entry read before, again: the table's history is still
    # the one its entries were read in (a table restored from a copy is not)
    assert sorted(reads) == [11, 12]
    reads.clear()
    assert version_as_of(loc, "t", open_table(loc, "t"), before) is None
    assert reads == []  # a snapshot seen already: nothing is read
    shutil.rmtree(loc.table_uri("t").removeprefix("file://"))
    append(loc, "t", pa.table({"v": [0]}))
    reads.clear()
    assert version_as_of(loc, "t", open_table(loc, "t"), before) is None
    assert reads == [0]
    assert version_as_of(loc, "t", open_table(loc, "t"), datetime.now(UTC)) == 0

def test_a_commit_is_found_after_its_table_folder_was_listed_on_s3(s3):
    """fsspec keeps an object store's listings: once a process had listed a table's folder
    (a find, a vacuum's sizes), s3fs answered a newer log entry "not there" from the cached
    listing: an append committed, then failed to find its commit (LookupError), and every
    reader of log entries took the newer commits for cleaned up."""
    from audiopipe.store.tables import rows_changed_since

    loc = Location("s3://audio/listed", "d")
    assert append(loc, "t", pa.table({"v": [0]})) == 0
    assert loc.fs.find(loc.table_uri("t"))  # the listing, cached
    assert append(loc, "t", pa.table({"v": [1]})) == 1
    assert rows_changed_since(loc, "t", 0)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_table_restored_from_a_copy_at_its_path_is_not_answered_from_the_cache(
    tmp_path, request, where
):
    """The commit times read were kept per (table uri, Delta id); a table restored from a copy
    at its path keeps its id, and its versions after the copy's last one are other commits:
    they were answered from the old history (vacuum then keeps the wrong version). They are
    read again; asked again with the table unchanged, nothing is read (no GET on S3)."""
    import shutil
    import time
    from datetime import UTC, datetime

    if where == "s3":
        request.getfixturevalue("s3")
        requests = request.getfixturevalue("s3_requests")
    loc = Location(str(tmp_path / "out") if where == "local" else "s3://audio/restored", "d")
    table = loc.table_uri("t")

    def copy(src: str, dst: str) -> None:
        if where == "local":
            shutil.rmtree(dst.removeprefix("file://"), ignore_errors=True)
            shutil.copytree(src.removeprefix("file://"), dst.removeprefix("file://"))
        else:
            if loc.fs.exists(dst):
                loc.fs.rm(dst, recursive=True)
            loc.fs.copy(src, dst, recursive=True)

    def commit(k: int) -> None:
        append(loc, "t", pa.table({"v": [k]}))
        time.sleep(0.05)

    for k in range(3):
        commit(k)
    copy(table, f"{table}_copy")  # versions 0..2
    mid = datetime.now(UTC)
    time.sleep(0.05)
    for k in range(3, 6):
        commit(k)
    old_end = datetime.now(UTC)
    assert version_as_of(loc, "t", open_table(loc, "t"), mid) == 2  # (reads entries 5..2)
    assert version_as_of(loc, "t", open_table(loc, "t"), old_end) == 5
    copy(f"{table}_copy", table)  # restored: the same id, versions 0..2
    time.sleep(0.05)
    for k in range(3, 6):
        commit(10 * k)  # versions 3..5 again, other commits, after old_end
    dt = open_table(loc, "t")
    assert dt.version() == 5
    assert version_as_of(loc, "t", dt, old_end) == 2  # (the old history's 5 said 5)
    assert version_as_of(loc, "t", dt, mid) == 2
    if where == "s3":
        requests.clear()
        for when in (old_end, mid, datetime.now(UTC)):
            version_as_of(loc, "t", dt, when)
        assert [p for m, p in requests if m == "GET" and "_delta_log" in p] == []


def test_sql_in_escapes_quotes():
    assert sql_in("uri", ["it's", "a"]) == "uri IN ('a','it''s')"


def test_tables_are_read_through_a_native_filesystem(tmp_path):
    """deltalake's default Python filesystem let an Arrow I/O thread still finishing a
    pre-buffered read at interpreter exit abort the process (`audiopipe status`, exit 134)."""
    import pyarrow.fs as pa_fs

    loc = Location(str(tmp_path / "out"), "d")
    append(loc, "runs", pa.table({"run_id": ["r1"]}))
    dt = open_table(loc, "runs")
    fs = dt.to_pyarrow_dataset().filesystem
    assert isinstance(fs, pa_fs.SubTreeFileSystem)
    assert not isinstance(fs.base_fs, pa_fs.PyFileSystem)
    assert dt.to_pyarrow_table().column("run_id").to_pylist() == ["r1"]


def test_reading_tables_then_exiting_never_aborts(tmp_path):
    import subprocess
    import sys

    loc = Location(str(tmp_path / "out"), "d")
    for i in range(5):
        append(loc, "runs", pa.table({"run_id": [f"r{i}"], "x": [float(i)]}))
    code = (
        "from audiopipe.store.location import Location\n"
        "from audiopipe.store.tables import read_table\n"
        f"loc = Location({str(tmp_path / 'out')!r}, 'd')\n"
        "for _ in range(3): read_table(loc, 'runs')\n"
    )
    codes = [subprocess.run([sys.executable, "-c", code], capture_output=True).returncode
             for _ in range(12)]
    assert codes == [0] * 12, "a process that read Delta tables aborted at exit"


def _chunked_slices(values, dtype):
    """The values in three chunks, two of them slices of larger arrays (non-zero offsets)."""
    a = pa.array(["pad"] * 3 + values[:5] if dtype in (pa.string(), pa.large_string())
                 else [0] * 3 + values[:5], dtype).slice(3)
    b = pa.array(values[5:9], dtype)
    c = pa.array(values[9:] + values[:2], dtype).slice(0, len(values) - 9)
    return pa.chunked_array([a, b, c], dtype)


@pytest.mark.parametrize("dtype", [pa.int64(), pa.int32(), pa.float32(), pa.uint16()])
def test_column_to_numpy_equals_pyarrow_across_chunks_and_offsets(dtype):
    import numpy as np

    vals = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]
    col = _chunked_slices(vals, dtype)
    got = column_to_numpy(col)
    assert got.dtype == np.dtype(dtype.to_pandas_dtype()) and got.tolist() == col.to_pylist()
    assert column_to_numpy(pa.chunked_array([], dtype)).size == 0
    with_null = pa.chunked_array([pa.array([1, None], dtype)])
    assert np.isnan(column_to_numpy(with_null)[1])  # pyarrow's own path, nulls as NaN


@pytest.mark.parametrize("kind", ["hex", "varied", "unicode", "large", "nul"])
def test_string_codes_match_a_sorted_dictionary(kind):
    import hashlib

    ids = [hashlib.blake2b(str(i % 6).encode(), digest_size=16).hexdigest() for i in range(14)]
    dtype = pa.string()
    if kind == "varied":
        ids = [x[: 5 + i % 3] for i, x in enumerate(ids)]
    elif kind == "unicode":  # same byte length, order of code points
        ids = ["éa", "zz", "aé", "éa", "ab", "zz", "ab", "éa", "aé", "zz", "ab", "éa", "zz", "aé"]
        ids = [x.ljust(3, "x") if len(x.encode()) < 3 else x for x in ids]
    elif kind == "large":
        dtype = pa.large_string()
    elif kind == "nul":
        ids = [x[:3] + "\0" if i % 2 else x[:4] for i, x in enumerate(ids)]  # one width
    col = _chunked_slices(ids, dtype)
    names, codes = string_codes(col)
    assert names == sorted(set(col.to_pylist()))
    assert [names[k] for k in codes] == col.to_pylist()


_APPENDER = """
import sys, time
import pyarrow as pa
from audiopipe.store.location import Location
from audiopipe.store.tables import append
loc = Location(sys.argv[1], "d")
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    print("ok", append(loc, "metrics", pa.table({"run_id": [sys.argv[2]], "value": [1.0]})))
except Exception as e:
    print("FAILED", type(e).__name__, str(e)[:300])
"""


def test_concurrent_first_appends_to_a_shared_table_on_s3_all_land(s3):
    """The first stage runs of a dataset on S3 append at once to ``metrics``/``errors``, which do
    not exist yet: each write creates the table and all but one failed ("Metadata changed since
    last commit", 3 of 4 trials), so a stage was recorded failed after writing its outputs.
    And each append returns the version of its own commit, not whatever was latest after it."""
    import subprocess
    import sys
    import time

    from audiopipe.store.tables import read_table

    n = 4
    for trial in range(3):
        root = f"s3://audio/t{trial}"
        start = time.time() + 4  # (the processes import deltalake meanwhile)
        ps = [subprocess.Popen([sys.executable, "-c", _APPENDER, root, f"p{k}", str(start)],
                               stdout=subprocess.PIPE, text=True) for k in range(n)]
        outs = [p.communicate(timeout=120)[0].strip() for p in ps]
        assert all(o.startswith("ok") for o in outs), outs
        loc = Location(root, "d")
        assert sorted(read_table(loc, "metrics")["run_id"].to_pylist()) == [
            f"p{k}" for k in range(n)]
        versions = {f"p{k}": int(o.split()[1]) for k, o in enumerate(outs)}
        for who, v in versions.items():  # the commit at v added who's row
            now = read_table(loc, "metrics", version=v)["run_id"].to_pylist()
            before = [] if v == 0 else read_table(loc, "metrics", version=v - 1)["run_id"].to_pylist()
            assert sorted(set(now) - set(before)) == [who], (trial, versions)

import pyarrow as pa

from audiopipe.store.location import Location
from audiopipe.store.tables import (
    append,
    open_table,
    read_table,
    replace_where,
    sql_in,
    table_version,
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

import shutil

from audiopipe.store.status import status_rows
from tests.audio_fixtures import sine, write
from tests.conftest import ingest_in_process, write_config


def test_status_reports_a_dataset_missing_a_pinned_table_as_broken(tmp_path):
    write(tmp_path / "c" / "a.wav", sine(dur=0.3), 22050)
    ingest_in_process(write_config(tmp_path, {"d": {"source": str(tmp_path / "c")}}), "d")
    root = str(tmp_path / "out")
    (row,) = status_rows(root, ["d"])
    assert row["healthy"] is True and row["missing_tables"] == {} and row["clips"] == 1
    v = row["versions"]["features"]
    shutil.rmtree(tmp_path / "out" / "d" / "tables" / "features")
    (row,) = status_rows(root, ["d"])
    assert row["healthy"] is False
    assert row["missing_tables"] == {"features": v}
    assert row["clips"] == 1  # what is there is still counted

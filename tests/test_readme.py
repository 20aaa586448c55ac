"""The README's reading examples run as written and read one consistent snapshot.

The examples of "Reading the outputs" are taken from README.md itself (not copied here), run
in a folder holding ``data/out/demo``, and checked: a run killed while publishing (one more
``clips`` commit that no successful run recorded) must not show through them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from audiopipe.config import load_config
from audiopipe.store.location import Location
from audiopipe.store.tables import append
from tests.audio_fixtures import sine, write
from tests.conftest import ingest_in_process, write_config

README = Path(__file__).resolve().parents[1] / "README.md"


def _reading_examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Reading the outputs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the section shows reading with and without audiopipe"
    return blocks


@pytest.fixture()
def demo_out(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    for i, f in enumerate((220.0, 330.0, 440.0)):
        write(corpus / f"tone_{i}.wav", sine(f=f, dur=1.0), 22050)
    cfg = write_config(tmp_path, {"demo": {"source": str(corpus)}},
                       storage=str(tmp_path / "data" / "out"))
    ingest_in_process(load_config(cfg), "demo")
    # a later run killed after committing clips only: readers must not see its row
    loc = Location(str(tmp_path / "data" / "out"), "demo")
    ghost = pa.table({"clip_id": ["ghost"], "uri": ["ghost.wav"]})
    append(loc, "clips", ghost)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_reading_with_audiopipe(demo_out):
    ns: dict = {}
    exec(_reading_examples()[0], ns)  # noqa: S102 - the README's own example
    assert len(ns["clips"]) == 3 and "ghost" not in set(ns["clips"].clip_id)
    assert len(ns["feats"]) == 3
    assert ns["mfcc"].shape[1] == 20 and ns["mfcc"].dtype == np.float32
    assert ns["all_mfcc"].shape[0] > ns["mfcc"].shape[0]


def test_reading_without_audiopipe(demo_out):
    ns: dict = {}
    exec(_reading_examples()[1], ns)  # noqa: S102 - the README's own example
    assert ns["clips"].height == 3 and "ghost" not in ns["clips"]["clip_id"].to_list()
    assert ns["feats"].count_rows() == 3
    part, start, stop = ns["part"], ns["start"], ns["stop"]
    assert part.endswith(".zarr") and not part.endswith(".zarr.zarr")
    assert ns["mfcc"].shape == (stop - start, 20)
    # the frames are the clip's: the same as audiopipe's reader gives
    import audiopipe

    ds = audiopipe.open_dataset("data/out", "demo")
    cid = ns["index"].loc[0, "clip_id"]
    np.testing.assert_array_equal(ds.frames(cid, "mfcc"), ns["mfcc"])

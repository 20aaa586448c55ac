"""Small real datasets shared by the stage tests (ingested once per session)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from audiopipe.demo import make_demo_corpus

from ._ingest import ingest, write_csv


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory) -> Path:
    """Demo corpus (6 per class) whose labels.csv also has a constant and an empty column."""
    root = tmp_path_factory.mktemp("demo_src")
    make_demo_corpus(root, n_per_class=6)
    p = root / "labels.csv"
    rows = list(csv.DictReader(p.open()))
    for r in rows:
        r["const"] = "x"
        r["empty"] = ""
    write_csv(p, rows)
    return root


@pytest.fixture(scope="session")
def demo_ds(demo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    return ingest(out, "demo", str(demo_folder), demo_folder / "labels.csv")


@pytest.fixture(scope="session")
def fresh_ds(demo_folder, tmp_path_factory):
    """The demo corpus ingested into a dataset no stage ever writes to (error-path tests)."""
    out = tmp_path_factory.mktemp("fresh_out")
    return ingest(out, "fresh", str(demo_folder), demo_folder / "labels.csv")

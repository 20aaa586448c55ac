"""Every public feature function documents itself with a runnable example.

The examples themselves run once, through pytest's ``--doctest-modules`` over
``audiopipe/`` (see ``[tool.pytest.ini_options]`` in ``pyproject.toml``); this module only
checks that each public name has one and that the doctest collection is switched on, so
the examples cannot silently stop running.
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

import audiopipe.features as F

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(F.__all__))
def test_public_name_has_an_example(name):
    obj = getattr(F, name)
    if not callable(obj):
        pytest.skip(f"{name} is data, not a callable")
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"audiopipe.features.{name} has no docstring example"


def test_doctests_are_collected_once():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in cfg["addopts"]
    assert "audiopipe" in cfg["testpaths"]
    # no test module re-runs the package's doctests by hand (each example runs once)
    for p in (ROOT / "tests").rglob("test_*.py"):
        if p == Path(__file__).resolve():
            continue
        assert "doctest.testmod" not in p.read_text(), f"{p} runs doctests a second time"

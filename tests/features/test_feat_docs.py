"""The docstring examples of every feature module run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["_core", "filters", "spectral", "cepstral", "temporal", "musical", "lpc", "pncc",
           "deltas", "registry", "extractor", "specs", "_fast"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"audiopipe.features.{name}")
    res = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples failed in {name}"


def test_package_docstring_example():
    import audiopipe.features as F

    res = doctest.testmod(F, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0

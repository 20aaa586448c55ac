"""The narrowed-SIMD run of ``make test`` really runs on numpy's baseline kernels.

``make test`` repeats the doctests and feature tests with ``NPY_DISABLE_CPU_FEATURES`` set
to every target numpy dispatches to (``tests/numpy_dispatch.py``). This test makes sure
the setting took effect there, so that second run cannot quietly become a copy of the first.
"""

from __future__ import annotations

import os

import pytest


def test_disabled_simd_targets_are_off():
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").replace(",", " ").split()
    if not disabled:
        pytest.skip("full-SIMD run; `make test` repeats this module with NPY_DISABLE_CPU_FEATURES")
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    still_on = [f for f in disabled if __cpu_features__.get(f)]
    assert not still_on, f"numpy still dispatches to {still_on}"

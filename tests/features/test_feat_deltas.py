"""deltas: librosa's Savitzky-Golay deltas."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel

import audiopipe.features as F


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("width", [9, 5])
def test_delta_matches_librosa(librosa, order, width):
    x = np.cumsum(np.random.default_rng(order).standard_normal((6, 60)), axis=1)
    assert_rel(F.delta(x, width=width, order=order),
               librosa.feature.delta(x, width=width, order=order), 1e-6)


def test_delta_short_input_documented_behaviour():
    x = np.arange(5.0, dtype=np.float32)[None] * 3
    np.testing.assert_allclose(F.delta(x), 3.0, atol=1e-5)  # width shrinks to 5
    assert np.all(F.delta(x[:, :2]) == 0)  # too short for any polynomial fit
    with pytest.raises(ValueError, match="width"):
        F.delta(x, width=4)

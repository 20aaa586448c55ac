"""temporal: RMS and ZCR against librosa and known answers."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise, tone

import audiopipe.features as F


def test_rms_zcr_parity_with_librosa(librosa, clips):
    for clip, y, _sr in clips:
        assert_rel(F.rms(y), librosa.feature.rms(y=y), 1e-4, f"rms {clip}")
        assert_rel(F.zero_crossing_rate(y), librosa.feature.zero_crossing_rate(y), 1e-6,
                   f"zcr {clip}")


@pytest.mark.parametrize("kw", [dict(frame_length=1000, hop_length=300),
                                dict(frame_length=512, hop_length=128, center=False)])
def test_rms_zcr_options(librosa, music_clip, kw):
    _, y, _ = music_clip
    assert_rel(F.rms(y, **kw), librosa.feature.rms(y=y, **kw), 1e-4)
    assert_rel(F.zero_crossing_rate(y, **kw), librosa.feature.zero_crossing_rate(y, **kw), 1e-6)


def test_rms_from_S_matches_librosa(librosa, music_clip):
    _, y, _ = music_clip
    S = np.abs(librosa.stft(y))
    assert_rel(F.rms(S=S), librosa.feature.rms(S=S), 1e-5)


def test_known_answers():
    sr = 16000
    y = tone(1000.0, sr, 1.0, amp=0.5)
    np.testing.assert_allclose(F.rms(y)[0, 4:-4], 0.5 / np.sqrt(2), rtol=2e-3)
    z = F.zero_crossing_rate(y)[0, 4:-4]
    np.testing.assert_allclose(z, 2 * 1000 / sr, atol=1.5 / 2048)
    assert np.all(F.zero_crossing_rate(np.full(5000, -0.3, np.float32)) == 0)
    assert F.zero_crossing_rate(noise(20000)).mean() > 0.4

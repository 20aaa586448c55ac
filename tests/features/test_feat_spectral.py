"""spectral: spectral shape and melspectrogram parity with librosa on real clips (< 1e-4 of the
reference's range) and known answers on generated signals."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise, tone

import audiopipe.features as F

TOL = 1e-4  # max |ours - librosa| / (max - min of librosa), float32 vs float64 FFT


@pytest.mark.parametrize("name", ["melspectrogram", "spectral_centroid", "spectral_bandwidth",
                                  "spectral_rolloff", "spectral_flatness"])
def test_parity_with_librosa(librosa, clips, name):
    ours_fn = getattr(F, name)
    ref_fn = getattr(librosa.feature, name)
    for clip, y, sr in clips:
        kw = {} if name == "spectral_flatness" else {"sr": sr}
        ours, ref = ours_fn(y=y, **kw), ref_fn(y=y, **kw)
        assert ours.dtype == np.float32
        if name == "spectral_rolloff":
            # a bin index: allow a one-bin move only where the cumulative sum ties the
            # threshold to float32 rounding (none expected, so count them strictly)
            moved = np.abs(ours - ref) > 0
            assert moved.mean() < 0.002, (clip, moved.sum())
            assert np.abs(ours - ref).max() <= sr / 2048 * 1.001 + 1e-3
        else:
            assert_rel(ours, ref, TOL, f"{name} {clip}")


def test_from_precomputed_S_equals_from_y(music_clip):
    _, y, sr = music_clip
    M = np.abs(F.stft(y))
    np.testing.assert_allclose(F.spectral_centroid(S=M, sr=sr), F.spectral_centroid(y=y, sr=sr),
                               rtol=1e-5)
    np.testing.assert_allclose(F.melspectrogram(S=M**2, sr=sr), F.melspectrogram(y=y, sr=sr),
                               rtol=1e-5)


def test_sine_centroid_bandwidth_rolloff():
    sr = 22050
    y = tone(1000.0, sr, 2.0)
    c = F.spectral_centroid(y=y, sr=sr)[0, 4:-4]
    assert np.all(np.abs(c - 1000.0) < 10.0), c
    assert np.all(F.spectral_bandwidth(y=y, sr=sr)[0, 4:-4] < 150.0)
    r = F.spectral_rolloff(y=y, sr=sr)[0, 4:-4]
    assert np.all(np.abs(r - 1000.0) < 2 * sr / 2048)
    # two tones: rolloff at 0.3 is the low one, at 0.95 the high one
    y2 = tone(500.0, sr, 2.0) + tone(4000.0, sr, 2.0)
    assert np.median(F.spectral_rolloff(y=y2, sr=sr, roll_percent=0.3)) < 600
    assert np.median(F.spectral_rolloff(y=y2, sr=sr, roll_percent=0.95)) > 3900


def test_bandwidth_of_a_tone_is_librosas_once_noise_covers_the_float32_floor(librosa):
    """The documented precision: on a noise-free sine the float32 FFT's rounding floor widens
    the band (above librosa's); noise 100 dB below the tone covers the floor."""
    sr = 22050
    y = tone(440.0, sr, 2.0)
    ours, ref = (f(y=y, sr=sr)[0, 4:-4] for f in (F.spectral_bandwidth,
                                                  librosa.feature.spectral_bandwidth))
    assert np.median(ours) > np.median(ref)
    y = y + noise(y.size, amp=0.5 * 1e-5)  # -100 dB
    ours, ref = (f(y=y, sr=sr)[0, 4:-4] for f in (F.spectral_bandwidth,
                                                  librosa.feature.spectral_bandwidth))
    assert np.median(np.abs(ours - ref) / ref) < 1e-3


def test_flatness_noise_vs_tone():
    white = F.spectral_flatness(y=noise(22050))[0, 2:-2]
    sine = F.spectral_flatness(y=tone(440.0, 22050))[0, 2:-2]
    assert white.mean() > 0.4 and sine.max() < 0.01


def test_spectrum_is_clip_average_power(music_clip):
    _, y, sr = music_clip
    s = F.spectrum(y=y)
    assert s.shape == (1025,)
    np.testing.assert_allclose(s, (np.abs(F.stft(y)) ** 2).mean(axis=-1), rtol=1e-4)

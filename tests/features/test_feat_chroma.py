"""chroma: chroma_stft, piptrack and the tuning estimate against librosa; known answers."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, tone

import audiopipe.features as F

TOL = 1e-4


def test_chroma_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.chroma_stft(y=y, sr=sr), librosa.feature.chroma_stft(y=y, sr=sr), TOL, clip)
        assert_rel(F.chroma_stft(y=y, sr=sr, tuning=0.0),
                   librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0), TOL, clip)
        assert F.estimate_tuning(y=y, sr=sr) == pytest.approx(
            librosa.estimate_tuning(y=y, sr=sr), abs=1e-9)


def test_piptrack_matches_librosa(librosa, music_clip):
    _, y, sr = music_clip
    p, m = F.piptrack(y=y, sr=sr)
    lp, lm = librosa.piptrack(y=y, sr=sr)
    assert_rel(p, lp, 1e-5)
    assert_rel(m, lm, 1e-5)


def test_chroma_of_a4_peaks_at_a_and_tuning_is_found():
    sr = 22050
    c = F.chroma_stft(y=tone(440.0, sr, 2.0), sr=sr)
    assert np.all(np.argmax(c[:, 2:-2], axis=0) == 9)  # C C# D D# E F F# G G# A
    sharp = tone(440.0 * 2 ** (0.3 / 12), sr, 2.0)
    assert F.estimate_tuning(y=sharp, sr=sr) == pytest.approx(0.3, abs=0.02)


def test_tuning_and_piptrack_refuse_several_channels_with_a_clear_error():
    # the peaks of two channels were mixed by frame index: a raw broadcasting error
    sr = 22050
    y = np.stack([tone(440.0, sr, 0.5), tone(466.0, sr, 0.5)])
    with pytest.raises(ValueError, match="estimate_tuning: y must be one mono signal"):
        F.estimate_tuning(y=y, sr=sr)
    with pytest.raises(ValueError, match="estimate_tuning: S must be one clip"):
        F.estimate_tuning(S=np.abs(F.stft(y)), sr=sr)
    with pytest.raises(ValueError, match="piptrack: y must be one mono signal"):
        F.piptrack(y=y, sr=sr)
    assert F.estimate_tuning(y=y[0], sr=sr) == pytest.approx(0.0, abs=0.05)  # one channel

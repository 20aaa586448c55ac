"""musical: chroma, onset strength and tempogram against librosa; known answers."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, tone

import audiopipe.features as F

TOL = 1e-4


def test_chroma_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.chroma_stft(y, sr=sr), librosa.feature.chroma_stft(y=y, sr=sr), TOL, clip)
        assert_rel(F.chroma_stft(y, sr=sr, tuning=0.0),
                   librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0), TOL, clip)
        assert F.estimate_tuning(y, sr=sr) == pytest.approx(
            librosa.estimate_tuning(y=y, sr=sr), abs=1e-9)


def test_piptrack_matches_librosa(librosa, music_clip):
    _, y, sr = music_clip
    p, m = F.piptrack(y, sr=sr)
    lp, lm = librosa.piptrack(y=y, sr=sr)
    assert_rel(p, lp, 1e-5)
    assert_rel(m, lm, 1e-5)


def test_chroma_of_a4_peaks_at_a_and_tuning_is_found():
    sr = 22050
    c = F.chroma_stft(tone(440.0, sr, 2.0), sr=sr)
    assert np.all(np.argmax(c[:, 2:-2], axis=0) == 9)  # C C# D D# E F F# G G# A
    sharp = tone(440.0 * 2 ** (0.3 / 12), sr, 2.0)
    assert F.estimate_tuning(sharp, sr=sr) == pytest.approx(0.3, abs=0.02)


def test_onset_strength_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.onset_strength(y, sr=sr), librosa.onset.onset_strength(y=y, sr=sr), TOL,
                   clip)
    _, y, sr = clips[-1]
    kw = dict(lag=2, max_size=3, detrend=True, n_mels=64, fmax=8000.0)
    assert_rel(F.onset_strength(y, sr=sr, **kw),
               librosa.onset.onset_strength(y=y, sr=sr, **kw), TOL, str(kw))
    assert_rel(F.onset_strength(y, sr=sr, center=False),
               librosa.onset.onset_strength(y=y, sr=sr, center=False), TOL)


def test_tempogram_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.tempogram(y, sr=sr), librosa.feature.tempogram(y=y, sr=sr), TOL, clip)
    _, y, sr = clips[-1]
    env = librosa.onset.onset_strength(y=y, sr=sr)
    assert_rel(F.tempogram(onset_envelope=env, sr=sr, win_length=200, norm=None),
               librosa.feature.tempogram(onset_envelope=env, sr=sr, win_length=200, norm=None),
               TOL)


def test_click_track_onsets_and_tempo():
    sr, hop = 22050, 512
    period = 20  # frames between clicks (~129 BPM)
    y = np.zeros(sr * 10, np.float32)
    y[:: period * hop] = 1.0
    env = F.onset_strength(y, sr=sr)
    peaks = np.flatnonzero(env > 0.5 * env.max())
    assert np.all(np.diff(peaks)[np.diff(peaks) > 1] % period == 0)
    tg = F.tempogram(y, sr=sr)
    mid = tg[:, tg.shape[1] // 2]
    assert np.argmax(mid[5:60]) + 5 == period

"""rhythm: onset strength and tempogram against librosa; a click track."""

from __future__ import annotations

import numpy as np
from feat_helpers import assert_rel

import audiopipe.features as F

TOL = 1e-4


def test_onset_strength_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.onset_strength(y=y, sr=sr), librosa.onset.onset_strength(y=y, sr=sr), TOL,
                   clip)
    _, y, sr = clips[-1]
    kw = dict(lag=2, max_size=3, detrend=True, n_mels=64, fmax=8000.0)
    assert_rel(F.onset_strength(y=y, sr=sr, **kw),
               librosa.onset.onset_strength(y=y, sr=sr, **kw), TOL, str(kw))
    assert_rel(F.onset_strength(y=y, sr=sr, center=False),
               librosa.onset.onset_strength(y=y, sr=sr, center=False), TOL)


def test_tempogram_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.tempogram(y=y, sr=sr), librosa.feature.tempogram(y=y, sr=sr), TOL, clip)
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
    env = F.onset_strength(y=y, sr=sr)
    peaks = np.flatnonzero(env > 0.5 * env.max())
    assert np.all(np.diff(peaks)[np.diff(peaks) > 1] % period == 0)
    tg = F.tempogram(y=y, sr=sr)
    mid = tg[:, tg.shape[1] // 2]
    assert np.argmax(mid[5:60]) + 5 == period

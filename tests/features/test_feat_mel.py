"""mel: melspectrogram and MFCC against librosa; known answers."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F

TOL = 1e-4


def test_mfcc_parity_with_librosa(librosa, clips):
    for clip, y, sr in clips:
        assert_rel(F.mfcc(y=y, sr=sr), librosa.feature.mfcc(y=y, sr=sr), TOL, clip)


@pytest.mark.parametrize("kw", [dict(n_mfcc=13, n_mels=40, lifter=22),
                                dict(n_mfcc=30, fmin=20.0, fmax=4000.0, htk=True),
                                dict(dct_type=3, norm=None)])
def test_mfcc_options_match_librosa(librosa, music_clip, kw):
    _, y, sr = music_clip
    assert_rel(F.mfcc(y=y, sr=sr, **kw), librosa.feature.mfcc(y=y, sr=sr, **kw), TOL, str(kw))


def test_mfcc_from_log_mel_and_top_db_none(librosa, music_clip):
    _, y, sr = music_clip
    S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), top_db=None)
    assert_rel(F.mfcc(S=S), librosa.feature.mfcc(S=S), TOL)
    assert_rel(F.mfcc(y=y, sr=sr, top_db=None), librosa.feature.mfcc(S=S), TOL)


def test_mfcc_c0_tracks_level():
    y = noise(22050)
    a, b = F.mfcc(y=y, sr=22050), F.mfcc(y=0.1 * y, sr=22050)
    # -20 dB in every mel band moves c0 by -20 * sqrt(n_mels) and leaves c1.. unchanged
    np.testing.assert_allclose(a[0] - b[0], 20 * np.sqrt(128), rtol=1e-3)
    np.testing.assert_allclose(a[1:], b[1:], atol=1e-2)


def test_melspectrogram_parameters_match_librosa(librosa, music_clip):
    _, y, sr = music_clip
    kw = dict(n_fft=1024, hop_length=256, n_mels=40, fmin=100.0, fmax=8000.0, htk=True,
              power=1.0)
    assert_rel(F.melspectrogram(y=y, sr=sr, **kw), librosa.feature.melspectrogram(y=y, sr=sr, **kw),
               TOL)

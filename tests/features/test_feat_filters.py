"""filters: filter banks against librosa.filters and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

import audiopipe.features as F


@pytest.mark.parametrize("kw", [dict(sr=22050, n_fft=2048), dict(sr=8000, n_fft=512, n_mels=40),
                                dict(sr=16000, n_fft=1024, n_mels=64, fmin=50, fmax=7000,
                                     htk=True), dict(sr=22050, n_fft=2048, norm=None)])
def test_mel_filterbank_matches_librosa(librosa, kw):
    np.testing.assert_allclose(F.mel_filterbank(**kw), librosa.filters.mel(**kw), rtol=1e-5,
                               atol=1e-8)


def test_mel_scale_round_trip_and_reference_points(librosa):
    f = np.array([0.0, 200.0, 1000.0, 4000.0, 11025.0])
    for htk in (False, True):
        np.testing.assert_allclose(F.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk))
        np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(f, htk=htk), htk=htk), f, atol=1e-9)
    assert float(F.hz_to_mel(1000.0)) == pytest.approx(15.0)


@pytest.mark.parametrize("kw", [dict(sr=22050, n_fft=2048), dict(sr=8000, n_fft=1024, tuning=0.2),
                                dict(sr=44100, n_fft=4096, n_chroma=24)])
def test_chroma_filterbank_matches_librosa(librosa, kw):
    np.testing.assert_allclose(F.chroma_filterbank(**kw), librosa.filters.chroma(**kw),
                               rtol=1e-5, atol=1e-7)


def test_dct_matrix_is_scipy_ortho_dct():
    x = np.random.default_rng(0).standard_normal((40, 7))
    np.testing.assert_allclose(F.dct_matrix(13, 40) @ x,
                               scipy.fft.dct(x, axis=0, type=2, norm="ortho")[:13], atol=1e-5)

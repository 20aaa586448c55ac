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


@pytest.mark.parametrize("kw", [dict(sr=8000, n_fft=2048, fmax=11025.0),  # above Nyquist
                                dict(sr=8000, n_fft=1), dict(sr=8000, n_fft=64, n_mels=128),
                                dict(sr=22050, n_fft=2048), dict(sr=8000, n_fft=512, n_mels=40)])
def test_empty_mel_filters_warn_as_librosa_does(librosa, kw):
    """Mel channels no FFT bin falls in are all zero: a warning says so (they were silent:
    37 of 128 rows for sr 8000 and fmax 11025; constant MFCCs for n_fft=1), wherever
    librosa warns, and the bank is still librosa's."""
    import warnings

    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        M = F.mel_filterbank(**kw)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        ref = librosa.filters.mel(**kw)
    np.testing.assert_allclose(M, ref, rtol=1e-5, atol=1e-8)
    assert bool(ours) == any("Empty filters" in str(w.message) for w in theirs)
    if ours:
        (w,) = ours
        assert w.category is UserWarning and "Empty filters detected" in str(w.message)
        n_empty = int(np.sum(~(M.max(axis=1) > 0)))
        assert f": {n_empty} of {M.shape[0]} mel channels" in str(w.message)
        with pytest.warns(UserWarning, match="Empty filters"):  # every call, not only the first
            F.mel_filterbank(**kw)


def test_mfcc_of_a_one_point_fft_warns():
    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    with pytest.warns(UserWarning, match="128 of 128 mel channels have no FFT bin"):
        F.mfcc(y=y, sr=8000, n_fft=1)
    with pytest.warns(UserWarning, match="above Nyquist"):
        F.melspectrogram(y=y, sr=8000, fmax=11025)


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

"""_core: input checking, framing, STFT/ISTFT and dB conversion against librosa."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F


def test_as_audio_scales_int16_and_rejects_bad_input():
    y = F.as_audio(np.array([0, 16384, -32768], dtype=np.int16))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.0, 0.5, -1.0])
    with pytest.raises(ValueError, match="empty"):
        F.as_audio(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        F.as_audio(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="dtype"):
        F.as_audio(np.zeros(4, np.complex64))


def test_frame_matches_librosa(librosa):
    y = np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(F.frame(y, frame_length=16, hop_length=5),
                                  librosa.util.frame(y, frame_length=16, hop_length=5))


@pytest.mark.parametrize("n_fft,hop,win_length,window", [(2048, 512, None, "hann"),
                                                          (512, 128, 400, "hamming"),
                                                          (1000, 333, None, "hann")])
def test_stft_matches_librosa(librosa, clips, n_fft, hop, win_length, window):
    for name, y, _sr in clips:
        ours = F.stft(y, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window)
        ref = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window)
        assert ours.dtype == np.complex64 and ours.shape == ref.shape
        # complex error relative to the magnitude range (float32 FFT vs librosa's float64)
        err = np.abs(ours - ref).max() / np.abs(ref).max()
        assert err < 1e-5, (name, err)


def test_stft_uncentered_and_short_input(librosa):
    y = noise(3000)
    np.testing.assert_allclose(F.stft(y, center=False), librosa.stft(y, center=False),
                               atol=1e-4)
    with pytest.raises(ValueError, match="too large"):
        F.stft(y[:1000], center=False)
    # centred: a clip shorter than one frame gives 1 + n // hop padded frames
    assert F.stft(y[:100]).shape == (1025, 1)
    assert F.stft(y[:600]).shape == (1025, 2)


@pytest.mark.parametrize("hop", [512, 300])
def test_istft_matches_librosa_and_round_trips(librosa, music_clip, hop):
    _, y, _ = music_clip
    y = y[: 22050 * 3]
    D = librosa.stft(y, hop_length=hop)
    for length in (None, len(y), len(y) + 1000, 5000):
        ours = F.istft(D, hop_length=hop, length=length)
        ref = librosa.istft(D, hop_length=hop, length=length)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(F.istft(F.stft(y, hop_length=hop), hop_length=hop,
                                       length=len(y)), y, atol=1e-5)


def test_istft_batched():
    Y = np.stack([noise(5000, 1), noise(5000, 2)])
    D = F.stft(Y)
    out = F.istft(D, length=5000)
    assert out.shape == (2, 5000)
    np.testing.assert_allclose(out[1], F.istft(D[1], length=5000), atol=1e-7)
    np.testing.assert_allclose(out, Y, atol=1e-5)


def test_power_to_db_matches_librosa(librosa):
    S = np.abs(np.random.default_rng(1).standard_normal((64, 50)).astype(np.float32)) ** 4
    S[0, 0] = 0.0
    for top_db in (80.0, 20.0, None):
        assert_rel(F.power_to_db(S, top_db=top_db), librosa.power_to_db(S, top_db=top_db),
                   1e-6, f"top_db={top_db}")
    assert_rel(F.power_to_db(S, ref=np.max), librosa.power_to_db(S, ref=np.max), 1e-6)
    assert_rel(F.amplitude_to_db(S), librosa.amplitude_to_db(S), 1e-6)
    np.testing.assert_allclose(F.db_to_power(F.power_to_db(S + 1, top_db=None)), S + 1,
                               rtol=1e-5)
    assert np.isfinite(F.power_to_db(np.zeros(3))).all()

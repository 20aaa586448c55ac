"""Every feature, functional and recipe: silence gives finite values, a clip shorter than
one frame gives one padded frame, float64/int16 input is accepted, and a batch equals one
clip at a time.

The speech front ends (spafe / pyAudioAnalysis framing) are uncentred by default, like their
references, and raise ``ValueError`` for a clip shorter than one frame; with
``center=True`` (used here) they give one padded frame like the librosa features."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import noise

import audiopipe.features as F

SR = 16000
FUNCS = {
    "stft": lambda y, sr: np.abs(F.stft(y)),
    "melspectrogram": lambda y, sr: F.melspectrogram(y=y, sr=sr),
    "mfcc": lambda y, sr: F.mfcc(y=y, sr=sr),
    "spectral_centroid": lambda y, sr: F.spectral_centroid(y=y, sr=sr),
    "spectral_bandwidth": lambda y, sr: F.spectral_bandwidth(y=y, sr=sr),
    "spectral_rolloff": lambda y, sr: F.spectral_rolloff(y=y, sr=sr),
    "spectral_flatness": lambda y, sr: F.spectral_flatness(y=y),
    "rms": lambda y, sr: F.rms(y=y),
    "zero_crossing_rate": lambda y, sr: F.zero_crossing_rate(y),
    "spectral_contrast": lambda y, sr: F.spectral_contrast(y=y, sr=sr),
    "spectral_entropy": lambda y, sr: F.spectral_entropy(y=y, sr=sr, center=True),
    "spectral_flux": lambda y, sr: F.spectral_flux(y=y, sr=sr, center=True),
    "energy": lambda y, sr: F.energy(y, sr=sr, center=True),
    "energy_entropy": lambda y, sr: F.energy_entropy(y, sr=sr, center=True),
    "gfcc": lambda y, sr: F.gfcc(y=y, sr=sr, center=True),
    "bfcc": lambda y, sr: F.bfcc(y=y, sr=sr, center=True),
    "lpcc": lambda y, sr: F.lpcc(y=y, sr=sr, center=True),
    "pncc": lambda y, sr: F.pncc(y=y, sr=sr, center=True),
    "real_cepstrum": lambda y, sr: F.real_cepstrum(y=y, n_ceps=40),
    "chroma_stft": lambda y, sr: F.chroma_stft(y=y, sr=sr),
    "onset_strength": lambda y, sr: F.onset_strength(y=y, sr=sr)[..., None, :],
    "tempogram": lambda y, sr: F.tempogram(y=y, sr=sr),
}


def _recipe_extractor(name):
    return F.Extractor({"compute": {name: {"deltas": 2}}}, sr=SR)


ALL = [("fn", n) for n in FUNCS] + [("recipe", n) for n in F.FEATURES]


def _run(kind, name, y):
    if kind == "fn":
        return {name: FUNCS[name](y, SR)}
    return _recipe_extractor(name)(y)


@pytest.mark.parametrize("kind,name", ALL)
def test_silence_gives_finite_output(kind, name):
    for k, v in _run(kind, name, np.zeros(SR, np.float32)).items():
        assert np.isfinite(v).all(), k


@pytest.mark.parametrize("kind,name", ALL)
def test_shorter_than_one_frame_gives_one_padded_frame(kind, name):
    for k, v in _run(kind, name, noise(100)).items():
        assert v.shape[-1] == 1 and np.isfinite(v).all(), (k, v.shape)


@pytest.mark.parametrize("kind,name", ALL)
def test_float64_and_int16_accepted(kind, name):
    y = noise(SR // 2, amp=0.2)
    ref = _run(kind, name, y)
    f64 = _run(kind, name, y.astype(np.float64))
    i16 = np.round(y * 32767).astype(np.int16)
    ints = _run(kind, name, i16)
    back = _run(kind, name, i16.astype(np.float32) / 32768)  # int16 is scaled by 1/32768
    for k in ref:
        assert f64[k].dtype == np.float32 and ints[k].dtype == np.float32, k
        np.testing.assert_allclose(f64[k], ref[k], rtol=1e-6, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(ints[k], back[k], rtol=1e-6, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("kind,name", ALL)
def test_batch_equals_one_at_a_time(kind, name):
    Y = np.stack([noise(6000, seed=1), 0.01 * noise(6000, seed=2), np.zeros(6000, np.float32)])
    batch = _run(kind, name, Y)
    singles = [_run(kind, name, y) for y in Y]
    for k in batch:
        assert batch[k].shape[0] == 3
        for i in range(3):
            np.testing.assert_allclose(batch[k][i], singles[i][k], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{k}[{i}]")
    nd = _run(kind, name, Y[:2].reshape(2, 1, 6000))
    for k in nd:
        assert nd[k].shape[:2] == (2, 1)


@pytest.mark.parametrize("fn", [F.gfcc, F.bfcc, F.lpcc, F.pncc, F.spectral_entropy,
                                F.spectral_flux])
def test_uncentred_speech_front_ends_reject_short_clips(fn):
    with pytest.raises(ValueError, match="shorter than|too large"):
        fn(y=noise(100), sr=SR)
    for positional in (F.energy, F.energy_entropy, F.lpc):  # y positional, as librosa's zcr
        with pytest.raises(ValueError, match="shorter than|too large"):
            positional(noise(100), sr=SR)

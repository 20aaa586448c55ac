"""spectral: parity with librosa on real clips (< 1e-4 of the reference's range) and
known answers on generated signals."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise, tone

import audiopipe.features as F
from audiopipe.features.spectral import contrast_bands

TOL = 1e-4  # max |ours - librosa| / (max - min of librosa), float32 vs float64 FFT


@pytest.mark.parametrize("name", ["melspectrogram", "spectral_centroid", "spectral_bandwidth",
                                  "spectral_rolloff", "spectral_flatness"])
def test_parity_with_librosa(librosa, clips, name):
    ours_fn = getattr(F, name)
    ref_fn = getattr(librosa.feature, name)
    for clip, y, sr in clips:
        kw = {} if name == "spectral_flatness" else {"sr": sr}
        ours, ref = ours_fn(y, **kw), ref_fn(y=y, **kw)
        assert ours.dtype == np.float32
        if name == "spectral_rolloff":
            # a bin index: allow a one-bin move only where the cumulative sum ties the
            # threshold to float32 rounding (none expected, so count them strictly)
            moved = np.abs(ours - ref) > 0
            assert moved.mean() < 0.002, (clip, moved.sum())
            assert np.abs(ours - ref).max() <= sr / 2048 * 1.001 + 1e-3
        else:
            assert_rel(ours, ref, TOL, f"{name} {clip}")


def test_melspectrogram_parameters_match_librosa(librosa, music_clip):
    _, y, sr = music_clip
    kw = dict(n_fft=1024, hop_length=256, n_mels=40, fmin=100.0, fmax=8000.0, htk=True,
              power=1.0)
    assert_rel(F.melspectrogram(y, sr=sr, **kw), librosa.feature.melspectrogram(y=y, sr=sr, **kw),
               TOL)


def test_from_precomputed_S_equals_from_y(music_clip):
    _, y, sr = music_clip
    M = np.abs(F.stft(y))
    np.testing.assert_allclose(F.spectral_centroid(S=M, sr=sr), F.spectral_centroid(y, sr=sr),
                               rtol=1e-5)
    np.testing.assert_allclose(F.melspectrogram(S=M**2, sr=sr), F.melspectrogram(y, sr=sr),
                               rtol=1e-5)


def test_sine_centroid_bandwidth_rolloff():
    sr = 22050
    y = tone(1000.0, sr, 2.0)
    c = F.spectral_centroid(y, sr=sr)[0, 4:-4]
    assert np.all(np.abs(c - 1000.0) < 10.0), c
    assert np.all(F.spectral_bandwidth(y, sr=sr)[0, 4:-4] < 150.0)
    r = F.spectral_rolloff(y, sr=sr)[0, 4:-4]
    assert np.all(np.abs(r - 1000.0) < 2 * sr / 2048)
    # two tones: rolloff at 0.3 is the low one, at 0.95 the high one
    y2 = tone(500.0, sr, 2.0) + tone(4000.0, sr, 2.0)
    assert np.median(F.spectral_rolloff(y2, sr=sr, roll_percent=0.3)) < 600
    assert np.median(F.spectral_rolloff(y2, sr=sr, roll_percent=0.95)) > 3900


def test_flatness_noise_vs_tone():
    white = F.spectral_flatness(noise(22050))[0, 2:-2]
    sine = F.spectral_flatness(tone(440.0, 22050))[0, 2:-2]
    assert white.mean() > 0.4 and sine.max() < 0.01


def test_spectrum_is_clip_average_power(music_clip):
    _, y, sr = music_clip
    s = F.spectrum(y)
    assert s.shape == (1025,)
    np.testing.assert_allclose(s, (np.abs(F.stft(y)) ** 2).mean(axis=-1), rtol=1e-4)


# ------------------------------------------------------------------ spectral contrast (librosa)

def _bands(sr):
    return 6 if sr > 2 * 200 * 2**5 else 3  # librosa's default 6 octaves need sr > 12.8 kHz


def test_contrast_parity_with_librosa_on_same_spectrum(librosa, clips):
    for clip, y, sr in clips:
        S = np.abs(librosa.stft(y))
        for linear in (False, True):
            kw = dict(sr=sr, linear=linear, n_bands=_bands(sr))
            assert_rel(F.spectral_contrast(S=S, **kw),
                       librosa.feature.spectral_contrast(S=S, **kw), TOL,
                       f"{clip} linear={linear}")
    with pytest.raises(ValueError, match="Nyquist"):
        F.spectral_contrast(noise(4000), sr=8000)


def test_contrast_parity_from_audio(librosa, clips):
    """From y the dB contrast matches except where a band's valley lies below the float32
    FFT's rounding floor (~1e-7 of the frame's peak): librosa's float64 FFT resolves those
    near-zero bins (e.g. above an OGG encoder's low-pass), float32 cannot."""
    for clip, y, sr in clips:
        nb = _bands(sr)
        ours = F.spectral_contrast(y, sr=sr, n_bands=nb)
        ref = librosa.feature.spectral_contrast(y=y, sr=sr, n_bands=nb)
        S = np.abs(librosa.stft(y))
        masks, keeps = contrast_bands(sr, 2048, 200.0, nb, 0.02)
        floor = 1e-6 * S.max(axis=0)
        ok = np.stack([np.sort(S[m], axis=0)[:q].mean(axis=0) > floor
                       for m, q in zip(masks, keeps, strict=True)])
        assert ok.mean() > 0.5, clip
        err = np.abs(ours - ref)[ok].max() / np.ptp(ref)
        assert err < TOL, (clip, err)


# ------------------------------------------------------------------ pyAudioAnalysis entropy/flux
# pyAudioAnalysis is not installed: its short-term formulas are written out here from its
# ShortTermFeatures.py (file normalisation, 50 ms rectangular frames every 25 ms,
# |FFT|[:N/2] / (N/2), 10 sub-bands, eps = 1e-8), one frame at a time.

EPS = 1e-8


def _paa_frames(x, sr):
    x = x.astype(np.float64)
    x = (x - x.mean()) / (np.abs(x - x.mean()).max() + 1e-10)
    win, step = int(0.050 * sr), int(0.025 * sr)
    pos, frames = 0, []
    while pos + win - 1 < len(x):
        frames.append(x[pos : pos + win])
        pos += step
    return frames, win


def _paa_spectral(x, sr):
    frames, win = _paa_frames(x, sr)
    ent, flux, prev = [], [], None
    for fr in frames:
        X = np.abs(np.fft.fft(fr))[: win // 2] / (win // 2)
        total = np.sum(X**2)
        sub = len(X) // 10
        Xt = X[: sub * 10]
        s = np.sum(Xt.reshape(sub, 10, order="F") ** 2, axis=0) / (total + EPS)
        ent.append(-np.sum(s * np.log2(s + EPS)))
        prev = X if prev is None else prev
        flux.append(np.sum((X / np.sum(X + EPS) - prev / np.sum(prev + EPS)) ** 2))
        prev = X
    return np.array(ent), np.array(flux)


def test_entropy_and_flux_match_pyaudioanalysis_formulas(clips):
    for clip, y, sr in clips:
        ent, flux = _paa_spectral(y, sr)
        yn = (y - y.mean()) / np.abs(y - y.mean()).max()  # its whole-file normalisation
        np.testing.assert_allclose(F.spectral_entropy(yn, sr=sr)[0], ent, atol=1e-4,
                                   err_msg=clip)
        np.testing.assert_allclose(F.spectral_flux(yn, sr=sr)[0], flux,
                                   atol=1e-4 * max(flux.max(), 1e-3), err_msg=clip)


def test_entropy_known_answers():
    sr = 22050
    assert F.spectral_entropy(tone(1000.0, sr), sr=sr).max() < 0.2  # one sub-band
    e = F.spectral_entropy(noise(sr), sr=sr)
    assert abs(e.mean() - np.log2(10)) < 0.05  # white noise: all sub-bands equal
    assert F.spectral_flux(tone(1000.0, sr), sr=sr).max() < 1e-4  # stationary
    assert F.spectral_flux(noise(sr), sr=sr)[0, 1:].min() > 1e-4

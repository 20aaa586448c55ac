"""paa: spectral entropy and flux against pyAudioAnalysis' formulas, written out here.

pyAudioAnalysis is not installed: its short-term formulas are written out from its
ShortTermFeatures.py (file normalisation, 50 ms rectangular frames every 25 ms,
|FFT|[:N/2] / (N/2), 10 sub-bands, eps = 1e-8), one frame at a time.
"""

from __future__ import annotations

import numpy as np
from feat_helpers import noise, tone

import audiopipe.features as F

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
        np.testing.assert_allclose(F.spectral_entropy(y=yn, sr=sr)[0], ent, atol=1e-4,
                                   err_msg=clip)
        np.testing.assert_allclose(F.spectral_flux(y=yn, sr=sr)[0], flux,
                                   atol=1e-4 * max(flux.max(), 1e-3), err_msg=clip)


def test_entropy_known_answers():
    sr = 22050
    assert F.spectral_entropy(y=tone(1000.0, sr), sr=sr).max() < 0.2  # one sub-band
    e = F.spectral_entropy(y=noise(sr), sr=sr)
    assert abs(e.mean() - np.log2(10)) < 0.05  # white noise: all sub-bands equal
    assert F.spectral_flux(y=tone(1000.0, sr), sr=sr).max() < 1e-4  # stationary
    assert F.spectral_flux(y=noise(sr), sr=sr)[0, 1:].min() > 1e-4

"""contrast: spectral contrast against librosa, from the same spectrum and from audio."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F
from audiopipe.features.contrast import contrast_bands

TOL = 1e-4  # max |ours - librosa| / (max - min of librosa), float32 vs float64 FFT


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
        F.spectral_contrast(y=noise(4000), sr=8000)


def test_contrast_parity_from_audio(librosa, clips):
    """From y the dB contrast matches except where a band's valley lies below the float32
    FFT's rounding floor (~1e-7 of the frame's peak): librosa's float64 FFT resolves those
    near-zero bins (e.g. above an OGG encoder's low-pass), float32 cannot."""
    for clip, y, sr in clips:
        nb = _bands(sr)
        ours = F.spectral_contrast(y=y, sr=sr, n_bands=nb)
        ref = librosa.feature.spectral_contrast(y=y, sr=sr, n_bands=nb)
        S = np.abs(librosa.stft(y))
        masks, keeps = contrast_bands(sr, 2048, 200.0, nb, 0.02)
        floor = 1e-6 * S.max(axis=0)
        ok = np.stack([np.sort(S[m], axis=0)[:q].mean(axis=0) > floor
                       for m, q in zip(masks, keeps, strict=True)])
        assert ok.mean() > 0.5, clip
        err = np.abs(ours - ref)[ok].max() / np.ptp(ref)
        assert err < TOL, (clip, err)

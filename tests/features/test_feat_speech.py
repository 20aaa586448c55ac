"""speech: GFCC, BFCC and the auditory banks against spafe / the published formulas.

spafe 0.3.3 is the oracle where it is right (GFCC, the gammatone and Bark banks, the Bark
spectrogram). Where DESIGN.md lists it as wrong (BFCC power law, LPC framing, LPCC
recursion, PNCC), the published formula is written out independently instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from feat_helpers import assert_rel

import audiopipe.features as F


def test_gfcc_matches_spafe(spafe, speech16k):
    from spafe.features.gfcc import gfcc

    y, sr = speech16k
    ref = gfcc(y.astype(np.float64), fs=sr).T
    assert_rel(F.gfcc(y=y, sr=sr), ref, 1e-4)  # float32 vs spafe's float64
    ref40 = gfcc(y.astype(np.float64), fs=sr, nfilts=40, num_ceps=20, low_freq=100,
                 high_freq=7000).T
    assert_rel(F.gfcc(y=y, sr=sr, n_bands=40, n_gfcc=20, fmin=100, fmax=7000), ref40, 1e-4)


@pytest.mark.parametrize("sr,n_fft,n", [(16000, 512, 24), (22050, 2048, 40), (8000, 256, 20)])
def test_auditory_banks_match_spafe(spafe, sr, n_fft, n):
    from spafe.fbanks.bark_fbanks import bark_filter_banks
    from spafe.fbanks.gammatone_fbanks import gammatone_filter_banks

    np.testing.assert_allclose(F.gammatone_filterbank(sr=sr, n_fft=n_fft, n_bands=n),
                               gammatone_filter_banks(nfilts=n, nfft=n_fft, fs=sr)[0],
                               atol=1e-6)
    np.testing.assert_allclose(F.bark_filterbank(sr=sr, n_fft=n_fft, n_bands=n),
                               bark_filter_banks(nfilts=n, nfft=n_fft, fs=sr)[0], atol=1e-6)


def test_bfcc_published_formula(spafe, speech16k):
    """BFCC = DCT(log((E(f_c) * B)^(1/3))): spafe's Bark spectrogram B (right), Hermansky's
    equal-loudness E at the band centres, cube-root law (spafe applies its loudness
    polynomial to the energies instead, which this does not reproduce)."""
    from spafe.features.bfcc import bark_spectrogram
    from spafe.utils.converters import bark2hz, hz2bark

    y, sr = speech16k
    B, _ = bark_spectrogram(y.astype(np.float64), fs=sr, pre_emph=True, nfilts=26)
    fc = bark2hz(np.linspace(hz2bark(0), hz2bark(sr / 2), 26))
    w2 = (2 * np.pi * fc) ** 2
    E = (w2 + 56.8e6) * w2**2 / ((w2 + 6.3e6) ** 2 * (w2 + 0.38e9))
    ref = scipy.fft.dct(np.log(np.maximum((B * E) ** (1 / 3), 1e-10)), type=2, axis=1,
                        norm="ortho")[:, :13].T
    assert_rel(F.bfcc(y=y, sr=sr), ref, 1e-4)
    # the point of the published definition: a gain change adds the same log offset to every
    # band (except the 0 Hz band, where E = 0 pins it at the floor), whatever the content;
    # spafe's energy-dependent power law makes the change content-dependent
    a, b = F.bfcc(y=y, sr=sr), F.bfcc(y=0.1 * y, sr=sr)
    shift = np.full(26, np.log(10.0) * 2 / 3)
    shift[0] = 0.0
    np.testing.assert_allclose(a - b, np.repeat((F.dct_matrix(13, 26) @ shift)[:, None],
                                                a.shape[1], axis=1), atol=2e-3)

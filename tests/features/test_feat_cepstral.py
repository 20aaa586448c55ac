"""cepstral: the real cepstrum against its definition and a pulse train."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from feat_helpers import noise

import audiopipe.features as F


def test_real_cepstrum_definition_and_pulse_train():
    sr, period = 16000, 80
    y = np.zeros(sr, np.float32)
    y[::period] = 1.0
    y += 0.01 * noise(sr, seed=5)
    c = F.real_cepstrum(y=y)
    frame = np.pad(y, 1024)[512 * 10 : 512 * 10 + 2048] * scipy.signal.get_window("hann", 2048)
    ref = np.fft.ifft(np.log(np.maximum(np.abs(np.fft.fft(frame)), 1e-10))).real[:1025]
    np.testing.assert_allclose(c[:, 10], ref, atol=1e-4)
    q = np.argmax(c[20:400, 10]) + 20  # skip the low-quefrency envelope
    assert q == period
    assert np.isfinite(F.real_cepstrum(y=np.zeros(4096, np.float32))).all()


@pytest.mark.parametrize("n_fft", [2048, 1023])
def test_real_cepstrum_few_quefrencies_cosine_sum(n_fft):
    """A few quefrencies use a cosine-sum product instead of the inverse FFT: same values."""
    y = noise(22050, seed=11)
    ex = F.Extractor({"n_fft": n_fft, "hop_length": 256,
                      "compute": {"real_cepstrum": {"n_ceps": 24}}}, 22050)
    c = ex(y)["real_cepstrum"]
    M = np.abs(F.stft(y, n_fft=n_fft, hop_length=256)).astype(np.float64)
    ref = np.fft.irfft(np.log(np.maximum(M, 1e-10)), n=n_fft, axis=0)[:24]
    assert c.shape == ref.shape and c.dtype == np.float32
    np.testing.assert_allclose(c, ref, atol=1e-5)

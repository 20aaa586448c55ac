"""lpc: LPC by Levinson-Durbin on windowed frames and the LPC cepstrum, against
independent solutions (spafe's LPC/LPCC are wrong, see DESIGN.md)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from feat_helpers import spafe_front

import audiopipe.features as F


def test_lpc_levinson_on_windowed_frames(speech16k):
    y, sr = speech16k
    _, frames = spafe_front(y, sr)
    a, E = F.lpc(y, sr=sr, order=12)
    for i in range(0, len(frames), 7):
        fr = frames[i]
        r = np.correlate(fr, fr, "full")[len(fr) - 1 : len(fr) + 12]
        if r[0] < 1e-12:
            continue
        coef = scipy.linalg.solve_toeplitz(r[:-1], -r[1:])
        np.testing.assert_allclose(a[1:, i], coef, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(E[0, i], r[0] + coef @ r[1:], rtol=1e-3)
    assert np.all(a[0] == 1)


def test_lpcc_is_the_cepstrum_of_the_lpc_model(speech16k):
    """c_m of sqrt(E)/A(z): compared with the real cepstrum of the model's log spectrum
    (complex cepstrum of a minimum-phase model = 2 x real cepstrum for m >= 1)."""
    y, sr = speech16k
    a, E = F.lpc(y, sr=sr, order=12)
    c = F.lpcc(y=y, sr=sr, n_lpcc=20)
    N = 8192
    for i in range(0, a.shape[1], 9):
        A = np.fft.rfft(a[:, i].astype(np.float64), N)
        logH = 0.5 * np.log(float(E[0, i])) - np.log(np.abs(A))
        rc = np.fft.irfft(logH, N)
        np.testing.assert_allclose(c[0, i], rc[0], atol=1e-3)
        np.testing.assert_allclose(c[1:, i], 2 * rc[1:20], atol=1e-3)

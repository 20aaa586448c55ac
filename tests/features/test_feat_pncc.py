"""pncc: PNCC against Kim & Stern (2016) written out as loops; silence and gain."""

from __future__ import annotations

import numpy as np
import scipy.fft
from feat_helpers import assert_rel, spafe_front

import audiopipe.features as F


def _pncc_paper(P):
    """Kim & Stern 2016, equations written as loops over frames m and channels l.
    P: (frames, channels) gammatone powers."""
    Tn, L = P.shape
    M, N = 2, 4
    Q = np.array([[P[max(0, m - M) : m + M + 1, l].sum() / (2 * M + 1) for l in range(L)]
                  for m in range(Tn)])

    def alp(x, la=0.999, lb=0.5):
        y = np.zeros_like(x)
        y[0] = 0.9 * x[0]
        for m in range(1, len(x)):
            lam = np.where(x[m] >= y[m - 1], la, lb)
            y[m] = lam * y[m - 1] + (1 - lam) * x[m]
        return y

    Qle = alp(Q)
    Q0 = np.maximum(Q - Qle, 0)
    Qf = alp(Q0)
    Rsp = np.zeros_like(Q0)
    peak = Q0[0].copy()
    Rsp[0] = Q0[0]
    for m in range(1, Tn):
        Rsp[m] = np.where(Q0[m] >= 0.85 * peak, Q0[m], 0.2 * peak)
        peak = np.maximum(0.85 * peak, Q0[m])
    R = np.where(Q >= 2 * Qle, Rsp, Qf)
    S = np.zeros_like(R)
    for m in range(Tn):
        for l in range(L):
            l1, l2 = max(l - N, 0), min(l + N, L - 1)
            S[m, l] = np.mean([R[m, k] / max(Q[m, k], 1e-30) for k in range(l1, l2 + 1)])
    T = P * S
    mu = np.zeros(Tn)
    prev = T[0].mean()
    for m in range(Tn):
        prev = 0.999 * prev + 0.001 * T[m].mean()
        mu[m] = prev
    U = T / np.maximum(mu, 1e-30)[:, None]
    return scipy.fft.dct(U ** (1 / 15), type=2, axis=1, norm="ortho")[:, :13]


def test_pncc_matches_the_paper(spafe, speech16k):
    from spafe.fbanks.gammatone_fbanks import gammatone_filter_banks

    y, sr = speech16k
    y = y[:12000]
    pw, _ = spafe_front(y, sr)
    fb = gammatone_filter_banks(nfilts=40, nfft=512, fs=sr, low_freq=200, high_freq=8000)[0]
    ref = _pncc_paper(pw @ fb.T).T
    assert_rel(F.pncc(y=y, sr=sr), ref, 1e-4)


def test_pncc_finite_on_silence_and_gain_invariant(speech16k):
    y, sr = speech16k
    z = F.pncc(y=np.zeros(8000, np.float32), sr=sr)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(F.pncc(y=y, sr=sr), F.pncc(y=0.01 * y, sr=sr), atol=1e-4)

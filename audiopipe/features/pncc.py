"""Power-normalized cepstral coefficients (Kim & Stern, IEEE/ACM TASLP 24(7), 2016).

From gammatone filter-bank powers ``P[l, m]`` (channel l, frame m):

1. medium-time power ``Q[l, m] = 1/(2M+1) sum_{m'=m-M}^{m+M} P[l, m']`` (M = 2; frames
   outside the clip count as zero);
2. asymmetric noise suppression: lower envelope ``Q_le = AF_{0.999,0.5}[Q]`` (asymmetric
   low-pass, started at 0.9 Q of the first frame), ``Q0 = max(Q - Q_le, 0)``,
   ``Q_f = AF_{0.999,0.5}[Q0]``; temporal masking of ``Q0`` with online peak
   ``Q_p = max(0.85 Q_p[m-1], Q0)``: ``R_sp = Q0`` if ``Q0 >= 0.85 Q_p[m-1]`` else
   ``0.2 Q_p[m-1]``; ``R = R_sp`` where ``Q >= 2 Q_le`` (speech) else ``Q_f``;
3. channel-weight smoothing ``S[l] = mean_{l'=max(l-N,0)}^{min(l+N,L-1)} R[l'] / Q[l']``
   (N = 4), ``T = P S``;
4. mean power normalisation ``U = T / mu``, ``mu[m] = 0.999 mu[m-1] + 0.001 mean_l T[l, m]``
   (``mu`` starts at the first frame's mean; the paper leaves it open, spafe uses 1e-4,
   which makes the output depend on the input gain);
5. power-law ``V = U^(1/15)`` and DCT-II (ortho), 13 coefficients.

spafe 0.3.3's ``pncc`` follows these steps but averages the weights over ``[l-N, l+N)``
with 1-based bounds and divides by a zero ``Q`` on silence (NaN), so it is not a usable
oracle; the tests check each step against a direct loop written from the paper.

Streaming: step 1 needs M frames ahead; steps 2-4 are causal recursions over frames, run
as one loop over frames vectorised over channels (the only per-frame Python loop in the
feature library: ~10 numpy calls per frame). Divisions are floored so silence gives 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PNCCStream", "pncc_from_power"]

_FLOOR = 1e-30


class PNCCStream:
    """PNCC steps 1-4 + power law over a stream of gammatone-power blocks ``(..., L, k)``.

    :meth:`push` returns the power-law outputs ``V`` ``(..., L, k')`` available so far
    (``M`` frames are held back for the medium-time average); :meth:`flush` the rest.
    """

    def __init__(self, M: int = 2, lam_a: float = 0.999, lam_b: float = 0.5,
                 lam_t: float = 0.85, mu_t: float = 0.2, c: float = 2.0, N: int = 4,
                 lam_mu: float = 0.999, power: float = 1 / 15) -> None:
        self.M, self.lam_a, self.lam_b, self.lam_t, self.mu_t = M, lam_a, lam_b, lam_t, mu_t
        self.c, self.N, self.lam_mu, self.power = c, N, lam_mu, power
        self.buf: np.ndarray | None = None  # P frames not yet turned into Q (with history)
        self.x0 = 0  # absolute frame index of buf[..., 0]
        self.next = 0  # next frame to output
        self.state: dict | None = None

    def push(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P, np.float64)
        self.buf = P if self.buf is None else np.concatenate([self.buf, P], axis=-1)
        n_have = self.x0 + self.buf.shape[-1]
        return self._emit(n_have - self.M, final=False)

    def flush(self) -> np.ndarray:
        if self.buf is None:
            raise ValueError("PNCCStream.flush: no frames were pushed")
        return self._emit(self.x0 + self.buf.shape[-1], final=True)

    def _emit(self, stop: int, final: bool) -> np.ndarray:
        M = self.M
        start = self.next
        lead = self.buf.shape[:-2]
        L = self.buf.shape[-2]
        if stop <= start:
            return np.zeros(lead + (L, 0), np.float32)
        # medium-time power for frames [start, stop): needs P[start - M, stop + M)
        lo, hi = start - M, stop + M
        n_have = self.x0 + self.buf.shape[-1]
        seg = self.buf[..., max(lo, self.x0) - self.x0 : min(hi, n_have) - self.x0]
        seg = np.concatenate([np.zeros(lead + (L, max(0, self.x0 - lo))), seg,
                              np.zeros(lead + (L, max(0, hi - n_have)))], axis=-1)
        C = np.concatenate([np.zeros(lead + (L, 1)), np.cumsum(seg, axis=-1)], axis=-1)
        w = 2 * M + 1
        Q = (C[..., w:] - C[..., :-w]) / w  # (..., L, stop - start)
        Pc = seg[..., M : M + (stop - start)]
        V = self._recursions(Pc, Q)
        self.next = stop
        keep = stop - M  # frames needed for the next medium-time window
        if keep > self.x0:
            self.buf = self.buf[..., keep - self.x0 :].copy()
            self.x0 = keep
        return V

    def _recursions(self, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
        st = self.state
        la, lb, lt, mt = self.lam_a, self.lam_b, self.lam_t, self.mu_t
        n = Q.shape[-1]
        if st is None:
            q0 = Q[..., 0]
            st = self.state = {"le": 0.9 * q0, "f": None, "peak": None, "mu": None}
        Qle = np.empty_like(Q)
        R = np.empty_like(Q)
        le = st["le"]
        for m in range(n):  # causal nonlinear recursions: one vectorised step per frame
            q = Q[..., m]
            if m or st["f"] is not None:
                le = np.where(q >= le, la * le + (1 - la) * q, lb * le + (1 - lb) * q)
            Qle[..., m] = le
            q0 = np.maximum(q - le, 0.0)
            f, peak = st["f"], st["peak"]
            if f is None:  # first frame of the clip
                f = 0.9 * q0
                peak = q0
                rsp = q0
            else:
                f = np.where(q0 >= f, la * f + (1 - la) * q0, lb * f + (1 - lb) * q0)
                rsp = np.where(q0 >= lt * peak, q0, mt * peak)
                peak = np.maximum(lt * peak, q0)
            st["f"], st["peak"] = f, peak
            R[..., m] = np.where(q >= self.c * le, rsp, f)
        st["le"] = le
        # channel-weight smoothing over l' in [l - N, l + N] clipped to the channel range
        ratio = R / np.maximum(Q, _FLOOR)
        L = ratio.shape[-2]
        Cs = np.concatenate([np.zeros(ratio.shape[:-2] + (1, n)), np.cumsum(ratio, axis=-2)],
                            axis=-2)
        li = np.arange(L)
        l1, l2 = np.maximum(li - self.N, 0), np.minimum(li + self.N, L - 1)
        S = (Cs[..., l2 + 1, :] - Cs[..., l1, :]) / (l2 - l1 + 1)[:, None]
        T = P * S
        # mean power normalisation (linear recursion, started at the first frame's mean)
        mean_t = T.mean(axis=-2)
        prev = st["mu"] if st["mu"] is not None else mean_t[..., 0]
        lam = self.lam_mu
        from scipy.signal import lfilter  # lazy: scipy.signal is slow to import

        mu, _ = lfilter([1 - lam], [1.0, -lam], mean_t, axis=-1, zi=(lam * prev)[..., None])
        st["mu"] = mu[..., -1]
        U = T / np.maximum(mu, _FLOOR)[..., None, :]
        return (U**self.power).astype(np.float32)


def pncc_from_power(P: np.ndarray, **kw) -> np.ndarray:
    """Steps 1-5 (before the DCT) on a whole gammatone-power array ``(..., L, T)``."""
    s = PNCCStream(**kw)
    return np.concatenate([s.push(P), s.flush()], axis=-1)

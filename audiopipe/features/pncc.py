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

Streaming: step 1 needs M frames ahead; steps 2-4 are causal recursions over frames. None
runs as a per-frame loop: the asymmetric low-passes are solved exactly by branch iteration
(:func:`_asym_lowpass`), the online peak by a running maximum (:func:`_decaying_max`), the
mean normalisation by ``lfilter``. Divisions are floored so silence gives 0.

The public :func:`pncc` and the recipe feature (which streams with 2 frames of look-ahead)
take the gammatone powers from the speech front end (:mod:`audiopipe.features.speech`).
"""

from __future__ import annotations

from typing import Unpack

import numpy as np

from .block import Computer
from .extractor import Extractor
from .filters import dct_matrix, gammatone_filterbank
from .registry import Param, feature, nonneg_num, optional, pos_int, pos_num
from .speech import (
    SPEECH_PARAMS,
    SpeechArgs,
    dct_rows,
    n_le_bands,
    speech_fmax,
    speech_power,
    speech_weight,
)

__all__ = ["pncc", "PNCCStream", "pncc_from_power"]

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
        first = st is None
        if first:
            st = self.state = {"le": 0.9 * Q[..., 0], "f": None, "peak": None, "mu": None}
        # lower envelope: frame 0 of the clip is 0.9 Q (no update), later frames recurse
        Qle = _asym_lowpass(Q[..., 1:] if first else Q, st["le"], la, lb)
        if first:
            Qle = np.concatenate([st["le"][..., None], Qle], axis=-1)
        st["le"] = Qle[..., -1]
        Q0 = np.maximum(Q - Qle, 0.0)
        if first:  # the clip's first frame: f = 0.9 Q0, peak = R_sp = Q0
            f0, p0 = 0.9 * Q0[..., 0], Q0[..., 0]
            Qf = np.concatenate([f0[..., None], _asym_lowpass(Q0[..., 1:], f0, la, lb)], -1)
            peak = np.concatenate([p0[..., None], _decaying_max(Q0[..., 1:], p0, lt)], -1)
            prev = np.concatenate([p0[..., None], peak[..., :-1]], axis=-1)  # R_sp[0] = Q0
        else:
            Qf = _asym_lowpass(Q0, st["f"], la, lb)
            peak = _decaying_max(Q0, st["peak"], lt)
            prev = np.concatenate([st["peak"][..., None], peak[..., :-1]], axis=-1)
        st["f"], st["peak"] = Qf[..., -1], peak[..., -1]
        rsp = np.where(Q0 >= lt * prev, Q0, mt * prev)
        R = np.where(Q >= self.c * Qle, rsp, Qf)
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


#: frames per vectorised chunk of the recursions: products of up to 256 coefficients >= 0.5
#: stay far from float64 underflow (0.5**256 ~ 1e-77)
_CHUNK = 256


def _asym_lowpass(x: np.ndarray, y0: np.ndarray, la: float, lb: float) -> np.ndarray:
    """Asymmetric first-order low-pass ``AF_{la,lb}`` of ``x >= 0`` along the last axis.

    Exactly the recursion ``y[m] = a[m] y[m-1] + (1 - a[m]) x[m]`` with ``a[m] = la`` if
    ``x[m] >= y[m-1]`` else ``lb`` (``y[-1] = y0``), without a per-frame loop: in chunks of
    :data:`_CHUNK` frames, guess the branches, solve the then-linear time-varying recursion in
    closed form ``y = A (y0 + cumsum((1 - a) x / A))`` with ``A = cumprod(a)`` (all terms are
    non-negative, so no cancellation), recompute the branches from ``y`` and repeat until
    they agree. Each round makes at least the first wrong branch right, so it ends; on real
    audio it takes a few rounds (the branches that change are those right after a change of
    direction of ``x``).
    """
    n = x.shape[-1]
    out = np.empty_like(x)
    y = np.asarray(y0, np.float64)
    for a0 in range(0, n, _CHUNK):
        xc = x[..., a0 : a0 + _CHUNK]
        g = xc >= y[..., None]
        for _ in range(xc.shape[-1] + 1):
            a = np.where(g, la, lb)
            A = np.cumprod(a, axis=-1)
            yc = A * (y[..., None] + np.cumsum((1.0 - a) * xc / A, axis=-1))
            g_new = xc >= np.concatenate([y[..., None], yc[..., :-1]], axis=-1)
            if np.array_equal(g_new, g):
                break
            g = g_new
        out[..., a0 : a0 + _CHUNK] = yc
        y = yc[..., -1]
    return out


def _decaying_max(x: np.ndarray, p0: np.ndarray, lt: float) -> np.ndarray:
    """Online peak ``p[m] = max(lt p[m-1], x[m])`` (``p[-1] = p0``) along the last axis.

    Closed form ``p[m] = max(lt^(m+1) p0, max_{j<=m} lt^(m-j) x[j])``, evaluated per chunk
    of :data:`_CHUNK` frames as a running maximum of ``x[j] lt^-j`` (``lt^-256`` is ~1e18
    for ``lt = 0.85``, well inside float64).
    """
    n = x.shape[-1]
    out = np.empty_like(x)
    p = np.asarray(p0, np.float64)
    for a0 in range(0, n, _CHUNK):
        xc = x[..., a0 : a0 + _CHUNK]
        k = xc.shape[-1]
        g = lt ** np.arange(1, k + 1)  # lt^(m+1)
        run = np.maximum.accumulate(xc / g * lt, axis=-1)  # max_j x[j] lt^-j
        pc = np.maximum(g * p[..., None], run * g / lt)
        out[..., a0 : a0 + _CHUNK] = pc
        p = pc[..., -1]
    return out


def pncc_from_power(P: np.ndarray, **kw) -> np.ndarray:
    """Steps 1-5 (before the DCT) on a whole gammatone-power array ``(..., L, T)``."""
    s = PNCCStream(**kw)
    return np.concatenate([s.push(P), s.flush()], axis=-1)


def pncc(
    *,
    y: np.ndarray | None = None,
    sr: float = 16000,
    S: np.ndarray | None = None,
    n_pncc: int = 13,
    n_bands: int = 40,
    fmin: float = 200.0,
    fmax: float | None = None,
    **speech: Unpack[SpeechArgs],
) -> np.ndarray:
    """Power-normalized cepstral coefficients, float32 ``(..., n_pncc, n_frames)``.

    Kim & Stern (2016) as described in :mod:`audiopipe.features.pncc`: 40 gammatone
    channels from 200 Hz to ``min(8 kHz, sr/2)`` (the paper's), on spafe's front end
    (:func:`speech_power`), medium-time noise suppression, temporal masking, weight
    smoothing, mean power normalisation, power law 1/15 and DCT-II (ortho). Finite on
    silence (spafe 0.3.3 returns NaN there), and invariant to the input gain. ``**speech``:
    the front end's keywords (:class:`~audiopipe.features.speech.SpeechArgs`).

    Examples
    --------
    >>> pncc(y=np.random.default_rng(0).standard_normal(16000), sr=16000).shape
    (13, 98)
    """
    P = speech_power(y=y, sr=sr, S=S, speech=speech, func="pncc")
    n_fft = 2 * (P.shape[-2] - 1)
    fmax = min(8000.0, sr / 2) if fmax is None else fmax
    G = np.matmul(gammatone_filterbank(sr=sr, n_fft=n_fft, n_bands=n_bands, fmin=fmin,
                                       fmax=fmax), P)
    return dct_rows(n_pncc, pncc_from_power(G))


class _PNCCLookahead:
    """Per-pass PNCC state over the streamed gammatone powers (then the DCT)."""

    def __init__(self, D: np.ndarray) -> None:
        self.s, self.D = PNCCStream(), D

    def push(self, d: dict) -> dict:
        return {"pncc": self.D @ self.s.push(d["_pncc_bands"])}

    def flush(self) -> dict:
        return {"pncc": self.D @ self.s.flush()}


@feature("pncc", dims="n_pncc", cross_check=n_le_bands("n_pncc"), params={
    "n_pncc": Param(13, pos_int, "coefficients"),
    "n_bands": Param(40, pos_int, "gammatone channels (Kim & Stern: 40)"),
    **SPEECH_PARAMS,
    "fmin": Param(200.0, nonneg_num, "lowest channel, Hz"),
    "fmax": Param(None, optional(pos_num), "highest channel, Hz (default min(8k, sr/2))")},
    doc="Power-normalized cepstral coefficients (Kim & Stern 2016), 2 frames of look-ahead.")
def _pncc(p: dict, ex: Extractor) -> Computer:
    fmax = speech_fmax(p, ex, min(8000.0, ex.sr / 2))
    fb = gammatone_filterbank(sr=ex.sr, n_fft=ex.n_fft, n_bands=p["n_bands"], fmin=p["fmin"],
                              fmax=fmax)
    key = ex.register_bank(("pncc", p["n_bands"], p["fmin"], fmax, p["pre_emphasis"]),
                           fb * speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_pncc"], p["n_bands"])
    return Computer(lambda b, st, g: {"_pncc_bands": b.mel(key)},
                    lookahead=lambda: _PNCCLookahead(D), step_names=("_pncc_bands",))

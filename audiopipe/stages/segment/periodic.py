"""Two-state periodic (S1/S2, "lub/dub") segmentation of heart sounds (phonocardiograms).

A band-passed Shannon-energy envelope, the heart period from its autocorrelation, then the
most likely alternating S1/S2 sequence of envelope peaks: each chosen peak scores its
height, each interval between consecutive sounds pays a squared deviation from the
expected systole (S1 → S2) or diastole (S2 → S1); peaks may be skipped. The sequence is
decoded with the stages' one Viterbi decoder (:mod:`audiopipe.stages._viterbi`) over
states "the last chosen peak was ``g`` peaks ago, as S1/S2" (plus "not started" and
"ended"), with transitions that depend on the peaks' times.

Examples
--------
>>> y, sr, s1, s2 = synthetic_pcg(duration=10.0, seed=0)
>>> ev = PeriodicSegmenter().sounds(y, sr)
>>> abs(len(ev["S1"]) - len(s1)) <= 1
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["PeriodicSegmenter", "synthetic_pcg", "decode_sounds"]


def decode_sounds(
    t: np.ndarray, amp: np.ndarray, expect: tuple[float, float], window: float
) -> list[tuple[float, int]]:
    """Best alternating sequence of peaks: ``[(time, state)]`` with state 0 = S1, 1 = S2.

    Maximises the sum of the chosen peaks' ``amp`` minus, for each pair of consecutive
    chosen peaks ``i → j`` (``t[j] - t[i] <= window``, states alternating), the cost
    ``((d - T) / (0.15 T + 0.03))^2`` where ``T = expect[state of i]``. Ties keep a fresh
    start, then the nearest predecessor.

    Examples
    --------
    >>> decode_sounds(np.array([0.0, 0.3, 1.0, 1.3]), np.ones(4), (0.3, 0.7), 1.6)
    [(0.0, 0), (0.3, 1), (1.0, 0), (1.3, 1)]
    """
    from audiopipe.stages._viterbi import Predecessors, viterbi

    t = np.asarray(t, dtype=np.float64)
    amp = np.asarray(amp, dtype=np.float64)
    n = t.size
    if n == 0:
        return []
    first = np.searchsorted(t, t - window, side="left")  # earliest peak within the window
    L = max(1, int((np.arange(n) - first).max()))  # most peaks between two chosen ones
    NS, END = 0, 2 * (L + 1) + 1
    K, P = END + 1, 2 * L + 3

    def S(s: int, g: int) -> int:
        return 1 + s * (L + 1) + g

    src = np.zeros((K, P), np.int64)
    logw = np.full((n, K, P), -np.inf)
    src[NS, 0] = NS
    logw[:, NS, 0] = 0.0
    j = np.arange(n)
    for s in (0, 1):
        prev = 1 - s
        T = expect[prev]
        src[S(s, 0), 0] = NS  # a fresh start
        logw[:, S(s, 0), 0] = 0.0
        for g in range(L + 1):  # from the other state, chosen g peaks before the previous one
            src[S(s, 0), 1 + g] = S(prev, g)
            i = j - 1 - g
            ok = i >= 0
            d = np.where(ok, t - t[np.maximum(i, 0)], np.inf)
            cost = ((d - T) / (0.15 * T + 0.03)) ** 2
            logw[:, S(s, 0), 1 + g] = np.where(ok & (d <= window), -cost, -np.inf)
        for g in range(1, L + 1):  # skip a peak
            src[S(s, g), 0] = S(s, g - 1)
            logw[:, S(s, g), 0] = 0.0
    src[END, : 2 * (L + 1)] = [S(s, g) for s in (0, 1) for g in range(L + 1)]
    src[END, 2 * (L + 1)] = END
    logw[:, END, : 2 * (L + 1) + 1] = 0.0
    emit = np.zeros((n, K))
    emit[:, S(0, 0)] = amp
    emit[:, S(1, 0)] = amp
    init = np.full(K, -np.inf)
    init[[NS, S(0, 0), S(1, 0)]] = 0.0
    final = np.zeros(K)
    final[NS] = -np.inf
    path = viterbi(emit, Predecessors(src, logw), log_init=init, log_final=final)
    return [(float(t[k]), s) for k, st in enumerate(path) for s in (0, 1) if st == S(s, 0)]


class PeriodicSegmenter(BaseEstimator):
    """Two-state periodic (S1/S2, "lub/dub") segmentation of a phonocardiogram.

    Parameters
    ----------
    fmin, fmax : float, default 25, 400
        Band-pass of the heart-sound band (Hz).
    env_rate : int, default 100
        Envelope frame rate (Hz).
    sound_s : float, default 0.1
        Duration reported for each S1 / S2 sound.

    Examples
    --------
    >>> import numpy as np
    >>> y, sr, s1, s2 = synthetic_pcg(duration=10.0, seed=0)
    >>> ev = PeriodicSegmenter().sounds(y, sr)
    >>> abs(len(ev["S1"]) - len(s1)) <= 1
    True
    """

    def __init__(
        self, fmin: float = 25.0, fmax: float = 400.0, env_rate: int = 100, sound_s: float = 0.1
    ) -> None:
        self.fmin = fmin
        self.fmax = fmax
        self.env_rate = env_rate
        self.sound_s = sound_s

    def fit(self, X: Any = None, y: Any = None) -> PeriodicSegmenter:
        return self  # nothing to learn: the model's timing comes from each recording

    def envelope(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Normalised Shannon-energy envelope at ``env_rate`` Hz."""
        from scipy import signal

        y = np.asarray(y, dtype=np.float64)
        hi = min(self.fmax, 0.45 * sr)
        sos = signal.butter(4, [self.fmin, hi], btype="band", fs=sr, output="sos")
        x = signal.sosfiltfilt(sos, y)
        x = x / (np.abs(x).max() + 1e-12)
        e = -(x**2) * np.log(x**2 + 1e-12)
        hop = max(1, int(sr // self.env_rate))
        n = len(e) // hop
        env = e[: n * hop].reshape(n, hop).mean(axis=1)
        env = np.convolve(env, np.hanning(7) / np.hanning(7).sum(), mode="same")
        return (env - env.mean()) / (env.std() + 1e-12)

    def period(self, env: np.ndarray) -> float:
        """Heart period (s) from the envelope autocorrelation peak in 0.4-2.0 s."""
        r = np.correlate(env, env, mode="full")[len(env) - 1 :]
        lo, hi = int(0.4 * self.env_rate), min(len(r) - 1, int(2.0 * self.env_rate))
        if hi <= lo:
            return 0.8
        return (lo + int(np.argmax(r[lo:hi]))) / self.env_rate

    def sounds(self, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Times (s) of S1 and S2 sounds: ``{"S1": ..., "S2": ...}``."""
        if len(y) < sr * 0.5 or not np.any(y):
            return {"S1": np.zeros(0), "S2": np.zeros(0)}
        from scipy import signal

        env = self.envelope(y, sr)
        P = self.period(env)
        peaks, props = signal.find_peaks(env, distance=int(0.12 * self.env_rate), height=0.0)
        if len(peaks) < 2:
            return {"S1": np.zeros(0), "S2": np.zeros(0)}
        t = peaks / self.env_rate
        amp = props["peak_heights"]
        dt = np.diff(t)
        short = dt[dt < 0.55 * P]
        Ts = float(np.median(short)) if len(short) else 0.35 * P
        Ts = float(np.clip(Ts, 0.15, 0.5 * P))
        # after S1 comes S2 after Ts; after S2, S1 after P - Ts
        chosen = decode_sounds(t, amp, (Ts, P - Ts), 1.6 * P)
        return {
            "S1": np.array([x for x, st in chosen if st == 0]),
            "S2": np.array([x for x, st in chosen if st == 1]),
        }

    def predict_segments(self, y: np.ndarray, sr: int) -> list[tuple[float, float, str, float]]:
        """S1 / systole / S2 / diastole segments between the detected sounds."""
        ev = self.sounds(y, sr)
        marks = sorted([(x, "S1") for x in ev["S1"]] + [(x, "S2") for x in ev["S2"]])
        h = self.sound_s / 2
        out: list[tuple[float, float, str, float]] = []
        for k, (x, lab) in enumerate(marks):
            out.append((max(0.0, x - h), x + h, lab, 1.0))
            if k + 1 < len(marks):
                nxt = marks[k + 1][0] - h
                if nxt > x + h:
                    out.append((x + h, nxt, "systole" if lab == "S1" else "diastole", 1.0))
        return out


def synthetic_pcg(
    duration: float = 20.0,
    sr: int = 4000,
    bpm: float = 72.0,
    systole_s: float = 0.3,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """A PCG-like test signal: S1 (low, longer) and S2 (higher, shorter) damped bursts.

    Returns ``(y, sr, s1_times, s2_times)``; beat-to-beat period varies by ±5 %.
    """
    rng = np.random.default_rng(seed)
    y = noise * rng.standard_normal(int(duration * sr))
    s1, s2 = [], []
    t = float(rng.uniform(0.1, 0.5))
    while t + 0.6 < duration:
        for when, f, d, a, lst in ((t, 50, 0.1, 1.0, s1), (t + systole_s, 80, 0.07, 0.7, s2)):
            n = int(d * sr)
            tt = np.arange(n) / sr
            burst = a * np.sin(2 * np.pi * f * tt) * np.sin(np.pi * tt / d) ** 2
            i = int(when * sr)
            y[i : i + n] += burst[: len(y) - i]
            lst.append(when + d / 2)
        t += 60.0 / bpm * float(rng.uniform(0.95, 1.05))
    return y.astype(np.float32), sr, np.array(s1), np.array(s2)

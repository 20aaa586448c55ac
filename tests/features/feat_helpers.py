"""Shared assertions for the feature tests."""

from __future__ import annotations

import numpy as np
import scipy.signal


def rel_err(a, ref) -> float:
    """max |a - ref| relative to the reference's dynamic range (max - min)."""
    a = np.asarray(a, np.float64)
    ref = np.asarray(ref, np.float64)
    assert a.shape == ref.shape, f"shape {a.shape} != reference {ref.shape}"
    rng = float(ref.max() - ref.min())
    err = float(np.abs(a - ref).max())
    return err / rng if rng > 0 else err


def assert_rel(a, ref, tol, what=""):
    e = rel_err(a, ref)
    assert e < tol, f"{what}: max abs diff / range = {e:.3g} >= {tol:g}"


def tone(f, sr, dur=1.0, amp=0.5, phase=0.1):
    t = np.arange(int(sr * dur)) / sr
    return (amp * np.sin(2 * np.pi * f * t + phase)).astype(np.float32)


def noise(n, seed=0, amp=0.3):
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def spafe_front(y, sr, n_fft=512):
    """spafe's front end written out: pre-emphasis, 25/10 ms frames, np.hamming, |FFT|^2/N."""
    x = scipy.signal.lfilter([1, -0.97], [1], y.astype(np.float64))
    L, H = int(0.025 * sr), int(0.010 * sr)
    n = (len(x) - L) // H + 1
    frames = np.stack([x[i * H : i * H + L] for i in range(n)]) * np.hamming(L)
    return np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft, frames

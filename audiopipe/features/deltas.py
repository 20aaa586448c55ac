"""Delta features: Savitzky-Golay derivatives along frames, as ``librosa.feature.delta``.

librosa calls ``scipy.signal.savgol_filter(data, width, polyorder=order, deriv=order,
mode="interp")``: interior frames use the fixed ``width``-tap filter; the first and last
``width // 2`` frames use the derivative of the least-squares polynomial fitted to the
first / last ``width`` frames. Both are linear, so they are precomputed here as small
matrices; :class:`DeltaStream` applies the same arithmetic to a stream of frame blocks
(holding back ``width // 2`` frames), which is how ``Extractor.stream`` gets deltas equal to
the whole-clip ones.
"""

from __future__ import annotations

import functools
from math import factorial

import numpy as np

__all__ = ["delta", "DeltaStream"]


@functools.lru_cache(maxsize=32)
def _savgol_ops(width: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(interior taps (width,), start-edge matrix (h, width), end-edge matrix (h, width))."""
    h = width // 2
    t = np.arange(width, dtype=np.float64)
    V = np.vander(t, order + 1, increasing=True)  # (width, order+1)
    pinv = np.linalg.pinv(V)  # coefficients = pinv @ x
    # derivative of sum_k a_k t^k of order `order`, evaluated at t
    D = np.zeros((width, order + 1))
    for k in range(order, order + 1):
        D[:, k] = factorial(k) / factorial(k - order) * t ** (k - order)
    E = D @ pinv  # (width, width): row i = derivative at position i of the fit over the window
    ops = (E[h].astype(np.float32), E[:h].astype(np.float32), E[width - h :].astype(np.float32))
    for op in ops:  # cached and shared between threads: read-only
        op.setflags(write=False)
    return ops


def _check(width: int, order: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 3 \
            or width % 2 != 1:
        raise ValueError(f"width: must be an odd integer >= 3, got {width!r}")
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order <= 0:
        raise ValueError(f"order: must be a positive integer, got {order!r}")


def _effective_width(width: int, order: int, n: int) -> int:
    """``width``, shrunk to the largest odd number <= n for clips shorter than ``width``."""
    if n >= width:
        return width
    w = n if n % 2 else n - 1
    return w if w > order else 0


def _interior(x: np.ndarray, taps: np.ndarray, s: int, n: int) -> np.ndarray:
    """``out[..., i] = sum_j taps[j] * x[..., s + i + j]`` for i < n (same op order everywhere)."""
    out = taps[0] * x[..., s : s + n]
    for j in range(1, len(taps)):
        if taps[j] != 0:
            out += taps[j] * x[..., s + j : s + j + n]
    return out


def _segment(x: np.ndarray, x0: int, t0: int, t1: int, T: int | None, width: int,
             order: int) -> np.ndarray:
    """Deltas of absolute frames [t0, t1) from ``x`` holding absolute frames [x0, x0 + n)."""
    taps, E0, E1 = _savgol_ops(width, order)
    h = width // 2
    parts = []
    t = t0
    if t < h:  # start edge: needs x0 == 0 and the first `width` frames
        stop = min(h, t1)
        parts.append(np.tensordot(x[..., :width], E0[t:stop].T, axes=([-1], [0])))
        t = stop
    t_int_end = t1 if T is None else min(t1, T - h)
    if t < t_int_end:
        parts.append(_interior(x, taps, t - h - x0, t_int_end - t))
        t = t_int_end
    if t < t1:  # end edge: T known, x covers the last `width` frames
        assert T is not None
        last = x[..., T - width - x0 : T - x0]
        parts.append(np.tensordot(last, E1[t - (T - h) : t1 - (T - h)].T, axes=([-1], [0])))
    if not parts:
        return x[..., :0].astype(np.float32)
    return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)


def delta(data: np.ndarray, *, width: int = 9, order: int = 1, axis: int = -1) -> np.ndarray:
    """Delta (``order=1``) or delta-delta (``order=2``) of ``data`` along ``axis``, float32.

    Reference: ``librosa.feature.delta(data, width=9, order=1, mode="interp")`` (a
    Savitzky-Golay derivative of polynomial order ``order``). Frames closer than ``width//2``
    to either end use the polynomial fitted to the first / last ``width`` frames.

    Differs from librosa: when there are fewer than ``width`` frames librosa raises; here
    ``width`` is reduced to the largest odd number <= the frame count, and if that is not
    more than ``order`` (1 or 2 frames) the result is all zeros.

    Examples
    --------
    >>> x = np.arange(20, dtype=np.float32)[None, :] * 2.0
    >>> np.allclose(delta(x), 2.0, atol=1e-4)
    True
    """
    _check(width, order)
    x = np.moveaxis(np.asarray(data, dtype=np.float32), axis, -1)
    T = x.shape[-1]
    w = _effective_width(width, order, T)
    out = np.zeros_like(x) if w == 0 else _segment(x, 0, 0, T, T, w, order)
    return np.moveaxis(out, -1, axis)


class DeltaStream:
    """Deltas of a stream of frame blocks ``(..., n_dims, k)``; concatenated output equals
    :func:`delta` of the concatenated input. Holds back ``width // 2`` frames (and up to
    ``width`` frames at the start) until more input or :meth:`flush`.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    >>> ds = DeltaStream(9, 1)
    >>> out = np.concatenate([ds.push(x[:, :7]), ds.push(x[:, 7:30]), ds.push(x[:, 30:]),
    ...                       ds.flush()], axis=-1)
    >>> np.allclose(out, delta(x), atol=1e-5)
    True
    """

    def __init__(self, width: int = 9, order: int = 1) -> None:
        _check(width, order)
        self.width, self.order, self.h = width, order, width // 2
        self.buf: np.ndarray | None = None
        self.x0 = 0  # absolute index of buf[..., 0]
        self.next = 0  # next frame to emit

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        self.buf = x if self.buf is None else np.concatenate([self.buf, x], axis=-1)
        N = self.x0 + self.buf.shape[-1]
        if N < self.width:
            return self.buf[..., :0]
        t1 = N - self.h
        out = _segment(self.buf, self.x0, self.next, t1, None, self.width, self.order)
        self.next = t1
        keep_from = N - self.width  # enough for the interior of the next push and the end edge
        if keep_from > self.x0:
            self.buf = self.buf[..., keep_from - self.x0 :].copy()
            self.x0 = keep_from
        return out

    def flush(self) -> np.ndarray:
        if self.buf is None:
            raise ValueError("DeltaStream.flush: no frames were pushed")
        T = self.x0 + self.buf.shape[-1]
        if T < self.width:  # short clip: everything is still buffered (x0 == 0)
            out = delta(self.buf, width=self.width, order=self.order)[..., self.next :]
        else:
            out = _segment(self.buf, self.x0, self.next, T, T, self.width, self.order)
        self.next = T
        return out

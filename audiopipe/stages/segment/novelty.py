"""Unsupervised boundaries: Foote's checkerboard novelty on the self-similarity of frames.

Examples
--------
>>> import numpy as np
>>> X = np.r_[np.zeros((50, 2)), np.ones((50, 2))] + 0.01
>>> novelty_boundaries(X, hop_s=0.1, kernel_s=2.0)
array([5.])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["novelty_curve", "novelty_boundaries"]

_REL_FLOOR = 1e-4  # spread below this fraction of its feature's RMS is float noise


def _checkerboard(half: int) -> np.ndarray:
    x = np.arange(-half, half) + 0.5
    g = np.exp(-0.5 * (x / (0.5 * half)) ** 2)
    return np.outer(g, g) * np.outer(np.sign(x), np.sign(x))


def novelty_curve(
    X: np.ndarray, kernel_size: int, widths: Sequence[int] | None = None
) -> np.ndarray:
    """Foote novelty of frames ``X`` (n_frames, d): checkerboard kernel along the SSM diagonal.

    The self-similarity is the cosine similarity of standardised frames; the curve is
    normalised to max 1 (zeros when flat). A dimension whose spread is below ``1e-4`` of
    its feature's RMS (float noise of silence or of a constant signal) is constant: it is
    not standardised up to unit variance but left out, so such frames give no novelty at
    all. ``widths``: the column counts of the features concatenated in ``X`` (default: one
    feature), so that a feature in Hz does not set the floor of one in [0, 1].
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 4:
        return np.zeros(n)
    sd = X.std(0)
    widths = [X.shape[1]] if widths is None else [int(w) for w in widths]
    if sum(widths) != X.shape[1]:
        raise ValueError(f"widths {widths} do not add up to the {X.shape[1]} columns of X")
    edges = np.cumsum([0, *widths])
    floor = np.concatenate([  # each feature's own scale
        np.full(b - a, _REL_FLOOR * np.sqrt(np.mean(X[:, a:b] ** 2))) if b > a else np.zeros(0)
        for a, b in zip(edges[:-1], edges[1:], strict=True)])
    live = sd > floor
    if not live.any():  # silence, a constant signal: nothing changes
        return np.zeros(n)
    Z = (X[:, live] - X[:, live].mean(0)) / sd[live]
    Z /= np.linalg.norm(Z, axis=1, keepdims=True) + 1e-9
    S = Z @ Z.T
    half = max(2, kernel_size // 2)
    K = _checkerboard(half)
    Sp = np.pad(S, half, mode="constant")
    nov = np.array([np.sum(K * Sp[i : i + 2 * half, i : i + 2 * half]) for i in range(n)])
    nov = np.maximum(nov, 0)
    # a trace far below a real change (one of sum|K| between opposite halves) is no peak
    return nov / nov.max() if nov.max() > 1e-6 * np.abs(K).sum() else np.zeros(n)


def novelty_boundaries(
    X: np.ndarray,
    hop_s: float,
    kernel_s: float = 4.0,
    peak_delta: float = 0.1,
    max_frames: int = 3000,
    widths: Sequence[int] | None = None,
) -> np.ndarray:
    """Boundary times (s) from novelty peaks; frames are mean-pooled to ≤ ``max_frames``
    (``widths`` as in :func:`novelty_curve`).

    A peak within ``kernel / 8`` of either end is not a boundary: the kernel lies largely
    past the clip there, and the first and last frames (whose analysis windows reach into
    the padding) differ from the rest even for a constant signal.
    """
    X = np.asarray(X, dtype=np.float64)
    step = max(1, int(np.ceil(len(X) / max_frames)))
    if step > 1:
        n = len(X) // step * step
        X = X[:n].reshape(-1, step, X.shape[1]).mean(axis=1)
    hop = hop_s * step
    k = max(4, int(round(kernel_s / hop)))
    nov = novelty_curve(X, k, widths)
    if nov.max() <= 0:
        return np.zeros(0)
    from scipy import signal

    peaks, _ = signal.find_peaks(nov, prominence=peak_delta, distance=max(1, k // 2))
    peaks = peaks[(peaks >= k // 8) & (peaks < len(nov) - k // 8)]
    return peaks * hop

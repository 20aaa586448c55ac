"""Time-domain frame features: RMS, zero-crossing rate (librosa), short-term energy and
energy entropy (pyAudioAnalysis): functions, kernels and recipe features.

Frame sums are computed per hop-sized chunk and combined (``frame_length / hop_length``
additions per frame) instead of summing overlapping frames, and zero crossings are counted
once per sample with a cumulative sum: O(n_samples), not O(n_frames * frame_length).
"""

from __future__ import annotations

import numpy as np

from ._core import _frame_rows, as_audio
from .extractor import Extractor
from .registry import Param, feature, nonneg_num, pos_int

__all__ = ["rms", "zero_crossing_rate", "energy", "energy_entropy", "frame_sumsq",
           "frame_crossings", "entropy_from_signal"]


def frame_sumsq(seg: np.ndarray, n_frames: int, frame_length: int, hop: int) -> np.ndarray:
    """Sum of squares of frames ``seg[t*hop : t*hop + frame_length]``, t < n_frames, float32."""
    if frame_length % hop == 0:
        r = frame_length // hop
        m = n_frames - 1 + r
        sq = seg[..., : m * hop].reshape(seg.shape[:-1] + (m, hop))
        h = np.einsum("...ij,...ij->...i", sq, sq)
        out = h[..., :n_frames].copy()
        for j in range(1, r):
            out += h[..., j : j + n_frames]
        return out
    rows = _frame_rows(seg, frame_length, hop)[..., :n_frames, :]
    return np.einsum("...ij,...ij->...i", rows, rows)


def frame_crossings(seg: np.ndarray, n_frames: int, frame_length: int, hop: int,
                    threshold: float, lo: int, hi: int) -> np.ndarray:
    """Zero crossings inside frames ``seg[t*hop : t*hop + frame_length]`` (int32 counts).

    Only sample pairs inside ``[lo, hi)`` (the real, unpadded samples) count: this equals
    librosa's ZCR on an edge-padded signal, whose padding never crosses zero. Frame ``t``
    counts the pairs starting at ``t*hop .. t*hop + frame_length - 2``: when ``hop`` divides
    ``frame_length``, summed per hop-sized chunk (``frame_length / hop`` chunks a frame, less
    the one pair past its end), else from a cumulative sum; exact integers either way.
    """
    if threshold > 0:
        s = seg < -np.float32(threshold)  # librosa zeroes |x| <= threshold, zero counts positive
    else:
        s = np.signbit(seg)
    n = s.shape[-1] - 1
    need = (n_frames - 1) * hop + frame_length  # pairs read, with the one past the last frame
    c = np.zeros(seg.shape[:-1] + (max(n, need),), dtype=bool)
    np.not_equal(s[..., 1:], s[..., :-1], out=c[..., :n])
    lo = max(lo, 0)
    if lo > 0:
        c[..., :lo] = False
    if hi - 1 < n:
        c[..., max(hi - 1, 0) :] = False
    if frame_length % hop:
        C = np.zeros(seg.shape[:-1] + (c.shape[-1] + 1,), dtype=np.int32)
        np.cumsum(c, axis=-1, out=C[..., 1:])
        starts = np.arange(n_frames) * hop
        return C[..., starts + frame_length - 1] - C[..., starts]
    r = frame_length // hop
    chunks = c[..., :need].reshape(seg.shape[:-1] + (n_frames - 1 + r, hop))
    h = chunks.sum(axis=-1, dtype=np.int32)
    out = h[..., :n_frames].copy()
    for j in range(1, r):
        out += h[..., j : j + n_frames]
    out -= c[..., frame_length - 1 : need : hop]  # the pair past each frame's end
    return out


@feature("rms", dims=1,
         doc="Root-mean-square of rectangular frames of n_fft samples, zero-padded when "
             "centred (librosa.feature.rms(y=..., frame_length=n_fft)).")
def _rms(p: dict, ex: Extractor):
    L, hop = ex.n_fft, ex.hop_length
    inv = np.float32(1.0 / L)
    return lambda b: np.sqrt(frame_sumsq(b.seg, b.k, L, hop) * inv)[None, :]


def rms(
    *,
    y: np.ndarray | None = None,
    S: np.ndarray | None = None,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Root-mean-square per frame, ``(..., 1, n_frames)`` float32; ``librosa.feature.rms``.

    From ``y``: ``sqrt(mean(frame ** 2))`` over rectangular frames of ``frame_length``,
    centred with ``pad_mode`` padding (zeros). From a magnitude spectrogram ``S``: Parseval
    with the DC and Nyquist bins halved, ``sqrt(2 sum |S|^2 / frame_length^2)`` (librosa).
    Input shorter than a frame gives ``1 + n // hop_length`` centred frames.

    Examples
    --------
    >>> round(float(rms(y=np.full(4096, 0.5, np.float32))[0, 4]), 6)
    0.5
    """
    if S is not None:
        x = np.abs(np.asarray(S, np.float32)) ** 2
        if x.shape[-2] != frame_length // 2 + 1:
            raise ValueError(f"S: has {x.shape[-2]} bins, frame_length={frame_length} needs "
                             f"{frame_length // 2 + 1}")
        x[..., 0, :] *= 0.5
        if frame_length % 2 == 0:
            x[..., -1, :] *= 0.5
        return np.sqrt(2 * x.sum(axis=-2, keepdims=True) / frame_length**2)
    if y is None:
        raise ValueError("either y or S must be given")
    y = as_audio(y)
    if center:
        pw = [(0, 0)] * (y.ndim - 1) + [(frame_length // 2, frame_length // 2)]
        y = np.pad(y, pw, mode=pad_mode)
    elif y.shape[-1] < frame_length:
        raise ValueError(f"input of {y.shape[-1]} samples is shorter than frame_length="
                         f"{frame_length} (use center=True)")
    n = 1 + (y.shape[-1] - frame_length) // hop_length
    ss = frame_sumsq(y, n, frame_length, hop_length)
    return np.sqrt(ss * np.float32(1.0 / frame_length))[..., None, :]


@feature("zero_crossing_rate", dims=1, params={
    "threshold": Param(1e-10, nonneg_num, "|x| <= threshold counts as zero")},
    doc="Zero-crossing rate over frames of n_fft samples (librosa.feature.zero_crossing_rate, "
        "edge padding when centred).")
def _zcr(p: dict, ex: Extractor):
    L, hop, thr = ex.n_fft, ex.hop_length, p["threshold"]
    inv = np.float32(1.0 / L)
    return lambda b: (frame_crossings(b.seg, b.k, L, hop, thr, b.lo, b.hi).astype(np.float32)
                      * inv)[None, :]


def zero_crossing_rate(
    y: np.ndarray,
    *,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    threshold: float = 1e-10,
) -> np.ndarray:
    """Fraction of sample pairs that change sign, per frame, ``(..., 1, n_frames)``.

    Reference: ``librosa.feature.zero_crossing_rate`` (edge padding when centred, samples
    with ``|x| <= threshold`` count as zero, zero counts as positive, count divided by
    ``frame_length``). A sine of frequency f gives about ``2 f / sr``.

    Examples
    --------
    >>> sr = 8000; t = np.arange(sr) / sr
    >>> z = zero_crossing_rate(np.sin(2 * np.pi * 440 * t + 0.1), frame_length=800,
    ...                        hop_length=400)
    >>> bool(abs(np.median(z) - 2 * 440 / sr) < 0.003)
    True
    """
    y = as_audio(y)
    n = y.shape[-1]
    pad = frame_length // 2 if center else 0
    if not center and n < frame_length:
        raise ValueError(f"input of {n} samples is shorter than frame_length={frame_length} "
                         "(use center=True)")
    if pad:
        pw = [(0, 0)] * (y.ndim - 1) + [(pad, pad)]
        y = np.pad(y, pw)
    n_frames = 1 + (y.shape[-1] - frame_length) // hop_length
    counts = frame_crossings(y, n_frames, frame_length, hop_length, threshold, pad, pad + n)
    return (counts.astype(np.float32) * np.float32(1.0 / frame_length))[..., None, :]


def _paa_rows(y, sr, frame_length, hop_length, center):
    y = as_audio(y)
    frame_length = int(0.050 * sr) if frame_length is None else int(frame_length)
    hop_length = int(0.025 * sr) if hop_length is None else int(hop_length)
    if center:
        pw = [(0, 0)] * (y.ndim - 1) + [(frame_length // 2, frame_length // 2)]
        y = np.pad(y, pw)
    if y.shape[-1] < frame_length:
        raise ValueError(f"clip of {y.shape[-1]} samples is shorter than frame_length="
                         f"{frame_length} (use center=True for one padded frame)")
    return _frame_rows(y, frame_length, hop_length), frame_length, hop_length, y


@feature("energy", dims=1,
         doc="Short-term energy sum(x^2)/n_fft of rectangular frames (pyAudioAnalysis, without "
             "its whole-file normalisation), on the shared framing.")
def _energy(p: dict, ex: Extractor):
    L, hop = ex.n_fft, ex.hop_length
    inv = np.float32(1.0 / L)
    return lambda b: (frame_sumsq(b.seg, b.k, L, hop) * inv)[None, :]


def energy(
    y: np.ndarray,
    *,
    sr: float = 22050,
    frame_length: int | None = None,
    hop_length: int | None = None,
    center: bool = False,
) -> np.ndarray:
    """Short-term energy ``sum(x^2) / frame_length`` per frame, ``(..., 1, n_frames)``.

    pyAudioAnalysis ``energy`` with its short-term framing: rectangular frames of 50 ms
    every 25 ms (defaults at ``sr``), uncentred, trailing partial frame dropped.
    pyAudioAnalysis first normalises the whole file (``x / 2^15``, minus its mean, divided by
    its maximum |x|); that is a whole-file step and is not done here (int16 input is
    scaled by 1/32768, which matches its first step) -- normalise the clip yourself to
    reproduce its numbers. Equals ``rms**2`` on the same frames.

    Examples
    --------
    >>> round(float(energy(np.full(22050, 0.5, np.float32), sr=22050)[0, 0]), 6)
    0.25
    """
    rows, L, hop, yp = _paa_rows(y, sr, frame_length, hop_length, center)
    ss = frame_sumsq(yp, rows.shape[-2], L, hop)
    return (ss * np.float32(1.0 / L))[..., None, :]


def entropy_rows(rows: np.ndarray, n_short_blocks: int, eps: float = 1e-8) -> np.ndarray:
    """pyAudioAnalysis energy entropy of frame rows ``(..., k, L)`` -> ``(..., 1, k)``."""
    L = rows.shape[-1]
    sub = L // n_short_blocks
    x = rows.astype(np.float64)
    total = np.einsum("...ij,...ij->...i", x, x)
    b = x[..., : sub * n_short_blocks].reshape(rows.shape[:-1] + (n_short_blocks, sub))
    s = np.einsum("...ij,...ij->...i", b, b) / (total[..., None] + eps)
    return (-(s * np.log2(s + eps)).sum(axis=-1))[..., None, :].astype(np.float32)


def entropy_from_signal(seg: np.ndarray, n_frames: int, frame_length: int, hop: int,
                        n_short_blocks: int, eps: float = 1e-8) -> np.ndarray:
    """:func:`entropy_rows` of frames ``seg[t*hop : t*hop + frame_length]`` of a 1-D ``seg``.

    Sub-block and frame energies are differences of one float64 cumulative sum of ``seg**2``
    (each sample squared once, not once per overlapping frame); ``seg`` is one extractor block,
    so the sums stay short and the differences accurate to ~1e-16 of the block's energy.
    """
    sub = frame_length // n_short_blocks
    x = seg[: (n_frames - 1) * hop + frame_length].astype(np.float64)
    C = np.empty(len(x) + 1)
    C[0] = 0.0
    np.cumsum(x * x, out=C[1:])
    start = np.arange(n_frames) * hop
    total = C[start + frame_length] - C[start]
    edges = C[start[:, None] + sub * np.arange(n_short_blocks + 1)]
    e = np.diff(edges, axis=-1)
    np.maximum(e, 0.0, out=e)
    s = e / (total[:, None] + eps)
    return (-(s * np.log2(s + eps)).sum(axis=-1))[None, :].astype(np.float32)


@feature("energy_entropy", dims=1,
         params={"n_short_blocks": Param(10, pos_int, "sub-blocks per frame")},
         doc="Entropy of sub-block energies (pyAudioAnalysis), on the shared framing.")
def _energy_entropy(p: dict, ex: Extractor):
    nb, L, hop = p["n_short_blocks"], ex.n_fft, ex.hop_length
    return lambda b: entropy_from_signal(b.seg, b.k, L, hop, nb)


def energy_entropy(
    y: np.ndarray,
    *,
    sr: float = 22050,
    frame_length: int | None = None,
    hop_length: int | None = None,
    center: bool = False,
    n_short_blocks: int = 10,
) -> np.ndarray:
    """Entropy of energy, ``(..., 1, n_frames)``; pyAudioAnalysis ``energy_entropy``.

    Each frame is cut into ``n_short_blocks`` equal sub-blocks (the last
    ``frame_length % n_short_blocks`` samples dropped); with ``s_j`` = sub-block energy over
    the frame's energy, the entropy is ``-sum s_j log2(s_j + eps)``, ``eps = 1e-8``: low for
    a frame with an abrupt change (energy in few sub-blocks), up to ``log2(n_short_blocks)``
    for a steady one. Framing as :func:`energy`; scale-free, so pyAudioAnalysis' file
    normalisation only matters through a DC offset. Silence gives 0.

    Examples
    --------
    >>> e = energy_entropy(np.random.default_rng(0).standard_normal(22050), sr=22050)
    >>> bool(abs(float(e.mean()) - np.log2(10)) < 0.05)
    True
    """
    rows, _, _, _ = _paa_rows(y, sr, frame_length, hop_length, center)
    return entropy_rows(rows, n_short_blocks)

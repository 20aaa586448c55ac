"""Peak picking and pairing of :mod:`audiopipe.stages.fingerprint` (pure numpy): local
maxima of a log-magnitude STFT, the strongest per second, paired into 20-bit hashes.

Examples
--------
>>> t, f = _peaks(np.zeros(11025, np.float32), 45.0, 5, 2, 0.0, 2, False)
>>> t.size
0
"""

from __future__ import annotations

import numpy as np

from audiopipe.stages._fpindex import HOP_LENGTH, SR

N_FFT = 512  # FFT size of the landmark spectrogram (rate SR and hop HOP_LENGTH: _fpindex)

_F_BITS, _DF_BITS, _DT_BITS = 8, 6, 6
_MAX_DT = (1 << _DT_BITS) - 1  # 63 frames = 1.46 s
_MAX_DF = (1 << (_DF_BITS - 1)) - 1  # 31 bins
_MIN_BIN = 2  # row 2 = FFT bin 3 = 65 Hz: lowest peak frequency (low calls: whales, dogs)
_SILENCE = 1e-4  # STFT magnitude below this is silence (full-scale sine: ~128)
#: the second layer (round 6): rows of a longer FFT kept (``f1`` fits 8 bits: 0-1.38 kHz at
#: n_fft 2048) and the bit that keeps its hashes apart from the first layer's
FINE_ROWS = 256
FINE_FLAG = 1 << 20


def _max_filter(H: np.ndarray, f_half: int, t_half: int) -> np.ndarray:
    """Maximum of each ``(2 f_half + 1) x (2 t_half + 1)`` neighbourhood, outside the array
    counting as -inf: ``scipy.ndimage.maximum_filter(H, size, mode="constant", cval=-inf)``,
    equal to it value for value, in numpy (importing ``scipy.ndimage`` costs ~0.3 s).

    Examples
    --------
    >>> _max_filter(np.array([[0.0, 3, 1, 0, 0, 2]]), 0, 1).tolist()
    [[3.0, 3.0, 3.0, 1.0, 2.0, 2.0]]
    """
    n, m = H.shape
    P = np.full((n + 2 * f_half, m), -np.inf, H.dtype)
    P[f_half : f_half + n] = H
    A = P[:n].copy()
    for k in range(1, 2 * f_half + 1):
        np.maximum(A, P[k : k + n], out=A)
    P = np.full((n, m + 2 * t_half), -np.inf, H.dtype)
    P[:, t_half : t_half + m] = A
    B = P[:, :m].copy()
    for k in range(1, 2 * t_half + 1):
        np.maximum(B, P[:, k : k + m], out=B)
    return B


def _peaks(
    y: np.ndarray, density: float, f_sd: int, t_sd: int, hpf_pole: float, min_bin: int,
    band_norm: bool, floor_db: float = 0.0, n_fft: int = N_FFT, max_row: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of the spectral peaks, sorted by frame then bin; ``n_fft``: the FFT size
    (hop :data:`HOP_LENGTH` whatever it is), ``max_row``: rows from it up are not looked at."""
    from audiopipe.features import stft

    if y.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    S = np.abs(stft(y, n_fft=n_fft, hop_length=HOP_LENGTH))[1 : n_fft // 2 + 1]  # drop DC
    S = S[:max_row]
    if S.shape[1] < 2 or float(S.max()) < _SILENCE:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    loud = S > _SILENCE
    L = np.log(np.maximum(S, _SILENCE))
    if band_norm:  # each band against its own median level: quiet narrow bands count too
        L -= np.median(L, axis=1, keepdims=True)
    else:
        L -= L.mean()
    if hpf_pole > 0:  # optional per-band high-pass over time (audfprint); off by default
        from scipy.signal import lfilter

        H = lfilter([1.0, -1.0], [1.0, -hpf_pole], L, axis=1).astype(np.float32)
    else:
        H = L
    M = _max_filter(H, f_sd, t_sd)
    cand = (H == M) & loud
    if floor_db > 0:  # only peaks standing out of their band's noise floor (median level)
        cand &= L > np.median(L, axis=1, keepdims=True) + floor_db * np.log(10.0) / 20.0
    cand[:min_bin] = False  # rumble and DC leakage: the same few hashes in every recording
    if hpf_pole > 0:
        cand &= H > 0
    f, t = np.nonzero(cand)
    if f.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    v = L[f, t]  # rank by level: loud partials survive noise better than onsets
    # keep the strongest `density` peaks per second, per one-second block
    per_block = max(1, int(round(density)))
    block = int(round(SR / HOP_LENGTH))
    b = t // block
    order = np.lexsort((f, t, -v, b))  # by block, strongest first, ties by time then bin
    b_sorted = b[order]
    starts = np.searchsorted(b_sorted, b_sorted, side="left")
    rank = np.arange(b_sorted.size) - starts
    keep = order[rank < per_block]
    t, f = t[keep], f[keep]
    o = np.lexsort((f, t))
    return t[o].astype(np.int64), f[o].astype(np.int64)


def _pairs(t: np.ndarray, f: np.ndarray, fanout: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor frames of the peaks ``(t, f)`` (sorted by time) paired with the
    next ``fanout`` peaks of their target zone."""
    n = t.size
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    anchors, targets = [], []
    # peaks are sorted by time: the candidates for anchor i are the next peaks i+1, i+2, ...
    # scan forward a bounded number of steps and keep the first `fanout` inside the zone
    count = np.zeros(n, np.int64)
    idx = np.arange(n)
    max_steps = int(np.max(np.searchsorted(t, t + _MAX_DT, side="right") - idx))
    for step in range(1, max_steps):
        j = idx + step
        ok = j < n
        i_ok, j_ok = idx[ok], j[ok]
        dt = t[j_ok] - t[i_ok]
        df = f[j_ok] - f[i_ok]
        z = (dt >= 1) & (dt <= _MAX_DT) & (np.abs(df) <= _MAX_DF) & (count[i_ok] < fanout)
        i_z, j_z = i_ok[z], j_ok[z]
        count[i_z] += 1
        anchors.append(i_z)
        targets.append(j_z)
        if not np.any(count[i_ok] < fanout):
            break
    if not anchors:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    a = np.concatenate(anchors)
    b = np.concatenate(targets)
    h = (f[a] << (_DF_BITS + _DT_BITS)) | ((f[b] - f[a] + _MAX_DF + 1) << _DT_BITS) | (t[b] - t[a])
    times = t[a].astype(np.int32)
    o = np.lexsort((h, times))
    return h[o].astype(np.int64), times[o]

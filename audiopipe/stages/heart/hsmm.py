"""Duration-dependent (hidden semi-Markov) Viterbi decoding of a cyclic state sequence.

The states follow each other in a fixed cycle (S1 -> systole -> S2 -> diastole -> S1);
each visit of state ``j`` lasts ``d`` frames with probability ``p_j(d)``. The decoder
finds the segmentation of the whole recording that maximises

    log P(first) + sum over segments [log p_j(d) + sum of log b_j(o_t) over the segment]

where the first and last segments may be cut by the recording's edges (Springer's
extended Viterbi): the first segment, already running when the recording starts, is
scored with the residual-life probability ``P(D >= d) / sum_k E[D_k]`` (which also holds
the probability of starting in state ``j``), the last with the survival ``P(D >= d)``.
Every frame gets a state: the whole recording is covered.

With cumulative sums of the log emissions, each frame costs one vectorised step over
(durations x states): ``O(T * D * K)`` work, a few milliseconds per second of audio.

Examples
--------
>>> import numpy as np
>>> logp = np.log(np.array([[1e-9, 1e-9, 1.0], [1e-9, 1e-9, 1.0]]))  # both states last 3
>>> logb = np.zeros((12, 2))
>>> logb[1, 1] = 1.0  # one frame hints at state 1: the cycle is placed around it
>>> hsmm_viterbi(logb, logp, partial_edges=False)[0].tolist()  # whole segments only
[1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_durations", "hsmm_viterbi", "hsmm_viterbi_many", "path_to_runs"]

NEG = -1e30


def gaussian_durations(
    means: np.ndarray, stds: np.ndarray, n_sd: float = 3.0, max_len: int | None = None
) -> np.ndarray:
    """Log pmf ``(K, D)`` of durations ``d = 1..D`` frames: discretised, truncated Gaussians.

    State ``j`` may last ``max(1, mean - n_sd*std) .. mean + n_sd*std`` frames, with
    probabilities proportional to the normal density there (normalised to sum 1).
    """
    means = np.maximum(np.asarray(means, np.float64), 1.0)
    stds = np.maximum(np.asarray(stds, np.float64), 0.5)
    hi = np.ceil(means + n_sd * stds).astype(int)
    lo = np.maximum(1, np.floor(means - n_sd * stds)).astype(int)
    D = int(hi.max()) if max_len is None else int(max_len)
    d = np.arange(1, D + 1, dtype=np.float64)
    z = -0.5 * ((d[None, :] - means[:, None]) / stds[:, None]) ** 2
    ok = (d[None, :] >= lo[:, None]) & (d[None, :] <= hi[:, None])
    z = np.where(ok, z, -np.inf)
    m = z.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return logp


def _log_survival(logp: np.ndarray) -> np.ndarray:
    """``log P(D >= d)`` for d = 1..D, per state."""
    p = np.exp(logp)
    surv = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore"):
        return np.log(np.minimum(surv, 1.0))


def hsmm_viterbi(
    log_b: np.ndarray, log_p: np.ndarray, *, partial_edges: bool = True
) -> tuple[np.ndarray, float]:
    """Most likely cyclic state path of a semi-Markov model.

    Parameters
    ----------
    log_b : (T, K) array
        Per-frame log emission scores of the ``K`` states.
    log_p : (K, D) array
        Log duration pmf of each state for durations ``1..D`` frames (``-inf`` = impossible).
    partial_edges : bool, default True
        Let the first and last segments be cut by the recording's edges (scored with the
        residual-life and survival probabilities); otherwise both must be complete
        durations (the recording then starts in any state with probability ``1/K``).

    Returns
    -------
    path : (T,) int array of states (state ``j`` is followed by ``(j + 1) % K``).
    score : float, the path's total log score (``-inf`` when no path fits, e.g. a
        recording shorter than the shortest complete cycle without ``partial_edges``).
    """
    paths, scores = hsmm_viterbi_many(log_b, [log_p], partial_edges=partial_edges)
    return paths[0], float(scores[0])


def hsmm_viterbi_many(
    log_b: np.ndarray, log_ps: list[np.ndarray], *, partial_edges: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hsmm_viterbi` for several duration models at once (one pass over the frames).

    ``log_ps`` is a list of ``(K, D_m)`` log duration pmfs (e.g. one per heart-rate
    candidate); returns ``paths`` ``(M, T)`` and ``scores`` ``(M,)``. The models run as
    independent blocks of one larger cyclic model, so M models cost little more than one.
    """
    log_b = np.asarray(log_b, dtype=np.float64)
    T, K = log_b.shape
    M = len(log_ps)
    for lp_m in log_ps:
        if np.shape(lp_m)[0] != K:
            raise ValueError(f"a duration model has {np.shape(lp_m)[0]} states, log_b has {K}")
    if T == 0 or M == 0:
        return np.zeros((M, 0), dtype=np.int64), np.zeros(M)
    D = max(np.shape(lp_m)[1] for lp_m in log_ps)
    logp = np.full((M, K, D), -np.inf)
    for m, lp_m in enumerate(log_ps):
        logp[m, :, : np.shape(lp_m)[1]] = lp_m
    if partial_edges:
        surv = _log_survival(logp.reshape(M * K, D)).reshape(M, K, D)
        mean_d = (np.exp(logp) * np.arange(1, D + 1)).sum(axis=2)  # (M, K)
        log_start = surv - np.log(mean_d.sum(axis=1))[:, None, None]
        log_end = surv
    else:
        log_start = logp - np.log(K)
        log_end = logp
    KM = M * K
    lp = np.where(np.isfinite(logp), logp, NEG).reshape(KM, D)
    log_start = np.where(np.isfinite(log_start), log_start, NEG).reshape(KM, D)
    log_end = np.where(np.isfinite(log_end), log_end, NEG).reshape(KM, D)
    C = np.zeros((T + 1, KM))
    np.cumsum(np.tile(log_b, (1, M)), axis=0, out=C[1:])
    prev = ((np.arange(K) - 1) % K + K * np.arange(M)[:, None]).reshape(KM)
    # delta[t, j]: best score of a path whose segment of state j ends at frame t. With
    # H[j, s] = delta[s, prev[j]] - C[s + 1, j], a segment of j over frames s+1..t scores
    # H[j, s] + log_p[j, t - s] + C[t + 1, j]: one slice and one argmax per frame.
    delta = np.full((T, KM), NEG)
    H = np.full((KM, T), NEG)
    best_d = np.zeros((T, KM), dtype=np.int64)  # the segment's duration; t + 1: first segment
    lp_rev = np.ascontiguousarray(lp[:, ::-1])  # column D - d holds duration d
    n0 = min(D, T)
    first = log_start[:, :n0].T + C[1 : n0 + 1]  # the first segment: frames 0..t
    rows = np.arange(KM)
    for t in range(T):
        n = min(D, t)
        if n:
            cand = H[:, t - n : t] + lp_rev[:, D - n :]  # column i: duration n - i
            i = cand.argmax(axis=1)
            row = cand[rows, i] + C[t + 1]
            bd = n - i
            if t < n0:
                better = first[t] > row
                row = np.where(better, first[t], row)
                bd = np.where(better, t + 1, bd)
        else:
            row, bd = first[0], np.ones(KM, dtype=np.int64)
        delta[t] = row
        best_d[t] = bd
        H[:, t] = row[prev] - C[t + 1]
    paths = np.zeros((M, T), dtype=np.int64)
    scores = np.full(M, -np.inf)
    # the last segment may be cut at T: frames T - d .. T - 1, after a segment ending at T-1-d
    n = min(D, T - 1)
    if n:
        dd = np.arange(1, n + 1)
        last = delta[T - 1 - dd][:, prev] + log_end.T[:n] + (C[T] - C[T - dd])  # (n, KM)
    else:
        last = np.full((0, KM), NEG)
    for m in range(M):
        blk = slice(m * K, (m + 1) * K)
        cand = last[:, blk]
        best, end_state, end_d = NEG, 0, 0
        if cand.size:
            k = np.unravel_index(int(np.argmax(cand)), cand.shape)
            best, end_d, end_state = float(cand[k]), int(k[0]) + 1, int(k[1]) + m * K
        if T <= D:  # one segment over the whole recording
            whole = log_start[blk, T - 1] + C[T, blk]
            j = int(np.argmax(whole))
            if whole[j] > best:
                best, end_state, end_d = float(whole[j]), j + m * K, T
        if best <= NEG / 2:
            continue
        scores[m] = best
        t, j, d = T - 1, end_state, end_d
        while True:
            paths[m, t - d + 1 : t + 1] = j - m * K
            t -= d
            if t < 0:
                break
            j = int(prev[j])
            d = int(best_d[t, j])
    return paths, scores


def path_to_runs(path: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal states: ``(start_frame, end_frame_exclusive, state)``."""
    path = np.asarray(path)
    if path.size == 0:
        return []
    change = np.flatnonzero(path[1:] != path[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, path.size]
    return [(int(s), int(e), int(path[s])) for s, e in zip(starts, ends, strict=True)]

"""The one Viterbi decoder of the stages (segment's HMM smoothing, transcribe's pitch path,
segment's periodic S1/S2 model).

:func:`viterbi` finds the most likely state path of a hidden Markov model from per-frame
log-likelihoods. Transitions are either a dense ``(K, K)`` log matrix, or sparse
*predecessor lists* (:class:`Predecessors`): for each state ``j`` the states ``src[j]``
it can be entered from and the log-weights ``logw[j]`` of those moves, optionally one set
of weights per frame. The banded pitch model of pYIN (a pitch moves a few bins per frame)
and duration models (a state "g frames since the last event") are small in that form.

Ties go to the earlier predecessor in ``src`` order and, at the end, to the lower state.

Examples
--------
>>> import numpy as np
>>> A = np.log([[0.9, 0.1], [0.1, 0.9]])
>>> ll = np.log([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8]])
>>> viterbi(ll, A).tolist()
[0, 0, 0, 0, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Predecessors", "viterbi", "dense_predecessors"]


@dataclass(frozen=True)
class Predecessors:
    """Sparse transitions: state ``j`` is entered from ``src[j, p]`` with log-weight ``logw[j, p]``.

    ``src`` is ``(K, P)`` int; ``logw`` is ``(K, P)`` or, for transitions that change over
    time, ``(T, K, P)`` where ``logw[t]`` enters frame ``t`` (``logw[0]`` is unused). Pad
    short lists with any state and a log-weight of ``-inf``.
    """

    src: np.ndarray
    logw: np.ndarray


def dense_predecessors(log_trans: np.ndarray) -> Predecessors:
    """A dense ``(K, K)`` log transition matrix (``[from, to]``) as predecessor lists."""
    A = np.asarray(log_trans, dtype=np.float64)
    k = A.shape[0]
    return Predecessors(np.tile(np.arange(k), (k, 1)), np.ascontiguousarray(A.T))


def viterbi(
    log_emit: np.ndarray,
    transition: np.ndarray | Predecessors,
    log_init: np.ndarray | None = None,
    log_final: np.ndarray | None = None,
) -> np.ndarray:
    """Most likely state path (``(T,)`` int64) given per-frame log-likelihoods ``(T, K)``.

    Parameters
    ----------
    log_emit : np.ndarray, shape (T, K)
        Log-likelihood of each frame under each state (any common scale).
    transition : np.ndarray of shape (K, K), or Predecessors
        Log transition probabilities ``[from, to]``, or sparse predecessor lists.
    log_init : np.ndarray, shape (K,), optional
        Log prior of the first state (default uniform).
    log_final : np.ndarray, shape (K,), optional
        Log weight of ending in each state (default 0: any state may end a path).

    Returns
    -------
    np.ndarray, int64, shape (T,)

    Examples
    --------
    >>> viterbi(np.zeros((0, 3)), np.zeros((3, 3))).shape
    (0,)
    """
    E = np.asarray(log_emit, dtype=np.float64)
    if E.ndim != 2:
        raise ValueError(f"log_emit must be (n_frames, n_states), got shape {E.shape}")
    T, K = E.shape
    if T == 0:
        return np.zeros(0, dtype=np.int64)
    pred = transition if isinstance(transition, Predecessors) else dense_predecessors(transition)
    src = np.asarray(pred.src, dtype=np.int64)
    logw = np.asarray(pred.logw, dtype=np.float64)
    if src.shape[0] != K or logw.shape[-2:] != src.shape:
        raise ValueError(
            f"transitions for {src.shape[0]} states (logw {logw.shape}) do not match {K} states"
        )
    varying = logw.ndim == 3
    if varying and logw.shape[0] != T:
        raise ValueError(f"time-varying logw must have {T} frames, got {logw.shape[0]}")
    init = np.full(K, -np.log(K)) if log_init is None else np.asarray(log_init, np.float64)
    delta = init + E[0]
    back = np.zeros((T, K), dtype=np.int32)
    rows = np.arange(K)
    for t in range(1, T):
        cand = delta[src] + (logw[t] if varying else logw)
        best = np.argmax(cand, axis=1)
        back[t] = best
        delta = cand[rows, best] + E[t]
    if log_final is not None:
        delta = delta + np.asarray(log_final, np.float64)
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for t in range(T - 1, 0, -1):
        path[t - 1] = src[path[t], back[t, path[t]]]
    return path

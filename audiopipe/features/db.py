"""Decibel conversions (``librosa.power_to_db`` and friends) and the clipping at ``top_db``.

:func:`power_to_db` is librosa's definition for the functional API; :func:`to_db` is the
float32 form the extractor uses on every block (``10/ln 10 * ln``, vectorised, within 1 ulp);
:func:`clip_db` applies librosa's ``top_db`` clipping per clip (max over the last two axes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["power_to_db", "amplitude_to_db", "db_to_power", "clip_db", "to_db"]


def power_to_db(
    S: np.ndarray,
    *,
    ref: float | Callable[[np.ndarray], Any] = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Power to decibels, ``10 log10(max(amin, S) / ref)``, as ``librosa.power_to_db``.

    With ``top_db`` the result is clipped at ``max - top_db`` where the maximum is taken over
    the *whole* array (librosa's definition; so the value of a frame depends on the rest of
    the clip). Use ``top_db=None`` for a frame-local definition. ``amin`` floors silence
    (``-100 dB`` by default), so the output is always finite.

    Examples
    --------
    >>> np.round(power_to_db(np.array([1.0, 1e-3, 0.0]), top_db=None), 3)
    array([   0.,  -30., -100.], dtype=float32)
    """
    if amin <= 0:
        raise ValueError(f"amin: must be > 0, got {amin}")
    S = np.asarray(S)
    if np.iscomplexobj(S):
        S = np.abs(S)
    S = S.astype(np.float32, copy=False)
    ref_value = ref(S) if callable(ref) else abs(ref)
    log_spec = np.log10(np.maximum(S, np.float32(amin)))
    log_spec *= np.float32(10.0)
    log_spec -= np.float32(10.0 * np.log10(max(amin, float(ref_value))))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db: must be >= 0, got {top_db}")
        np.maximum(log_spec, log_spec.max() - np.float32(top_db), out=log_spec)
    return log_spec


def amplitude_to_db(
    S: np.ndarray,
    *,
    ref: float | Callable[[np.ndarray], Any] = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Amplitude to decibels, ``power_to_db(S**2, ref**2, amin**2, top_db)`` as librosa.

    Examples
    --------
    >>> np.round(amplitude_to_db(np.array([1.0, 0.1, 0.0]), top_db=None), 3)
    array([   0.,  -20., -100.], dtype=float32)
    """
    S = np.abs(np.asarray(S)).astype(np.float32, copy=False)
    ref_value = ref(S) if callable(ref) else abs(ref)
    return power_to_db(np.square(S), ref=ref_value**2, amin=amin**2, top_db=top_db)


def db_to_power(S_db: np.ndarray, *, ref: float = 1.0) -> np.ndarray:
    """Inverse of :func:`power_to_db` (without clipping): ``ref * 10 ** (S_db / 10)``.

    Examples
    --------
    >>> np.round(db_to_power(np.array([0.0, -30.0])), 6)
    array([1.   , 0.001], dtype=float32)
    """
    return (ref * np.power(np.float32(10.0), np.asarray(S_db, np.float32) * 0.1)).astype(np.float32)


def clip_db(S_db: np.ndarray, top_db: float | None) -> np.ndarray:
    """Clip dB values at ``max - top_db`` per clip (max over the last two axes), in place.

    ``power_to_db(S, top_db=t)`` is ``clip_db(power_to_db(S, top_db=None), t)`` for one clip;
    for a batch ``(..., n, frames)`` each clip is clipped at its own maximum. ``None``: no
    clipping (frame-local dB).

    Examples
    --------
    >>> clip_db(np.array([[0.0, -50.0, -90.0]], np.float32), 60.0)
    array([[  0., -50., -60.]], dtype=float32)
    """
    if top_db is None:
        return S_db
    if top_db < 0:
        raise ValueError(f"top_db: must be >= 0, got {top_db}")
    m = S_db.max(axis=(-2, -1), keepdims=True)
    np.maximum(S_db, m - np.float32(top_db), out=S_db)
    return S_db


_DB = np.float32(10.0 / np.log(10.0))


def to_db(S: np.ndarray, amin: float) -> np.ndarray:
    """``10 log10(max(amin, S))`` in float32, as ``10/ln 10 * ln`` (numpy's float32 ``log`` is
    vectorised, ``log10`` is not; within 1 ulp of ``librosa.power_to_db`` with ``ref=1``).

    Examples
    --------
    >>> np.round(to_db(np.array([1.0, 1e-3, 0.0], np.float32), 1e-10), 3)
    array([   0.,  -30., -100.], dtype=float32)
    """
    out = np.maximum(S, np.float32(amin))
    np.log(out, out=out)
    out *= _DB
    return out

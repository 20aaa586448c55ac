"""Cepstral features: MFCC (librosa); GFCC, BFCC, LPCC, PNCC (spafe / published
definitions) and the real cepstrum.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import WindowSpec, power_to_db
from .filters import dct_matrix
from .spectral import melspectrogram

__all__ = ["mfcc", "clip_db"]


def clip_db(S_db: np.ndarray, top_db: float | None) -> np.ndarray:
    """Clip dB values at ``max - top_db`` per clip (max over the last two axes), in place."""
    if top_db is None:
        return S_db
    if top_db < 0:
        raise ValueError(f"top_db: must be >= 0, got {top_db}")
    m = S_db.max(axis=(-2, -1), keepdims=True)
    np.maximum(S_db, m - np.float32(top_db), out=S_db)
    return S_db


def mfcc(
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_mfcc: int = 20,
    dct_type: int = 2,
    norm: str | None = "ortho",
    lifter: float = 0.0,
    top_db: float | None = 80.0,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, float32 ``(..., n_mfcc, n_frames)``.

    Reference: ``librosa.feature.mfcc``: ``dct(power_to_db(melspectrogram(y)), type=2,
    norm="ortho")[:n_mfcc]`` with 128 Slaney mel bands of the power spectrogram, ``ref=1``,
    ``amin=1e-10`` (silence gives finite values) and ``top_db=80``. ``S``, when given, is a
    log-power mel spectrogram (as in librosa). ``lifter > 0`` applies librosa's sinusoidal
    liftering.

    Differs from librosa: ``top_db`` is exposed (librosa fixes it at 80). With batched input
    the ``top_db`` clipping uses each clip's own maximum (librosa uses the maximum over the
    whole batch), so a batch gives the same as one clip at a time. ``top_db=None`` makes
    every frame independent of the rest of the clip (what the pipeline recipe uses).

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> mfcc(y, sr=22050).shape
    (20, 44)
    """
    if S is None:
        if y is None:
            raise ValueError("either y or S must be given")
        S = melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                           win_length=win_length, window=window, center=center,
                           pad_mode=pad_mode, power=power, n_mels=n_mels, fmin=fmin, fmax=fmax,
                           htk=htk)
        S = clip_db(power_to_db(S, top_db=None), top_db)
    S = np.asarray(S, dtype=np.float32)
    if n_mfcc <= 0 or n_mfcc > S.shape[-2]:
        raise ValueError(f"n_mfcc: must be in 1..n_mels={S.shape[-2]}, got {n_mfcc}")
    if dct_type == 2 and norm == "ortho":
        return np.matmul(dct_matrix(n_mfcc, S.shape[-2], float(lifter)), S)
    M = scipy.fft.dct(S, axis=-2, type=dct_type, norm=norm)[..., :n_mfcc, :]
    if lifter > 0:
        li = np.sin(np.pi * np.arange(1, 1 + n_mfcc) / lifter)[:, None]
        M *= 1 + (lifter / 2) * li
    return M.astype(np.float32)

"""The real cepstrum of STFT frames (MATLAB ``rceps`` per frame): function and recipe feature.

MFCC is in :mod:`audiopipe.features.mel`; the speech cepstra (GFCC, BFCC, LPCC, PNCC) are in
:mod:`~audiopipe.features.speech`, :mod:`~audiopipe.features.lpc` and
:mod:`~audiopipe.features.pncc`.
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import scipy.fft

from .block import Block
from .extractor import Extractor
from .frontend import StftArgs, spectrogram_of
from .registry import Param, feature, optional, pos_int, pos_num

__all__ = ["real_cepstrum"]


@feature("real_cepstrum", dims=lambda p, sr, n_fft: p["n_ceps"] or n_fft // 2 + 1, params={
    "n_ceps": Param(None, optional(pos_int), "quefrencies kept (default 1 + n_fft//2)"),
    "amin": Param(1e-10, pos_num, "floor of |X| before the log")},
    doc="Real cepstrum Re(IFFT(log max(|X|, amin))) of each shared STFT frame (MATLAB rceps).")
def _real_cepstrum(p: dict, ex: Extractor):
    n_fft = ex.n_fft
    n = p["n_ceps"] or n_fft // 2 + 1
    if n > n_fft // 2 + 1:
        raise ValueError(f"n_ceps={n} must be <= 1 + n_fft // 2 = {n_fft // 2 + 1}")
    amin = np.float32(p["amin"])
    if 8 * n > n_fft // 2 + 1:  # the general case: a full inverse FFT per frame
        def full(b: Block) -> np.ndarray:
            c = scipy.fft.irfft(np.log(np.maximum(b.mag_fm, amin)), n=n_fft, axis=-1)[:, :n]
            return c.T.astype(np.float32, copy=False)

        return full
    # a few quefrencies: the irfft of a real, even log spectrum is a cosine sum (DCT-I),
    # c[q] = sum_k w_k / N log|X_k| cos(2 pi k q / N), w = 1 at DC and Nyquist, else 2;
    # one (k, freq) @ (freq, n) product instead of a full inverse FFT per frame
    kq = np.outer(np.arange(n_fft // 2 + 1), np.arange(n)) % n_fft
    wk = np.full(n_fft // 2 + 1, 2.0 / n_fft)
    wk[0] = wk[-1] = 1.0 / n_fft
    if n_fft % 2:
        wk[-1] = 2.0 / n_fft
    C = np.ascontiguousarray((wk[:, None] * np.cos(2 * np.pi / n_fft * kq)).astype(np.float32))
    C.setflags(write=False)
    return lambda b: np.ascontiguousarray((np.log(np.maximum(b.mag_fm, amin)) @ C).T)


def real_cepstrum(
    *,
    y: np.ndarray | None = None,
    S: np.ndarray | None = None,
    n_ceps: int | None = None,
    amin: float = 1e-10,
    **stft: Unpack[StftArgs],
) -> np.ndarray:
    """Real cepstrum per frame, ``Re(IFFT(log max(|FFT x|, amin)))``, float32.

    As MATLAB's ``rceps`` applied to each STFT frame (librosa framing), with an explicit
    floor ``amin`` on the magnitude so silence gives finite values. Returns quefrencies
    ``0 .. n_ceps - 1`` (default ``1 + n_fft // 2``, all distinct ones: the real cepstrum
    is even), shape ``(..., n_ceps, n_frames)``. ``S``: a magnitude spectrogram; ``**stft``
    as :func:`~audiopipe.features.spectrogram`.
    A pulse train of period P samples has cepstral peaks at quefrency P.

    Examples
    --------
    >>> real_cepstrum(y=np.zeros(4096, np.float32), n_ceps=30).shape
    (30, 9)
    """
    M, n_fft = spectrogram_of(y=y, S=S, power=1.0, stft=stft, func="real_cepstrum")
    n_ceps = n_fft // 2 + 1 if n_ceps is None else int(n_ceps)
    logm = np.log(np.maximum(M, np.float32(amin)))
    c = scipy.fft.irfft(logm, n=n_fft, axis=-2)[..., :n_ceps, :]
    return c.astype(np.float32, copy=False)

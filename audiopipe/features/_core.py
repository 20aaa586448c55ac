"""Input checking, windows, framing, STFT / inverse STFT and frame normalisation.

Everything here follows librosa 0.11 (``librosa.stft``, ``librosa.istft``,
``librosa.util.frame``, ``librosa.util.normalize``) so that results can be checked against
it; the differences are listed in each docstring. All outputs are float32 / complex64.
dB conversions are in :mod:`audiopipe.features.db`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft

__all__ = [
    "as_audio",
    "get_window",
    "pad_center",
    "frame",
    "pad_signal",
    "n_frames_for",
    "stft",
    "istft",
    "fft_frequencies",
    "normalize_frames",
    "keywords",
    "WindowSpec",
]

WindowSpec = str | tuple | float | Callable[..., Any] | np.ndarray

try:  # pocketfft's r2c writes into a given array; scipy.fft.rfft always allocates its output
    from scipy.fft._pocketfft.pypocketfft import r2c as _pocketfft_r2c

    _pocketfft_r2c(np.zeros((1, 4), np.float32), (1,), True, 0, np.empty((1, 3), np.complex64), 1)
except Exception:  # noqa: BLE001 - private API: any change means "use the public one"
    _pocketfft_r2c = None


def rfft_rows_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=-1)`` of a C-contiguous float32 ``(k, n)`` block written into
    ``out`` (complex64, ``(k, n//2 + 1)``), same values bit for bit.

    A fresh output array per block costs page faults comparable to a third of the FFT
    itself, so the hot loops reuse one; falls back to ``scipy.fft.rfft`` + copy if scipy's
    internal pocketfft binding is not there.
    """
    if _pocketfft_r2c is not None and out.flags.c_contiguous:
        return _pocketfft_r2c(x, (x.ndim - 1,), True, 0, out, 1)
    out[...] = scipy.fft.rfft(x, axis=-1)
    return out


#: frames processed per block in the hot loops (window → FFT → power → filter banks):
#: 128 frames of a 2048-point FFT keep the working set in L2 cache.
BLOCK_FRAMES = 128


def as_audio(y: Any, *, name: str = "y") -> np.ndarray:
    """Validate an audio array and return it as C-contiguous float32.

    Parameters
    ----------
    y : array_like, shape (..., n_samples)
        float32/float64 samples, or integer PCM: int16 is scaled by 1/32768 and int32 by
        1/2**31 (as ``soundfile`` reads them). Leading dimensions are batch dimensions.
    name : str
        Name used in error messages.

    Returns
    -------
    np.ndarray, float32, shape (..., n_samples)

    Raises
    ------
    ValueError
        for 0-d or empty input, non-finite samples, complex or unsupported dtypes.

    Examples
    --------
    >>> as_audio(np.array([0, 16384, -32768], dtype=np.int16))
    array([ 0. ,  0.5, -1. ], dtype=float32)
    """
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{name}: audio must have at least one dimension, got a scalar")
    if y.shape[-1] == 0:
        raise ValueError(f"{name}: audio is empty (shape {y.shape})")
    kind = y.dtype.kind
    if kind == "i":
        scale = np.float32(1.0 / 2 ** (8 * y.dtype.itemsize - 1))
        return np.ascontiguousarray(y, dtype=np.float32) * scale
    if kind == "u" and y.dtype.itemsize == 1:  # 8-bit WAV is unsigned, centred on 128
        return (np.ascontiguousarray(y, dtype=np.float32) - 128.0) * np.float32(1 / 128)
    if kind != "f":
        raise ValueError(f"{name}: audio must be float or integer PCM, got dtype {y.dtype}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    # one float64 sum is finite iff every sample is (|samples| < 1e300): no boolean copy
    if not np.isfinite(np.sum(y, dtype=np.float64)) and not np.isfinite(y).all():
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    return y


_COSINE_WINDOWS = {
    "hann": (0.5, 0.5),
    "hanning": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.50, 0.08),
}


def get_window(window: WindowSpec, win_length: int) -> np.ndarray:
    """Periodic ("fftbins") analysis window of ``win_length`` samples, float64.

    Same as ``librosa.filters.get_window(window, win_length, fftbins=True)``: a string or
    tuple goes to ``scipy.signal.get_window``, a callable is called with the length, an
    array is used as given (its length must match).

    Examples
    --------
    >>> get_window("hann", 4)
    array([0. , 0.5, 1. , 0.5])
    """
    if callable(window):
        return np.asarray(window(win_length), dtype=np.float64)
    if isinstance(window, str) and window in _COSINE_WINDOWS:
        # generalised cosine windows computed here: scipy.signal takes seconds to import
        n = np.arange(win_length) * (2 * np.pi / win_length)  # periodic ("fftbins")
        return sum(((-1) ** i) * c * np.cos(i * n) for i, c in enumerate(_COSINE_WINDOWS[window]))
    if isinstance(window, str) and window in ("boxcar", "rect", "rectangular", "ones"):
        return np.ones(win_length)
    if isinstance(window, str | tuple) or np.isscalar(window):
        import scipy.signal

        return scipy.signal.get_window(window, win_length, fftbins=True).astype(np.float64)
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 1 or len(w) != win_length:
        raise ValueError(f"window: array of length {len(w)} does not match win_length={win_length}")
    return w


def pad_center(data: np.ndarray, *, size: int) -> np.ndarray:
    """Zero-pad a 1-D array on both sides to ``size`` (as ``librosa.util.pad_center``)."""
    n = data.shape[-1]
    lpad = (size - n) // 2
    if lpad < 0:
        raise ValueError(f"target size ({size}) must be at least input size ({n})")
    return np.pad(data, (lpad, size - n - lpad))


def frame(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Frame a signal without copying, librosa layout ``(..., frame_length, n_frames)``.

    Same as ``librosa.util.frame(y, frame_length=..., hop_length=..., axis=-1)``: frames start
    at multiples of ``hop_length``; a trailing partial frame is dropped.

    Examples
    --------
    >>> frame(np.arange(6.0), frame_length=4, hop_length=2)
    array([[0., 2.],
           [1., 3.],
           [2., 4.],
           [3., 5.]])
    """
    y = np.asarray(y)
    if y.shape[-1] < frame_length:
        raise ValueError(f"input is too short (n={y.shape[-1]}) for frame_length={frame_length}")
    rows = _frame_rows(y, frame_length, hop_length)
    return np.swapaxes(rows, -1, -2)


def _frame_rows(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frames as rows ``(..., n_frames, frame_length)``: a read-only strided view."""
    n = 1 + (y.shape[-1] - frame_length) // hop_length
    st = y.strides[-1]
    return np.lib.stride_tricks.as_strided(
        y,
        shape=y.shape[:-1] + (n, frame_length),
        strides=y.strides[:-1] + (hop_length * st, st),
        writeable=False,
    )


def n_frames_for(n_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Number of STFT frames librosa produces for ``n_samples`` samples."""
    if center:
        return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length
    if n_samples < n_fft:
        raise ValueError(
            f"n_fft={n_fft} is too large for uncentered analysis of {n_samples} samples"
        )
    return 1 + (n_samples - n_fft) // hop_length


def pad_signal(y: np.ndarray, n_fft: int, center: bool, pad_mode: str = "constant") -> np.ndarray:
    """Centre-pad by ``n_fft // 2`` on both sides (``pad_mode`` as ``np.pad``), or check length."""
    if center:
        pw = [(0, 0)] * (y.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        return np.pad(y, pw, mode=pad_mode)
    if y.shape[-1] < n_fft:
        raise ValueError(
            f"n_fft={n_fft} is too large for uncentered analysis of {y.shape[-1]} samples"
        )
    return y


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def fft_window(window: WindowSpec, n_fft: int, win_length: int | None) -> np.ndarray:
    """The analysis window padded to ``n_fft`` (float64), as librosa builds it."""
    win_length = n_fft if win_length is None else _check_positive_int("win_length", win_length)
    if win_length > n_fft:
        raise ValueError(f"win_length={win_length} must be <= n_fft={n_fft}")
    return pad_center(get_window(window, win_length), size=n_fft)


def stft_input(y: Any, n_fft: int, hop_length: int | None, win_length: int | None,
               window: WindowSpec, center: bool, pad_mode: str
               ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """What every STFT starts from: ``(padded float32 signal, float32 window padded to
    n_fft, n_fft, hop_length)``, checked, with librosa's defaults (``win_length = n_fft``,
    ``hop_length = win_length // 4``)."""
    y = as_audio(y)
    n_fft = _check_positive_int("n_fft", n_fft)
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else hop_length
    hop_length = _check_positive_int("hop_length", hop_length)
    win = fft_window(window, n_fft, win_length).astype(np.float32)
    return pad_signal(y, n_fft, center, pad_mode), win, n_fft, hop_length


def stft(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Short-time Fourier transform, complex64, shape ``(..., 1 + n_fft // 2, n_frames)``.

    Follows ``librosa.stft`` (0.11): periodic window of ``win_length`` zero-padded to
    ``n_fft``, default ``hop_length = win_length // 4``, centred frames padded with zeros
    (``pad_mode="constant"``), frame ``t`` centred on sample ``t * hop_length``. The returned
    array has librosa's memory layout (frequency-major view of frame rows).

    Differs from librosa: the FFT runs in float32 (librosa multiplies by a float64 window,
    so its FFT runs in float64 and is rounded to complex64); values agree to ~1e-6 of the
    spectrum's peak. int16 input is accepted (scaled by 1/32768).

    Short input: with ``center=True`` any length >= 1 gives ``1 + len // hop_length`` frames
    (at least one, zero padded); with ``center=False`` fewer than ``n_fft`` samples raise
    ``ValueError``.

    Parameters
    ----------
    y : np.ndarray, shape (..., n_samples)
    n_fft, hop_length, win_length, window, center, pad_mode
        As in ``librosa.stft``.

    Examples
    --------
    >>> D = stft(np.zeros(22050, np.float32))
    >>> D.shape, D.dtype
    ((1025, 44), dtype('complex64'))
    """
    yp, win, n_fft, hop_length = stft_input(y, n_fft, hop_length, win_length, window, center,
                                            pad_mode)
    rows = _frame_rows(yp, n_fft, hop_length)  # (..., T, n_fft)
    out = np.empty(rows.shape[:-1] + (n_fft // 2 + 1,), dtype=np.complex64)
    T = rows.shape[-2]
    buf = np.empty(rows.shape[:-2] + (min(BLOCK_FRAMES, T), n_fft), np.float32)
    for a in range(0, T, BLOCK_FRAMES):
        b = min(a + BLOCK_FRAMES, T)
        x = np.multiply(rows[..., a:b, :], win, out=buf[..., : b - a, :])
        rfft_rows_into(x, out[..., a:b, :])
    return np.swapaxes(out, -1, -2)


def istft(
    stft_matrix: np.ndarray,
    *,
    hop_length: int | None = None,
    win_length: int | None = None,
    n_fft: int | None = None,
    window: WindowSpec = "hann",
    center: bool = True,
    length: int | None = None,
) -> np.ndarray:
    """Inverse STFT by weighted overlap-add, float32, as ``librosa.istft`` (0.11).

    Each frame is inverse-FFT'd, multiplied by the synthesis window, overlap-added, and the
    sum is divided by the window's sum of squares where that exceeds float32 ``tiny``. With
    ``center=True`` the first ``n_fft // 2`` samples are dropped; ``length`` trims or
    zero-pads the output to exactly that many samples (pass ``len(y)`` for a round trip).

    The overlap-add is vectorised over frames (``ceil(n_fft / hop)`` strided additions, no
    per-frame loop and no numba).

    Parameters
    ----------
    stft_matrix : np.ndarray, complex, shape (..., 1 + n_fft // 2, n_frames)
    hop_length, win_length, n_fft, window, center, length
        As in ``librosa.istft``.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    >>> np.allclose(istft(stft(y), length=len(y)), y, atol=1e-5)
    True
    """
    S = np.asarray(stft_matrix)
    if n_fft is None:
        n_fft = 2 * (S.shape[-2] - 1)
    if win_length is None:
        win_length = n_fft
    if hop_length is None:
        hop_length = int(win_length // 4)
    hop_length = _check_positive_int("hop_length", hop_length)
    if S.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"stft_matrix has {S.shape[-2]} bins, expected {n_fft // 2 + 1}")
    win64 = fft_window(window, n_fft, win_length)
    win = win64.astype(np.float32)
    n_frames = S.shape[-1]
    if length:
        padded = length + 2 * (n_fft // 2) if center else length
        n_frames = min(n_frames, int(np.ceil(padded / hop_length)))
    S = S[..., :n_frames]
    lead = S.shape[:-2]
    total = n_fft + hop_length * (n_frames - 1)
    ybuf = np.zeros(lead + (total + n_fft,), dtype=np.float32)
    for a in range(0, n_frames, BLOCK_FRAMES):
        b = min(a + BLOCK_FRAMES, n_frames)
        seg = np.swapaxes(S[..., a:b], -1, -2)  # (..., k, F)
        frames = scipy.fft.irfft(seg.astype(np.complex64, copy=False), n=n_fft, axis=-1)
        frames *= win
        _overlap_add(ybuf[..., a * hop_length :], frames, hop_length)
    ybuf = ybuf[..., :total]
    # window sum-square envelope, computed once for a single channel (float32 like librosa)
    wss = np.zeros(total + n_fft, dtype=np.float32)
    wsq = pad_center(get_window(window, win_length) ** 2, size=n_fft).astype(np.float32)
    _overlap_add(wss, np.broadcast_to(wsq, (n_frames, n_fft)), hop_length)
    wss = wss[:total]
    start = n_fft // 2 if center else 0
    if length:
        out_len = length
    else:
        out_len = total - 2 * start if center else total
    y = ybuf[..., start : start + out_len]
    wss = wss[start : start + out_len]
    if y.shape[-1] < out_len:
        y = np.concatenate([y, np.zeros(lead + (out_len - y.shape[-1],), np.float32)], axis=-1)
        wss = np.concatenate([wss, np.zeros(out_len - wss.shape[-1], np.float32)])
    y = np.array(y, dtype=np.float32)
    nz = wss > np.finfo(np.float32).tiny
    y[..., nz] /= wss[nz]
    return y


def _overlap_add(y: np.ndarray, frames: np.ndarray, hop: int) -> None:
    """``y[..., t*hop : t*hop + n] += frames[..., t, :]`` for all t, in ceil(n/hop) passes."""
    k, n = frames.shape[-2], frames.shape[-1]
    st = y.strides[-1]
    for j in range(0, n, hop):
        L = min(hop, n - j)
        view = np.lib.stride_tricks.as_strided(
            y[..., j:], shape=y.shape[:-1] + (k, L), strides=y.strides[:-1] + (hop * st, st)
        )
        view += frames[..., :, j : j + L]


def fft_frequencies(*, sr: float = 22050, n_fft: int = 2048) -> np.ndarray:
    """Centre frequencies of the rfft bins, ``linspace(0, sr/2, 1 + n_fft//2)`` (float64).

    Examples
    --------
    >>> fft_frequencies(sr=8000, n_fft=8)
    array([   0., 1000., 2000., 3000., 4000.])
    """
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def normalize_frames(X: np.ndarray, norm: float | None) -> np.ndarray:
    """``librosa.util.normalize(X, norm, axis=-2)``: columns with norm < tiny are left as is.

    Examples
    --------
    >>> normalize_frames(np.array([[3.0, 0.0], [4.0, 0.0]]), 2)
    array([[0.6, 0. ],
           [0.8, 0. ]])
    """
    if norm is None:
        return X
    if norm == np.inf:
        n = np.abs(X).max(axis=-2, keepdims=True)
    elif norm == 1:
        n = np.abs(X).sum(axis=-2, keepdims=True)
    else:
        n = (np.abs(X) ** norm).sum(axis=-2, keepdims=True) ** (1.0 / norm)
    n = np.where(n < np.finfo(X.dtype).tiny, 1.0, n).astype(X.dtype)
    return X / n


def keywords(given: dict[str, Any], defaults: dict[str, Any], func: str, what: str
             ) -> dict[str, Any]:
    """``defaults`` updated with ``given`` (a function's ``**kwargs`` for a front end);
    a name not in ``defaults`` raises ``TypeError`` naming ``func`` and the accepted names.

    Examples
    --------
    >>> keywords({"n_fft": 512}, {"n_fft": 2048, "center": True}, "f", "STFT")
    {'n_fft': 512, 'center': True}
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"{func}() got unexpected keyword argument(s) {unknown}; the {what} "
                        f"keywords are {list(defaults)}")
    return {**defaults, **given}

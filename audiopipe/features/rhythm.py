"""Rhythm features (librosa definitions): onset strength (log-mel spectral flux) and the
autocorrelation tempogram; functions, kernels and recipe features.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import WindowSpec, get_window, normalize_frames
from .block import Block, Computer
from .db import clip_db, power_to_db
from .extractor import Extractor
from .frontend import via_recipe
from .mel import block_db, db_floor, mel_bank_key, melspectrogram
from .registry import Param, boolean, feature, nonneg_num, one_of, optional, pos_int, pos_num

__all__ = ["onset_strength", "tempogram", "onset_from_db", "tempogram_frames"]


def onset_from_db(S_db: np.ndarray, prev: np.ndarray | None, t0: int, lag: int, max_size: int,
                  n_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal onset strength of the dB frames ``S_db`` ``(..., n_mels, k)`` starting at
    absolute frame ``t0``, given ``prev`` = the ``min(t0, lag + n_pad)`` frames before them.

    ``env[t] = mean_f max(0, S[t - n_pad] - ref[t - n_pad - lag])`` for ``t >= lag + n_pad``
    and 0 before (librosa's zero padding). Returns ``(env (..., 1, k), prev for the next
    block)``.
    """
    d = lag + n_pad
    full = S_db if prev is None or not prev.shape[-1] else np.concatenate([prev, S_db], axis=-1)
    base = t0 - (full.shape[-1] - S_db.shape[-1])  # absolute index of full[..., 0]
    if max_size == 1:
        ref = full
    else:
        import scipy.ndimage

        ref = scipy.ndimage.maximum_filter1d(full, max_size, axis=-2)
    k = S_db.shape[-1]
    out = np.zeros(S_db.shape[:-2] + (1, k), np.float32)
    first = max(d, t0)  # first absolute frame with a non-zero definition
    if first < t0 + k:
        a = full[..., first - n_pad - base : t0 + k - n_pad - base]
        b = ref[..., first - n_pad - lag - base : t0 + k - n_pad - lag - base]
        out[..., 0, first - t0 :] = np.maximum(a - b, np.float32(0.0)).mean(axis=-2)
    return out, full[..., max(full.shape[-1] - d, 0) :]


def onset_strength(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    lag: int = 1,
    max_size: int = 1,
    detrend: bool = False,
    center: bool = True,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Onset strength envelope ``(..., n_frames)``; ``librosa.onset.onset_strength``.

    Spectral flux of the log-power mel spectrogram (``power_to_db``, 128 bands): the mean
    over bands of ``max(0, S[t] - ref[t - lag])`` (``ref`` = S, or its ``max_size``-band
    maximum filter), shifted right by ``lag + n_fft // (2 hop)`` frames with zeros when
    ``center`` so the envelope lines up with the STFT frames; optional ``detrend`` high-pass
    ``(1 - z^-1) / (1 - 0.99 z^-1)``. ``S``: a log-power (dB) spectrogram used as is.
    ``top_db`` (librosa: 80, relative to the whole clip's maximum) is exposed; ``None`` makes
    the envelope frame-local (the recipe default). librosa's multi-channel variant is not
    provided.

    Examples
    --------
    >>> onset_strength(y=np.random.default_rng(0).standard_normal(22050), sr=22050).shape
    (44,)
    """
    if lag < 1 or max_size < 1:
        raise ValueError(f"lag and max_size must be >= 1, got {lag}, {max_size}")
    stft = {"n_fft": n_fft, "hop_length": hop_length}
    if S is None and center:  # (center only shifts the envelope; the mel frames are centred)
        out = via_recipe("onset_strength", {
            "n_mels": n_mels, "fmin": float(fmin), "fmax": fmax, "lag": lag,
            "max_size": max_size, "detrend": bool(detrend), "top_db": top_db},
            y=y, sr=sr, stft=stft)
        if out is not None:
            return out[..., 0, :]
    if S is None:
        M = melspectrogram(y=y, sr=sr, n_mels=n_mels, fmin=fmin, fmax=fmax, **stft)
        S = clip_db(power_to_db(M, top_db=None), top_db)
    S = np.asarray(S, np.float32)
    n_pad = n_fft // (2 * hop_length) if center else 0
    env, _ = onset_from_db(S, None, 0, lag, max_size, n_pad)
    if detrend:
        from scipy.signal import lfilter

        env = lfilter([1.0, -1.0], [1.0, -0.99], env, axis=-1).astype(np.float32)
    return env[..., 0, :]


def tempogram_frames(env_padded: np.ndarray, win: np.ndarray, n: int, norm: float | None
                     ) -> np.ndarray:
    """Autocorrelation tempogram of windows ``env_padded[t : t + win_length]``, t < n."""
    L = len(win)
    st = env_padded.strides[-1]
    fr = np.lib.stride_tricks.as_strided(
        env_padded, shape=env_padded.shape[:-1] + (n, L),
        strides=env_padded.strides[:-1] + (st, st), writeable=False)
    x = fr * win
    n_pad = scipy.fft.next_fast_len(2 * L - 1, real=True)
    X = scipy.fft.rfft(x, n=n_pad, axis=-1)
    ac = scipy.fft.irfft(X.real**2 + X.imag**2, n=n_pad, axis=-1)[..., :L]
    return normalize_frames(np.swapaxes(ac, -1, -2).astype(np.float32), norm)


def tempogram(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    onset_envelope: np.ndarray | None = None,
    hop_length: int = 512,
    win_length: int = 384,
    center: bool = True,
    window: WindowSpec = "hann",
    norm: float | None = np.inf,
) -> np.ndarray:
    """Autocorrelation tempogram ``(..., win_length, n_frames)``; ``librosa.feature.tempogram``.

    The windowed (Hann, ``win_length`` frames) autocorrelation of the onset strength
    envelope around each frame, each column normalised to unit ``norm``. Centred windows
    extend the envelope by ``win_length // 2`` frames with a linear ramp to zero at both
    ends (librosa's ``linear_ramp`` padding). Row ``k`` is lag ``k`` frames (tempo
    ``60 sr / (hop_length k)`` BPM).

    Examples
    --------
    >>> tempogram(y=np.random.default_rng(0).standard_normal(22050), sr=22050).shape
    (384, 44)
    """
    if win_length < 1:
        raise ValueError(f"win_length: must be >= 1, got {win_length}")
    if onset_envelope is None:
        if y is None:
            raise ValueError("either y or onset_envelope must be given")
        onset_envelope = onset_strength(y=y, sr=sr, hop_length=hop_length)
    env = np.asarray(onset_envelope, np.float32)
    n = env.shape[-1]
    if center:
        pad = [(0, 0)] * (env.ndim - 1) + [(win_length // 2, win_length // 2)]
        env = np.pad(env, pad, mode="linear_ramp", end_values=0)
    win = get_window(window, win_length).astype(np.float32)
    n_out = n if center else env.shape[-1] - win_length + 1
    if n_out < 1:
        raise ValueError(f"envelope of {n} frames is shorter than win_length={win_length} "
                         "(use center=True)")
    return tempogram_frames(np.ascontiguousarray(env), win, n_out, norm)


# --------------------------------------------------------------------------------------
# recipe features

ONSET_PARAMS = {
    "n_mels": Param(128, pos_int, "mel bands of the log-mel spectrogram"),
    "fmin": Param(0.0, nonneg_num, "lowest mel edge"),
    "fmax": Param(None, optional(pos_num), "highest mel edge (default sr/2)"),
    "lag": Param(1, pos_int, "frames between compared spectra"),
    "max_size": Param(1, pos_int, "max filter across bands for the reference"),
    "detrend": Param(False, boolean, "high-pass the envelope (librosa detrend)"),
    "top_db": Param(None, optional(nonneg_num),
                    "librosa: 80 dB below the whole-clip max; null = frame-local"),
}


def _onset_step(p: dict, ex: Extractor):
    key = mel_bank_key(ex, {"n_mels": p["n_mels"], "fmin": p["fmin"], "fmax": p["fmax"],
                            "htk": False, "norm": "slaney", "power": 2.0})
    lag, max_size, top_db = p["lag"], p["max_size"], p["top_db"]
    n_pad = ex.n_fft // (2 * ex.hop_length) if ex.center else 0
    needs = (("bankmax", key),) if top_db is not None else ()

    def env_of(b: Block, st: dict, g: dict | None) -> np.ndarray:
        db = block_db(b, key, 1e-10)
        if top_db is not None:
            if g is None:
                return db  # deferred: the caller's finish clips and differentiates
            db = np.maximum(db, db_floor(g, key, 1e-10, top_db))
        return env_from_db(db, st, b.t0)

    def env_from_db(db: np.ndarray, st: dict, t0: int) -> np.ndarray:
        env, st["prev"] = onset_from_db(db, st.get("prev"), t0, lag, max_size, n_pad)
        if p["detrend"]:
            from scipy.signal import lfilter  # lazy: scipy.signal is slow to import

            zi = st.get("zi", np.zeros(1))
            env, st["zi"] = lfilter([1.0, -1.0], [1.0, -0.99], env[0], zi=zi)
            env = env[None, :].astype(np.float32)
        return env

    def finish_env(db: np.ndarray) -> np.ndarray:
        return env_from_db(clip_db(db, top_db), {}, 0)

    env_of.finish_env = finish_env
    return env_of, needs


@feature("onset_strength", dims=1, params=dict(ONSET_PARAMS),
         doc="Onset strength envelope: log-mel spectral flux (librosa.onset.onset_strength).")
def _onset(p: dict, ex: Extractor) -> Computer:
    env_of, needs = _onset_step(p, ex)

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            return {"_onset_db": env_of(b, st, g)}
        return {"onset_strength": env_of(b, st, g)}

    def finish(res: dict) -> dict:
        return {"onset_strength": env_of.finish_env(res.pop("_onset_db"))}

    return Computer(step, needs=needs, finish=finish)


class _TempogramLookahead:
    """Tempogram of a streamed onset envelope: holds win_length//2 frames of look-ahead."""

    def __init__(self, win: np.ndarray, norm) -> None:
        self.win, self.norm = win, norm
        self.L = len(win)
        self.h = self.L // 2
        self.buf: np.ndarray | None = None  # padded envelope from padded index x0
        self.x0 = 0
        self.next = 0  # next output frame
        self.n = 0  # envelope frames received

    def _emit(self, upto: int) -> np.ndarray:
        if upto <= self.next:
            return np.zeros((self.L, 0), np.float32)
        seg = self.buf[self.next - self.x0 : upto - self.x0 + self.L - 1]
        out = tempogram_frames(np.ascontiguousarray(seg), self.win, upto - self.next, self.norm)
        self.next = upto
        if self.next > self.x0:
            self.buf = self.buf[self.next - self.x0 :].copy()
            self.x0 = self.next
        return out

    def push(self, d: dict) -> dict:
        env = d["_tempogram_env"][0].astype(np.float32)
        if not len(env):
            return {"tempogram": np.zeros((self.L, 0), np.float32)}
        if self.buf is None:
            left = np.pad(env[:1], (self.h, 0), mode="linear_ramp", end_values=0)[: self.h]
            self.buf = np.concatenate([left, env])
        else:
            self.buf = np.concatenate([self.buf, env])
        self.n += len(env)
        avail = self.x0 + len(self.buf) - self.L + 1  # frames whose window is complete
        return {"tempogram": self._emit(min(avail, self.n))}

    def flush(self) -> dict:
        right = np.pad(self.buf[-1:], (0, self.h), mode="linear_ramp", end_values=0)[1:]
        self.buf = np.concatenate([self.buf, right, np.zeros(self.L, np.float32)])
        return {"tempogram": self._emit(self.n)}


@feature("tempogram", dims="win_length", params={
    "win_length": Param(384, pos_int, "onset frames per autocorrelation window"),
    "window": Param("hann", lambda v: None if isinstance(v, str) else "must be a window name",
                    "autocorrelation window"),
    "norm": Param("inf", optional(one_of("inf", 1, 2)), "per-frame normalisation"),
    **ONSET_PARAMS},
    doc="Autocorrelation tempogram of the onset envelope (librosa.feature.tempogram); holds "
        "win_length//2 frames of look-ahead when streaming.")
def _tempogram(p: dict, ex: Extractor) -> Computer:
    env_of, needs = _onset_step(p, ex)
    win = get_window(p["window"], p["win_length"]).astype(np.float32)
    win.setflags(write=False)
    norm = np.inf if p["norm"] == "inf" else p["norm"]

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            return {"_tempogram_db": env_of(b, st, g)}
        return {"_tempogram_env": env_of(b, st, g)}

    def finish(res: dict) -> dict:
        return {"_tempogram_env": env_of.finish_env(res.pop("_tempogram_db"))}

    return Computer(step, needs=needs, lookahead=lambda: _TempogramLookahead(win, norm),
                    step_names=("_tempogram_env",), finish=finish)

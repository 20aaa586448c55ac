"""Mel spectrogram and MFCC (librosa definitions): functions and recipe features.

Also the mel-bank and dB helpers other log-mel features share (onset strength).
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import scipy.fft

from .block import Block, Computer
from .db import clip_db, power_to_db, to_db
from .extractor import Extractor
from .filters import bank_matmul, dct_matrix, mel_filterbank
from .frontend import NOT_A_RECIPE_NORM, StftArgs, norm_name, spectral, stft_args, via_recipe
from .registry import Param, boolean, feature, nonneg_num, one_of, optional, pos_int, pos_num

__all__ = ["melspectrogram", "mfcc", "MEL_PARAMS", "DB_PARAMS", "mel_bank_key", "block_db",
           "db_floor"]

MEL_PARAMS = {
    "n_mels": Param(128, pos_int, "mel bands (librosa default 128)"),
    "fmin": Param(0.0, nonneg_num, "lowest band edge, Hz"),
    "fmax": Param(None, optional(pos_num), "highest band edge, Hz (default sr/2)"),
    "htk": Param(False, boolean, "HTK mel formula instead of Slaney's"),
    "norm": Param("slaney", optional(one_of("slaney", 1, 2, "inf")),
                  "band normalisation: slaney (area), 1, 2, inf or null"),
    "power": Param(2.0, pos_num, "exponent of |STFT| fed to the bank (2 = power)"),
}
DB_PARAMS = {
    "top_db": Param(None, optional(nonneg_num),
                    "clip dB at (whole-clip max - top_db); null (default) = frame-local, "
                    "librosa's functions use 80"),
    "amin": Param(1e-10, pos_num, "power floor before log (silence -> 10 log10(amin) dB)"),
}


def mel_bank_key(ex: Extractor, p: dict) -> tuple:
    """Register the recipe's mel bank with the extractor (shared between features)."""
    fmax = p["fmax"] if p["fmax"] is not None else ex.sr / 2
    norm = p["norm"]
    key = ("mel", p["n_mels"], float(p["fmin"]), float(fmax), p["htk"], norm, float(p["power"]))
    bank = mel_filterbank(sr=ex.sr, n_fft=ex.n_fft, n_mels=p["n_mels"], fmin=p["fmin"],
                          fmax=fmax, htk=p["htk"], norm=np.inf if norm == "inf" else norm)
    return ex.register_bank(key, bank, power=p["power"])  # (the bank is cached)


def db_floor(g: dict, key: tuple, amin: float, top_db: float) -> np.float32:
    """``max(dB over the clip) - top_db`` from the first pass's maximum bank value."""
    m = to_db(np.array([g[("bankmax", key)]], np.float32), amin)[0]
    return m - np.float32(top_db)


def block_db(b: Block, key: tuple, amin: float) -> np.ndarray:
    """The block's dB mel spectrum (computed once per block for all features using it)."""
    return b.get(("db", key, amin), lambda: to_db(b.mel(key), amin))


def _log_mel(key: tuple, amin: float, top_db: float | None, name: str, then=None) -> Computer:
    """A computer of ``then(dB mel)`` with librosa's whole-clip ``top_db`` clipping (from the
    first pass's maximum when streaming, at the end of a whole clip otherwise)."""
    then = then or (lambda db: db)

    def step(b: Block, st: dict, g: dict | None) -> dict:
        db = block_db(b, key, amin)
        if top_db is not None:
            if g is None:
                return {f"_{name}_db": db}
            db = np.maximum(db, db_floor(g, key, amin, top_db))
        return {name: then(db)}

    def finish(res: dict) -> dict:
        return {name: then(clip_db(res.pop(f"_{name}_db"), top_db))}

    needs = (("bankmax", key),) if top_db is not None else ()
    return Computer(step, needs=needs, finish=finish)


@feature("melspectrogram", dims="n_mels", params={
    **MEL_PARAMS, "log": Param(False, boolean, "return power_to_db of the mel spectrogram"),
    **DB_PARAMS},
    doc="Mel spectrogram (librosa.feature.melspectrogram): Slaney mel bank @ |STFT|^power; "
        "with log: true, 10 log10(max(amin, S)) (librosa.power_to_db with ref=1).")
def _melspectrogram(p: dict, ex: Extractor):
    key = mel_bank_key(ex, p)
    if not p["log"]:
        return lambda b: b.mel(key)
    return _log_mel(key, p["amin"], p["top_db"], "melspectrogram")


def melspectrogram(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
    **stft: Unpack[StftArgs],
) -> np.ndarray:
    """Mel spectrogram ``mel_filterbank @ |stft| ** power``, float32 ``(..., n_mels, n_frames)``.

    Reference: ``librosa.feature.melspectrogram`` (Slaney mel, ``power=2``, 128 bands,
    ``fmax = sr/2``). ``S``, when given, is a magnitude/power spectrogram used as is.
    ``**stft``: ``n_fft``, ``hop_length``, ``win_length``, ``window``, ``center``,
    ``pad_mode`` (librosa's names and defaults, :data:`~audiopipe.features.frontend.STFT_DEFAULTS`).
    For log-mel apply :func:`power_to_db` (or use the recipe's ``log: true``).

    Examples
    --------
    >>> melspectrogram(y=np.zeros(22050, np.float32), sr=22050).shape
    (128, 44)
    """
    params = None
    if norm_name(norm) is not NOT_A_RECIPE_NORM:
        params = {"n_mels": n_mels, "fmin": float(fmin), "fmax": fmax, "htk": bool(htk),
                  "norm": norm_name(norm), "power": float(power)}

    def direct(S: np.ndarray, n_fft: int) -> np.ndarray:
        M = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                           norm=norm)
        return bank_matmul(M, S)

    return spectral("melspectrogram", params, direct, y=y, sr=sr, S=S, power=power, stft=stft)



def _n_mfcc_le_n_mels(p: dict) -> str | None:
    if p["n_mfcc"] > p["n_mels"]:
        return f"n_mfcc: {p['n_mfcc']} is more than n_mels ({p['n_mels']})"
    return None


@feature("mfcc", dims="n_mfcc", cross_check=_n_mfcc_le_n_mels, params={
    "n_mfcc": Param(20, pos_int, "coefficients kept"),
    "lifter": Param(0.0, nonneg_num, "sinusoidal liftering (librosa), 0 = none"),
    **MEL_PARAMS, **DB_PARAMS},
    doc="MFCC (librosa.feature.mfcc): DCT-II (ortho) of the log-power mel spectrogram. The "
        "recipe default top_db is null (frame-local); set top_db: 80 to reproduce librosa "
        "exactly.")
def _mfcc(p: dict, ex: Extractor) -> Computer:
    if p["n_mfcc"] > p["n_mels"]:
        raise ValueError(f"n_mfcc={p['n_mfcc']} must be <= n_mels={p['n_mels']}")
    D = dct_matrix(p["n_mfcc"], p["n_mels"], lifter=float(p["lifter"]))
    return _log_mel(mel_bank_key(ex, p), p["amin"], p["top_db"], "mfcc", lambda db: D @ db)


def mfcc(
    *,
    y: np.ndarray | None = None,
    sr: float = 22050,
    S: np.ndarray | None = None,
    n_mfcc: int = 20,
    dct_type: int = 2,
    norm: str | None = "ortho",
    lifter: float = 0.0,
    top_db: float | None = 80.0,
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    **stft: Unpack[StftArgs],
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, float32 ``(..., n_mfcc, n_frames)``.

    Reference: ``librosa.feature.mfcc``: ``dct(power_to_db(melspectrogram(y)), type=2,
    norm="ortho")[:n_mfcc]`` with 128 Slaney mel bands of the power spectrogram, ``ref=1``,
    ``amin=1e-10`` (silence gives finite values) and ``top_db=80``. ``S``, when given, is a
    log-power mel spectrogram (as in librosa). ``lifter > 0`` applies librosa's sinusoidal
    liftering. ``**stft``: the STFT keywords of :func:`melspectrogram`.

    Differs from librosa: ``top_db`` is exposed (librosa fixes it at 80). With batched input
    the ``top_db`` clipping uses each clip's own maximum (librosa uses the maximum over the
    whole batch), so a batch gives the same as one clip at a time. ``top_db=None`` makes
    every frame independent of the rest of the clip (what the pipeline recipe uses).

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> mfcc(y=y, sr=22050).shape
    (20, 44)
    """
    if S is None:
        stft_args(stft, "mfcc")
        if dct_type == 2 and norm == "ortho" and 0 < n_mfcc <= n_mels:
            out = via_recipe("mfcc", {"n_mfcc": n_mfcc, "lifter": float(lifter),
                                      "n_mels": n_mels, "fmin": float(fmin), "fmax": fmax,
                                      "htk": bool(htk), "norm": "slaney",
                                      "power": float(power), "top_db": top_db, "amin": 1e-10},
                             y=y, sr=sr, stft=stft)
            if out is not None:
                return out
        if y is None:
            raise ValueError("either y or S must be given")
        S = melspectrogram(y=y, sr=sr, power=power, n_mels=n_mels, fmin=fmin, fmax=fmax,
                           htk=htk, **stft)
        S = clip_db(power_to_db(S, top_db=None), top_db)
    return _cepstrum(np.asarray(S, dtype=np.float32), n_mfcc, dct_type, norm, lifter)


def _cepstrum(S: np.ndarray, n_mfcc: int, dct_type: int, norm: Any, lifter: float
              ) -> np.ndarray:
    """The first ``n_mfcc`` DCT coefficients of log-mel ``S`` along the bands, liftered."""
    if n_mfcc <= 0 or n_mfcc > S.shape[-2]:
        raise ValueError(f"n_mfcc: must be in 1..n_mels={S.shape[-2]}, got {n_mfcc}")
    if dct_type == 2 and norm == "ortho":
        return np.matmul(dct_matrix(n_mfcc, S.shape[-2], lifter=float(lifter)), S)
    M = scipy.fft.dct(S, axis=-2, type=dct_type, norm=norm)[..., :n_mfcc, :]
    if lifter > 0:
        li = np.sin(np.pi * np.arange(1, 1 + n_mfcc) / lifter)[:, None]
        M *= 1 + (lifter / 2) * li
    return M.astype(np.float32)

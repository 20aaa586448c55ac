"""Recipe specs of the features: parameters, documentation and block computers.

Each ``_make_*`` builds a :class:`~audiopipe.features.extractor.Computer` for one
Extractor: filter banks and matrices are built once here, and ``step`` only does array
arithmetic on the block's shared spectra.
"""

from __future__ import annotations

import numpy as np

from .cepstral import mfcc as _mfcc_fn
from .extractor import Block, Computer, Extractor
from .filters import dct_matrix, mel_filterbank
from .registry import (
    FeatureSpec,
    Param,
    boolean,
    nonneg_num,
    one_of,
    open_unit,
    optional,
    pos_int,
    pos_num,
    register,
)
from .spectral import (
    bandwidth_from_mag,
    centroid_from_mag,
    flatness_from_power,
    rolloff_from_mag,
)
from .temporal import frame_crossings, frame_sumsq

_ = _mfcc_fn

# ---------------------------------------------------------------------------------- helpers

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
    if key not in ex._banks:
        bank = mel_filterbank(sr=ex.sr, n_fft=ex.n_fft, n_mels=p["n_mels"], fmin=p["fmin"],
                              fmax=fmax, htk=p["htk"],
                              norm=np.inf if norm == "inf" else norm)
        ex.register_bank(key, bank, power=p["power"])
    return key


def to_db(S: np.ndarray, amin: float) -> np.ndarray:
    """``10 log10(max(amin, S))`` in float32, the same operations as ``librosa.power_to_db``."""
    out = np.log10(np.maximum(S, np.float32(amin)))
    out *= np.float32(10.0)
    return out


def db_floor(g: dict, key: tuple, amin: float, top_db: float) -> np.float32:
    """``max(dB over the clip) - top_db`` from the first pass's maximum bank value."""
    m = to_db(np.array([g[("bankmax", key)]], np.float32), amin)[0]
    return m - np.float32(top_db)


def block_db(b: Block, key: tuple, amin: float) -> np.ndarray:
    return b.get(("db", key, amin), lambda: to_db(b.mel(key), amin))


# ---------------------------------------------------------------------------------- mel / mfcc

def _make_melspectrogram(p: dict, ex: Extractor) -> Computer:
    key = mel_bank_key(ex, p)
    log, top_db, amin = p["log"], p["top_db"], p["amin"]
    needs = (("bankmax", key),) if log and top_db is not None else ()

    def step(b: Block, st: dict, g: dict) -> dict:
        if not log:
            return {"melspectrogram": b.mel(key)}
        db = block_db(b, key, amin)
        if top_db is not None:
            db = np.maximum(db, db_floor(g, key, amin, top_db))
        return {"melspectrogram": db}

    return Computer({"melspectrogram": p["n_mels"]}, step, needs)


register(FeatureSpec(
    "melspectrogram",
    {**MEL_PARAMS, "log": Param(False, boolean, "return power_to_db of the mel spectrogram"),
     **DB_PARAMS},
    "Mel spectrogram (librosa.feature.melspectrogram): Slaney mel bank @ |STFT|^power; with "
    "log: true, 10 log10(max(amin, S)) (librosa.power_to_db with ref=1).",
    lambda p, sr, n_fft: p["n_mels"],
    _make_melspectrogram,
))


def _make_mfcc(p: dict, ex: Extractor) -> Computer:
    if p["n_mfcc"] > p["n_mels"]:
        raise ValueError(f"n_mfcc={p['n_mfcc']} must be <= n_mels={p['n_mels']}")
    key = mel_bank_key(ex, p)
    D = dct_matrix(p["n_mfcc"], p["n_mels"], float(p["lifter"]))
    top_db, amin = p["top_db"], p["amin"]
    needs = (("bankmax", key),) if top_db is not None else ()

    def step(b: Block, st: dict, g: dict) -> dict:
        db = block_db(b, key, amin)
        if top_db is not None:
            db = np.maximum(db, db_floor(g, key, amin, top_db))
        return {"mfcc": D @ db}

    return Computer({"mfcc": p["n_mfcc"]}, step, needs)


register(FeatureSpec(
    "mfcc",
    {"n_mfcc": Param(20, pos_int, "coefficients kept"),
     "lifter": Param(0.0, nonneg_num, "sinusoidal liftering (librosa), 0 = none"),
     **MEL_PARAMS, **DB_PARAMS},
    "MFCC (librosa.feature.mfcc): DCT-II (ortho) of the log-power mel spectrogram. The recipe "
    "default top_db is null (frame-local); set top_db: 80 to reproduce librosa exactly.",
    lambda p, sr, n_fft: p["n_mfcc"],
    _make_mfcc,
))


# ---------------------------------------------------------------------------------- shape

def _make_centroid(p: dict, ex: Extractor) -> Computer:
    freq = ex.freq

    def step(b: Block, st: dict, g: dict) -> dict:
        c = b.get("centroid", lambda: centroid_from_mag(b.mag, freq))
        return {"spectral_centroid": c}

    return Computer({"spectral_centroid": 1}, step)


register(FeatureSpec(
    "spectral_centroid", {},
    "Spectral centroid in Hz (librosa.feature.spectral_centroid): magnitude-weighted mean "
    "frequency; 0 for an all-zero frame.",
    lambda p, sr, n_fft: 1, _make_centroid,
))


def _make_bandwidth(p: dict, ex: Extractor) -> Computer:
    freq, pp, norm = ex.freq, p["p"], p["norm"]

    def step(b: Block, st: dict, g: dict) -> dict:
        c = b.get("centroid", lambda: centroid_from_mag(b.mag, freq))
        return {"spectral_bandwidth": bandwidth_from_mag(b.mag, freq, c, p=pp, norm=norm)}

    return Computer({"spectral_bandwidth": 1}, step)


register(FeatureSpec(
    "spectral_bandwidth",
    {"p": Param(2.0, pos_num, "order of the deviation norm"),
     "norm": Param(True, boolean, "normalise the spectrum to unit sum per frame")},
    "Spectral bandwidth / spread in Hz (librosa.feature.spectral_bandwidth).",
    lambda p, sr, n_fft: 1, _make_bandwidth,
))


def _make_rolloff(p: dict, ex: Extractor) -> Computer:
    freq, rp = ex.freq, p["roll_percent"]

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"spectral_rolloff": rolloff_from_mag(b.mag, freq, rp)}

    return Computer({"spectral_rolloff": 1}, step)


register(FeatureSpec(
    "spectral_rolloff",
    {"roll_percent": Param(0.85, open_unit, "fraction of the magnitude sum below roll-off")},
    "Roll-off frequency in Hz (librosa.feature.spectral_rolloff).",
    lambda p, sr, n_fft: 1, _make_rolloff,
))


def _make_flatness(p: dict, ex: Extractor) -> Computer:
    amin, power = p["amin"], p["power"]

    def step(b: Block, st: dict, g: dict) -> dict:
        P = b.power if power == 2.0 else b.mag ** np.float32(power)
        return {"spectral_flatness": flatness_from_power(P, amin)}

    return Computer({"spectral_flatness": 1}, step)


register(FeatureSpec(
    "spectral_flatness",
    {"amin": Param(1e-10, pos_num, "floor of |S|^power"),
     "power": Param(2.0, pos_num, "exponent of the magnitude spectrum")},
    "Spectral flatness (librosa.feature.spectral_flatness): geometric / arithmetic mean.",
    lambda p, sr, n_fft: 1, _make_flatness,
))


# ---------------------------------------------------------------------------------- temporal

def _make_rms(p: dict, ex: Extractor) -> Computer:
    L, hop = ex.n_fft, ex.hop_length
    inv = np.float32(1.0 / L)

    def step(b: Block, st: dict, g: dict) -> dict:
        ss = frame_sumsq(b.seg, b.k, L, hop)
        return {"rms": np.sqrt(ss * inv)[None, :]}

    return Computer({"rms": 1}, step)


register(FeatureSpec(
    "rms", {},
    "Root-mean-square of rectangular frames of n_fft samples, zero-padded when centred "
    "(librosa.feature.rms(y=..., frame_length=n_fft)).",
    lambda p, sr, n_fft: 1, _make_rms,
))


def _make_zcr(p: dict, ex: Extractor) -> Computer:
    L, hop, thr = ex.n_fft, ex.hop_length, p["threshold"]
    inv = np.float32(1.0 / L)

    def step(b: Block, st: dict, g: dict) -> dict:
        c = frame_crossings(b.seg, b.k, L, hop, thr, b.lo, b.hi)
        return {"zero_crossing_rate": (c.astype(np.float32) * inv)[None, :]}

    return Computer({"zero_crossing_rate": 1}, step)


register(FeatureSpec(
    "zero_crossing_rate",
    {"threshold": Param(1e-10, nonneg_num, "|x| <= threshold counts as zero")},
    "Zero-crossing rate over frames of n_fft samples (librosa.feature.zero_crossing_rate, "
    "edge padding when centred).",
    lambda p, sr, n_fft: 1, _make_zcr,
))

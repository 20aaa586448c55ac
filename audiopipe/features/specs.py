"""Recipe specs of the features: parameters, documentation and block computers.

Each ``_make_*`` builds a :class:`~audiopipe.features.extractor.Computer` for one
Extractor: filter banks and matrices are built once here, and ``step`` only does array
arithmetic on the block's shared spectra.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._core import get_window
from .cepstral import equal_loudness, preemphasis_response
from .extractor import Block, Computer, Extractor
from .filters import (
    bark_centers,
    bark_filterbank,
    chroma_filterbank,
    dct_matrix,
    gammatone_filterbank,
    mel_filterbank,
)
from .lpc import autocorr_from_power, levinson, lpc_to_cepstrum
from .musical import (
    normalize_frames,
    onset_from_db,
    piptrack_peaks,
    tempogram_frames,
    tuning_from_peaks,
)
from .pncc import PNCCStream
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
    contrast_bands,
    contrast_from_mag,
    entropy_of_subbands,
    flatness_from_power,
    flux_from_mag,
    rolloff_from_mag,
)
from .temporal import entropy_from_signal, frame_crossings, frame_sumsq

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


_DB = np.float32(10.0 / np.log(10.0))


def to_db(S: np.ndarray, amin: float) -> np.ndarray:
    """``10 log10(max(amin, S))`` in float32 (as ``10/ln 10 * ln``: numpy's float32 ``log`` is
    vectorised, ``log10`` is not; within 1 ulp of ``librosa.power_to_db``)."""
    out = np.maximum(S, np.float32(amin))
    np.log(out, out=out)
    out *= _DB
    return out


def db_floor(g: dict, key: tuple, amin: float, top_db: float) -> np.float32:
    """``max(dB over the clip) - top_db`` from the first pass's maximum bank value."""
    m = to_db(np.array([g[("bankmax", key)]], np.float32), amin)[0]
    return m - np.float32(top_db)


def clip_top(db: np.ndarray, top_db: float) -> np.ndarray:
    """Whole-clip ``max(db, db.max() - top_db)`` (librosa's power_to_db clipping), in place."""
    return np.maximum(db, db.max() - np.float32(top_db), out=db)


def block_db(b: Block, key: tuple, amin: float) -> np.ndarray:
    return b.get(("db", key, amin), lambda: to_db(b.mel(key), amin))


# ---------------------------------------------------------------------------------- mel / mfcc

def _make_melspectrogram(p: dict, ex: Extractor) -> Computer:
    key = mel_bank_key(ex, p)
    log, top_db, amin = p["log"], p["top_db"], p["amin"]
    needs = (("bankmax", key),) if log and top_db is not None else ()

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if not log:
            return {"melspectrogram": b.mel(key)}
        db = block_db(b, key, amin)
        if top_db is not None:
            if g is None:
                return {"_melspectrogram_db": db}
            db = np.maximum(db, db_floor(g, key, amin, top_db))
        return {"melspectrogram": db}

    def finish(res: dict) -> dict:
        return {"melspectrogram": clip_top(res.pop("_melspectrogram_db"), top_db)}

    return Computer({"melspectrogram": p["n_mels"]}, step, needs, finish=finish)


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

    def step(b: Block, st: dict, g: dict | None) -> dict:
        db = block_db(b, key, amin)
        if top_db is not None:
            if g is None:
                return {"_mfcc_db": db}
            db = np.maximum(db, db_floor(g, key, amin, top_db))
        return {"mfcc": D @ db}

    def finish(res: dict) -> dict:
        return {"mfcc": D @ clip_top(res.pop("_mfcc_db"), top_db)}

    return Computer({"mfcc": p["n_mfcc"]}, step, needs, finish=finish)


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


# ---------------------------------------------------------------------------------- spectra

def _make_spectrogram(p: dict, ex: Extractor) -> Computer:
    power = p["power"]

    def step(b: Block, st: dict, g: dict) -> dict:
        if power == 2.0:
            return {"spectrogram": b.power.copy()}
        if power == 1.0:
            return {"spectrogram": b.mag.copy()}
        return {"spectrogram": b.power ** np.float32(power / 2)}

    return Computer({"spectrogram": ex.n_fft // 2 + 1}, step)


register(FeatureSpec(
    "spectrogram",
    {"power": Param(2.0, pos_num, "1 = magnitude, 2 = power spectrogram")},
    "The shared STFT's |X|^power, 1 + n_fft//2 rows (librosa.stft layout).",
    lambda p, sr, n_fft: n_fft // 2 + 1, _make_spectrogram,
))


def _make_contrast(p: dict, ex: Extractor) -> Computer:
    masks, keeps = contrast_bands(ex.sr, ex.n_fft, p["fmin"], p["n_bands"], p["quantile"])
    linear, top_db = p["linear"], p["top_db"]

    def pv(b: Block):
        return b.get("contrast_pv", lambda: contrast_from_mag(b.mag, masks, keeps))

    needs = ()
    if not linear and top_db is not None:
        needs = (("max", "contrast_peak", lambda b: pv(b)[0]),
                 ("max", "contrast_valley", lambda b: pv(b)[1]))

    def step(b: Block, st: dict, g: dict | None) -> dict:
        peak, valley = pv(b)
        if linear:
            return {"spectral_contrast": peak - valley}
        pk, va = to_db(peak, 1e-10), to_db(valley, 1e-10)
        if top_db is not None and g is None:
            return {"_contrast_pk": pk, "_contrast_va": va}
        if top_db is not None:
            pk = np.maximum(pk, to_db(np.float32([g[needs[0]]]), 1e-10)[0] - np.float32(top_db))
            va = np.maximum(va, to_db(np.float32([g[needs[1]]]), 1e-10)[0] - np.float32(top_db))
        return {"spectral_contrast": pk - va}

    def finish(res: dict) -> dict:
        return {"spectral_contrast": clip_top(res.pop("_contrast_pk"), top_db)
                - clip_top(res.pop("_contrast_va"), top_db)}

    return Computer({"spectral_contrast": p["n_bands"] + 1}, step, needs, finish=finish)


register(FeatureSpec(
    "spectral_contrast",
    {"fmin": Param(200.0, pos_num, "upper edge of the lowest band, Hz"),
     "n_bands": Param(6, pos_int, "octave bands above fmin"),
     "quantile": Param(0.02, open_unit, "fraction of bins averaged for peak / valley"),
     "linear": Param(False, boolean, "peak - valley instead of the dB difference"),
     "top_db": Param(None, optional(nonneg_num),
                     "librosa clips the dB at whole-clip max - 80; null = frame-local")},
    "Spectral contrast per octave band (librosa.feature.spectral_contrast).",
    lambda p, sr, n_fft: p["n_bands"] + 1, _make_contrast,
))


def _make_entropy(p: dict, ex: Extractor) -> Computer:
    nb = p["n_short_blocks"]
    half = ex.n_fft // 2
    scale = np.float32(2.0 / ex.n_fft)

    def step(b: Block, st: dict, g: dict) -> dict:
        M = b.mag[:half] * scale
        return {"spectral_entropy": entropy_of_subbands(M * M, nb)}

    return Computer({"spectral_entropy": 1}, step)


register(FeatureSpec(
    "spectral_entropy",
    {"n_short_blocks": Param(10, pos_int, "sub-bands")},
    "Spectral entropy of n_short_blocks sub-bands (pyAudioAnalysis), on the shared STFT.",
    lambda p, sr, n_fft: 1, _make_entropy,
))


def _make_flux(p: dict, ex: Extractor) -> Computer:
    half = ex.n_fft // 2
    scale = np.float32(2.0 / ex.n_fft)

    def step(b: Block, st: dict, g: dict) -> dict:
        f, st["prev"] = flux_from_mag(b.mag[:half] * scale, st.get("prev"))
        return {"spectral_flux": f}

    return Computer({"spectral_flux": 1}, step)


register(FeatureSpec(
    "spectral_flux", {},
    "Spectral flux of unit-sum magnitude spectra (pyAudioAnalysis); 0 on the first frame.",
    lambda p, sr, n_fft: 1, _make_flux,
))


# ---------------------------------------------------------------------------------- temporal

def _make_energy(p: dict, ex: Extractor) -> Computer:
    L, hop = ex.n_fft, ex.hop_length
    inv = np.float32(1.0 / L)

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"energy": (frame_sumsq(b.seg, b.k, L, hop) * inv)[None, :]}

    return Computer({"energy": 1}, step)


register(FeatureSpec(
    "energy", {},
    "Short-term energy sum(x^2)/n_fft of rectangular frames (pyAudioAnalysis, without its "
    "whole-file normalisation), on the shared framing.",
    lambda p, sr, n_fft: 1, _make_energy,
))


def _make_energy_entropy(p: dict, ex: Extractor) -> Computer:
    nb, L, hop = p["n_short_blocks"], ex.n_fft, ex.hop_length

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"energy_entropy": entropy_from_signal(b.seg, b.k, L, hop, nb)}

    return Computer({"energy_entropy": 1}, step)


register(FeatureSpec(
    "energy_entropy",
    {"n_short_blocks": Param(10, pos_int, "sub-blocks per frame")},
    "Entropy of sub-block energies (pyAudioAnalysis), on the shared framing.",
    lambda p, sr, n_fft: 1, _make_energy_entropy,
))


# ---------------------------------------------------------------------------------- cepstral

SPEECH_PARAMS = {
    "fmin": Param(0.0, nonneg_num, "lowest filter frequency, Hz"),
    "fmax": Param(None, optional(pos_num), "highest filter frequency, Hz (default sr/2)"),
    "pre_emphasis": Param(0.97, nonneg_num, "pre-emphasis coefficient (0 = none), applied "
                          "as the filter's power response on the shared STFT"),
}


def _speech_weight(ex: Extractor, coef: float) -> np.ndarray:
    w = preemphasis_response(ex.n_fft, coef) if coef else np.ones(ex.n_fft // 2 + 1, np.float32)
    return w * np.float32(1.0 / ex.n_fft)


def _fmax(p: dict, ex: Extractor, default: float | None = None) -> float:
    if p["fmax"] is not None:
        return float(p["fmax"])
    return float(default if default is not None else ex.sr / 2)


def _make_gfcc(p: dict, ex: Extractor) -> Computer:
    fb = gammatone_filterbank(ex.sr, ex.n_fft, p["n_bands"], p["fmin"], _fmax(p, ex))
    key = ex.register_bank(("gfcc", p["n_bands"], p["fmin"], _fmax(p, ex), p["pre_emphasis"]),
                           fb * _speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_gfcc"], p["n_bands"])

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"gfcc": D @ np.cbrt(b.mel(key))}

    return Computer({"gfcc": p["n_gfcc"]}, step)


def _n_le_bands(n_key: str):
    def check(p: dict) -> str | None:
        if p[n_key] > p["n_bands"]:
            return f"{n_key}={p[n_key]} must be <= n_bands={p['n_bands']}"
        return None
    return check


register(FeatureSpec(
    "gfcc",
    {"n_gfcc": Param(13, pos_int, "coefficients"),
     "n_bands": Param(24, pos_int, "gammatone filters"), **SPEECH_PARAMS},
    "Gammatone cepstral coefficients (spafe gfcc: cube-root compression, DCT-II ortho) from "
    "the shared power spectrum / n_fft.",
    lambda p, sr, n_fft: p["n_gfcc"], _make_gfcc, _n_le_bands("n_gfcc"),
))


def _make_bfcc(p: dict, ex: Extractor) -> Computer:
    fmax = _fmax(p, ex)
    w = bark_filterbank(ex.sr, ex.n_fft, p["n_bands"], p["fmin"], fmax) * equal_loudness(
        bark_centers(ex.sr, p["n_bands"], p["fmin"], fmax)).astype(np.float32)[:, None]
    key = ex.register_bank(("bfcc", p["n_bands"], p["fmin"], fmax, p["pre_emphasis"]),
                           w * _speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_bfcc"], p["n_bands"])
    amin = np.float32(p["amin"])

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"bfcc": D @ np.log(np.maximum(np.cbrt(b.mel(key)), amin))}

    return Computer({"bfcc": p["n_bfcc"]}, step)


register(FeatureSpec(
    "bfcc",
    {"n_bfcc": Param(13, pos_int, "coefficients"),
     "n_bands": Param(26, pos_int, "Bark filters"),
     "amin": Param(1e-10, pos_num, "floor before the log"), **SPEECH_PARAMS},
    "Bark cepstral coefficients: spafe's Bark bank, PLP equal-loudness at band centres and "
    "cube-root power law (Hermansky 1990), log, DCT-II ortho.",
    lambda p, sr, n_fft: p["n_bfcc"], _make_bfcc, _n_le_bands("n_bfcc"),
))


def _lpc_block(ex: Extractor, p: dict):
    order = p["order"]
    R = autocorr_from_power(ex.n_fft, order) * _speech_weight(ex, p["pre_emphasis"])[None, :]

    def lpc_of(b: Block):
        return b.get(("lpc", order, p["pre_emphasis"]),
                     lambda: levinson((R @ b.power.astype(np.float64)).T, order))

    return lpc_of


def _make_lpc(p: dict, ex: Extractor) -> Computer:
    lpc_of = _lpc_block(ex, p)

    def step(b: Block, st: dict, g: dict) -> dict:
        a, _ = lpc_of(b)
        return {"lpc": a.T.astype(np.float32)}

    return Computer({"lpc": p["order"] + 1}, step)


LPC_PARAMS = {
    "order": Param(12, pos_int, "prediction order p"),
    "pre_emphasis": SPEECH_PARAMS["pre_emphasis"],
}

register(FeatureSpec(
    "lpc", dict(LPC_PARAMS),
    "LPC polynomial [1, a_1..a_p] per frame: Levinson-Durbin on the autocorrelation of the "
    "windowed shared frames (inverse DFT of the power spectrum).",
    lambda p, sr, n_fft: p["order"] + 1, _make_lpc,
))


def _make_lpcc(p: dict, ex: Extractor) -> Computer:
    lpc_of = _lpc_block(ex, p)
    n = p["n_lpcc"]

    def step(b: Block, st: dict, g: dict) -> dict:
        a, E = lpc_of(b)
        return {"lpcc": lpc_to_cepstrum(a, E, n).T.astype(np.float32)}

    return Computer({"lpcc": n}, step)


register(FeatureSpec(
    "lpcc", {"n_lpcc": Param(13, pos_int, "coefficients c_0..c_{n-1}"), **LPC_PARAMS},
    "LPC cepstrum by the standard recursion (Rabiner & Juang), c_0 = ln sqrt(E).",
    lambda p, sr, n_fft: p["n_lpcc"], _make_lpcc,
))


class _PNCCLookahead:
    def __init__(self, D: np.ndarray) -> None:
        self.s, self.D = PNCCStream(), D

    def push(self, d: dict) -> dict:
        return {"pncc": self.D @ self.s.push(d["_pncc_bands"])}

    def flush(self) -> dict:
        return {"pncc": self.D @ self.s.flush()}


def _make_pncc(p: dict, ex: Extractor) -> Computer:
    fmax = _fmax(p, ex, min(8000.0, ex.sr / 2))
    fb = gammatone_filterbank(ex.sr, ex.n_fft, p["n_bands"], p["fmin"], fmax)
    key = ex.register_bank(("pncc", p["n_bands"], p["fmin"], fmax, p["pre_emphasis"]),
                           fb * _speech_weight(ex, p["pre_emphasis"]))
    D = dct_matrix(p["n_pncc"], p["n_bands"])

    def step(b: Block, st: dict, g: dict) -> dict:
        return {"_pncc_bands": b.mel(key)}

    return Computer({"pncc": p["n_pncc"]}, step, lookahead=lambda: _PNCCLookahead(D),
                    step_names=("_pncc_bands",))


register(FeatureSpec(
    "pncc",
    {"n_pncc": Param(13, pos_int, "coefficients"),
     "n_bands": Param(40, pos_int, "gammatone channels (Kim & Stern: 40)"),
     **{**SPEECH_PARAMS, "fmin": Param(200.0, nonneg_num, "lowest channel, Hz"),
        "fmax": Param(None, optional(pos_num), "highest channel, Hz (default min(8k, sr/2))")}},
    "Power-normalized cepstral coefficients (Kim & Stern 2016), 2 frames of look-ahead.",
    lambda p, sr, n_fft: p["n_pncc"], _make_pncc, _n_le_bands("n_pncc"),
))


def _make_rceps(p: dict, ex: Extractor) -> Computer:
    n = p["n_ceps"] or ex.n_fft // 2 + 1
    if n > ex.n_fft // 2 + 1:
        raise ValueError(f"n_ceps={n} must be <= 1 + n_fft // 2 = {ex.n_fft // 2 + 1}")
    amin = np.float32(p["amin"])
    n_fft = ex.n_fft

    if 8 * n <= n_fft // 2 + 1:
        # a few quefrencies: the irfft of a real, even log spectrum is a cosine sum (DCT-I),
        # c[q] = sum_k w_k / N log|X_k| cos(2 pi k q / N), w = 1 at DC and Nyquist, else 2;
        # one (k, freq) @ (freq, n) product instead of a full inverse FFT per frame
        kq = np.outer(np.arange(n_fft // 2 + 1), np.arange(n)) % n_fft
        wk = np.full(n_fft // 2 + 1, 2.0 / n_fft)
        wk[0] = wk[-1] = 1.0 / n_fft
        if n_fft % 2:
            wk[-1] = 2.0 / n_fft
        C = np.ascontiguousarray((wk[:, None] * np.cos(2 * np.pi / n_fft * kq)).astype(np.float32))

        def step(b: Block, st: dict, g: dict) -> dict:
            logm = np.log(np.maximum(b.mag_fm, amin))
            return {"real_cepstrum": np.ascontiguousarray((logm @ C).T)}

        return Computer({"real_cepstrum": n}, step)

    def step(b: Block, st: dict, g: dict) -> dict:  # noqa: F811 - the general case
        c = scipy.fft.irfft(np.log(np.maximum(b.mag_fm, amin)), n=n_fft, axis=-1)[:, :n]
        return {"real_cepstrum": c.T.astype(np.float32, copy=False)}

    return Computer({"real_cepstrum": n}, step)


register(FeatureSpec(
    "real_cepstrum",
    {"n_ceps": Param(None, optional(pos_int), "quefrencies kept (default 1 + n_fft//2)"),
     "amin": Param(1e-10, pos_num, "floor of |X| before the log")},
    "Real cepstrum Re(IFFT(log max(|X|, amin))) of each shared STFT frame (MATLAB rceps).",
    lambda p, sr, n_fft: p["n_ceps"] or n_fft // 2 + 1, _make_rceps,
))


# ---------------------------------------------------------------------------------- musical

def _make_chroma(p: dict, ex: Extractor) -> Computer:
    n_chroma, tuning, norm = p["n_chroma"], p["tuning"], p["norm"]
    norm = np.inf if norm == "inf" else norm
    sr, n_fft = ex.sr, ex.n_fft
    banks: dict[float, np.ndarray] = {}
    needs = ()
    if tuning is None:
        need = ("collect", "tuning",
                lambda b: piptrack_peaks(b.power, sr, n_fft),
                lambda parts: tuning_from_peaks(
                    np.concatenate([q[0] for q in parts]) if parts else None,
                    np.concatenate([q[1] for q in parts]) if parts else None,
                    bins_per_octave=n_chroma))
        needs = (need,)

    def bank(t: float) -> np.ndarray:
        fb = banks.get(t)
        if fb is None:
            fb = banks[t] = chroma_filterbank(sr=sr, n_fft=n_fft, tuning=t, n_chroma=n_chroma)
        return fb

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            # whole clip, tuning unknown yet: the peaks are frame-local, so take them now,
            # and keep the power frame-major, flattened (concatenating (1, k*freq) pieces
            # along the last axis is a plain copy; (freq, k) pieces would be transposed)
            p, m = piptrack_peaks(b.power, sr, n_fft)
            return {"_chroma_power": b.power_fm.reshape(1, -1).copy(),
                    "_chroma_pitch": p[None, :], "_chroma_mag": m[None, :]}
        t = g[needs[0]] if needs else tuning
        return {"chroma_stft": normalize_frames(bank(t) @ b.power, norm)}

    def finish(res: dict) -> dict:
        P_fm = res.pop("_chroma_power").reshape(-1, n_fft // 2 + 1)
        t = tuning_from_peaks(res.pop("_chroma_pitch")[0], res.pop("_chroma_mag")[0],
                              bins_per_octave=n_chroma)
        return {"chroma_stft": normalize_frames(np.ascontiguousarray((P_fm @ bank(t).T).T),
                                                norm)}

    return Computer({"chroma_stft": n_chroma}, step, needs, finish=finish)


register(FeatureSpec(
    "chroma_stft",
    {"n_chroma": Param(12, pos_int, "chroma bins per octave"),
     "tuning": Param(0.0, optional(lambda v: None if _num(v) and -0.5 <= v <= 0.5 else
                                   f"must be in [-0.5, 0.5] or null, got {v!r}"),
                     "tuning offset in bins; null = estimate from the whole clip (librosa's "
                     "default; needs two passes when streaming)"),
     "norm": Param("inf", optional(one_of("inf", 1, 2)), "per-frame normalisation")},
    "Chromagram of the power spectrogram (librosa.feature.chroma_stft).",
    lambda p, sr, n_fft: p["n_chroma"], _make_chroma,
))


def _num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


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
        return env_from_db(clip_top(db, top_db), {}, 0)

    env_of.finish_env = finish_env
    return env_of, needs


def _make_onset(p: dict, ex: Extractor) -> Computer:
    env_of, needs = _onset_step(p, ex)

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            return {"_onset_db": env_of(b, st, g)}
        return {"onset_strength": env_of(b, st, g)}

    def finish(res: dict) -> dict:
        return {"onset_strength": env_of.finish_env(res.pop("_onset_db"))}

    return Computer({"onset_strength": 1}, step, needs, finish=finish)


register(FeatureSpec(
    "onset_strength", dict(ONSET_PARAMS),
    "Onset strength envelope: log-mel spectral flux (librosa.onset.onset_strength).",
    lambda p, sr, n_fft: 1, _make_onset,
))


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


def _make_tempogram(p: dict, ex: Extractor) -> Computer:
    env_of, needs = _onset_step(p, ex)
    win = get_window(p["window"], p["win_length"]).astype(np.float32)
    norm = np.inf if p["norm"] == "inf" else p["norm"]

    def step(b: Block, st: dict, g: dict | None) -> dict:
        if g is None:
            return {"_tempogram_db": env_of(b, st, g)}
        return {"_tempogram_env": env_of(b, st, g)}

    def finish(res: dict) -> dict:
        return {"_tempogram_env": env_of.finish_env(res.pop("_tempogram_db"))}

    return Computer({"tempogram": p["win_length"]}, step, needs,
                    lookahead=lambda: _TempogramLookahead(win, norm),
                    step_names=("_tempogram_env",), finish=finish)


register(FeatureSpec(
    "tempogram",
    {"win_length": Param(384, pos_int, "onset frames per autocorrelation window"),
     "window": Param("hann", lambda v: None if isinstance(v, str) else "must be a window name",
                     "autocorrelation window"),
     "norm": Param("inf", optional(one_of("inf", 1, 2)), "per-frame normalisation"),
     **ONSET_PARAMS},
    "Autocorrelation tempogram of the onset envelope (librosa.feature.tempogram); holds "
    "win_length//2 frames of look-ahead when streaming.",
    lambda p, sr, n_fft: p["win_length"], _make_tempogram,
))

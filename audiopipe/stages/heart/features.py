"""Phonocardiogram envelope features and the per-recording heart cycle (period, systole).

Following Springer et al. (2016) and Schmidt et al. (2010): the recording is resampled to
``sr_work`` (1 kHz), band-passed to the heart-sound band (25-400 Hz), cleared of
friction spikes (Schmidt's spike removal), and four envelopes are taken, each downsampled
to ``feature_rate`` frames per second and z-scored per recording:

- ``homomorphic``: ``exp(lowpass_8Hz(log |hilbert(x)|))`` (Gupta et al. 2007);
- ``hilbert``: ``|hilbert(x)|``;
- ``psd``: mean power of 40-60 Hz in 50 ms windows (Springer's PSD feature);
- ``wavelet``: the envelope of the 62.5-125 Hz band, standing in for Springer's level-3
  detail coefficients of a ``rbio3.9`` wavelet at 1 kHz (the same band, no PyWavelets).

``bands`` adds the envelopes of octave sub-bands (S1 is lower-pitched than S2, which the
broadband envelopes do not show). The heart period is the autocorrelation peak of the
homomorphic envelope within ``60/max_bpm .. 60/min_bpm`` s; :func:`cycle_candidates`
returns the strongest few peaks so that the segmenter can let the duration model choose
between a period and its half or double (S1-S2 and S2-S1 intervals are nearly equal at
high heart rates, which makes the half period look periodic too).

Examples
--------
>>> from audiopipe.stages.segment import synthetic_pcg
>>> y, sr, s1, s2 = synthetic_pcg(duration=20.0, bpm=72.0, seed=0)
>>> F, names = envelope_features(y, sr)
>>> F.shape[1], names[:2]
(4, ['homomorphic', 'hilbert'])
>>> period, systole = cycle_candidates(F[:, 0], 50.0)[0][:2]
>>> abs(60 / period - 72) < 3  # beats vary by +-5 %
True
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import ndimage, signal

__all__ = [
    "BASE_FEATURES",
    "resample",
    "remove_spikes",
    "envelope_features",
    "autocorrelation",
    "windowed_autocorrelation",
    "normalise_columns",
    "cycle_candidates",
    "fundamental_first",
]

BASE_FEATURES = ("homomorphic", "hilbert", "psd", "wavelet")
OCTAVES = ((25.0, 50.0), (50.0, 100.0), (100.0, 200.0), (200.0, 400.0))


def resample(y: np.ndarray, sr: float, sr_out: float) -> np.ndarray:
    """Polyphase resampling ``sr -> sr_out`` (rational ratio, anti-aliased)."""
    y = np.asarray(y, dtype=np.float64)
    if sr == sr_out:
        return y
    frac = Fraction(float(sr_out) / float(sr)).limit_denominator(2000)
    return signal.resample_poly(y, frac.numerator, frac.denominator)


def remove_spikes(x: np.ndarray, sr: float, window_s: float = 0.5) -> np.ndarray:
    """Schmidt et al. (2010) spike removal: zero the spike between its zero crossings.

    While the largest maximum absolute amplitude (MAA) of any ``window_s`` window exceeds
    three times the median MAA, the loudest sample of that window and its surroundings up
    to the nearest zero crossings on either side are set to zero.
    """
    x = np.array(x, dtype=np.float64)
    w = int(round(window_s * sr))
    n_win = len(x) // w if w > 0 else 0
    if n_win < 2:
        return x
    frames = x[: n_win * w].reshape(n_win, w)  # a view: edits land in x
    maa = np.abs(frames).max(axis=1)
    for _ in range(4 * n_win):  # each pass clears one spike; bounded for safety
        med = np.median(maa)
        k = int(np.argmax(maa))
        if med <= 0 or maa[k] <= 3 * med:
            break
        row = frames[k]
        pos = int(np.argmax(np.abs(row)))
        sign = np.signbit(row)
        zc = np.flatnonzero(sign[1:] != sign[:-1])  # crossing between zc and zc + 1
        before = zc[zc < pos]
        after = zc[zc >= pos]
        lo = int(before[-1]) + 1 if len(before) else 0
        hi = int(after[0]) + 1 if len(after) else w
        row[lo:hi] = 0.0
        maa[k] = np.abs(row).max()
    return x


def _filtfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase filtering that also works on signals shorter than the default padding."""
    n_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    pad = min(3 * (2 * len(sos) + 1 - n_zeros), max(len(x) - 1, 0))  # scipy's default, capped
    return signal.sosfiltfilt(sos, x, padlen=pad)


def _band(x: np.ndarray, sr: float, lo: float, hi: float, order: int = 4) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    sos = signal.butter(order, [lo, hi], btype="band", fs=sr, output="sos")
    return _filtfilt(sos, x)


def _down(e: np.ndarray, sr_work: int, feature_rate: float, n_frames: int) -> np.ndarray:
    """Anti-aliased downsampling of an envelope to ``n_frames`` values at the frames'
    centres (frame ``i`` covers ``[i, i + 1) / feature_rate`` s)."""
    half = int(sr_work // feature_rate) // 2
    frac = Fraction(float(feature_rate) / float(sr_work)).limit_denominator(2000)
    d = signal.resample_poly(e[half:], frac.numerator, frac.denominator, padtype="line")
    d = d[:n_frames]
    return np.pad(d, (0, n_frames - len(d)), mode="edge") if len(d) else np.zeros(n_frames)


def _psd_feature(
    x: np.ndarray, sr: int, n_frames: int, rate: float, fmin: float = 40.0, fmax: float = 60.0
) -> np.ndarray:
    nper = min(int(0.05 * sr), len(x))
    f, t, S = signal.spectrogram(x, fs=sr, nperseg=nper, noverlap=nper // 2, nfft=max(nper, 256))
    band = (f >= fmin) & (f <= fmax)
    p = S[band].mean(axis=0) if band.any() else S.mean(axis=0)
    # onto the feature frames' times by linear interpolation
    tt = (np.arange(n_frames) + 0.5) / rate
    return np.interp(tt, t, p)


def envelope_features(
    y: np.ndarray,
    sr: float,
    *,
    feature_rate: float = 50.0,
    sr_work: int = 1000,
    fmin: float = 25.0,
    fmax: float = 400.0,
    features: tuple[str, ...] = BASE_FEATURES,
    bands: bool = False,
    log: bool = False,
    normalise: str = "zscore",
    local_s: float = 3.0,
    shape: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Per-frame envelope features ``(n_frames, n_features)`` at ``feature_rate`` Hz.

    Parameters
    ----------
    y, sr : the recording (mono) and its sample rate.
    feature_rate : frames per second of the output (Springer: 50).
    sr_work : working sample rate of the envelopes (1 kHz covers the 25-400 Hz band).
    fmin, fmax : band-pass of the heart-sound band (Hz).
    features : which of :data:`BASE_FEATURES` to compute, in order.
    bands : also the envelopes (8 Hz smoothing) of 25-50, 50-100, 100-200 and 200-400 Hz.
    shape : also each of those octave envelopes' share of their sum, per frame: the
        spectral shape, unchanged when a sound is made louder or softer (S1 is
        lower-pitched than S2 whichever is louder at the site).
    log : z-score the log of the envelopes instead of the envelopes.
    normalise : {"zscore", "robust", "local"}
        Per column: z-score (Springer); ``robust``: subtract the median and divide by the
        spread between the 5th and 95th percentiles (loud artefacts do not squash the
        beats); ``local``: divide each envelope by its running maximum over ``local_s``
        seconds first (gain changes and bursts stay local), then z-score.

    Returns
    -------
    (F, names): F is z-scored per column (constant columns are zero).
    """
    unknown = set(features) - set(BASE_FEATURES)
    if unknown:
        raise ValueError(f"unknown heart features {sorted(unknown)} (known: {BASE_FEATURES})")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal, got shape {y.shape}")
    if sr_work % feature_rate:
        raise ValueError(f"feature_rate {feature_rate} must divide sr_work {sr_work}")
    x = resample(y, sr, sr_work)
    n_frames = int(len(x) * feature_rate // sr_work)
    names = list(features) + ([f"band{int(lo)}-{int(hi)}" for lo, hi in OCTAVES] if bands else [])
    names += [f"share{int(lo)}-{int(hi)}" for lo, hi in OCTAVES] if shape else []
    if n_frames < 2:  # shorter than two frames: nothing to measure
        return np.zeros((n_frames, len(names))), names
    x = remove_spikes(_band(x, sr_work, fmin, fmax), sr_work)
    cols: list[np.ndarray] = []
    env = np.abs(signal.hilbert(x))
    for name in features:
        if name == "homomorphic":
            sos = signal.butter(1, 8.0, fs=sr_work, output="sos")
            e = np.exp(_filtfilt(sos, np.log(env + 1e-10)))
            col = _down(e, sr_work, feature_rate, n_frames)
        elif name == "hilbert":
            col = _down(env, sr_work, feature_rate, n_frames)
        elif name == "psd":
            col = _psd_feature(x, sr_work, n_frames, feature_rate)
        else:  # wavelet band
            wav = np.abs(signal.hilbert(_band(x, sr_work, 62.5, 125.0)))
            col = _down(wav, sr_work, feature_rate, n_frames)
        cols.append(col)
    if bands or shape:
        sos = signal.butter(1, 8.0, fs=sr_work, output="sos")
        octs = []
        for lo, hi in OCTAVES:
            e = np.abs(signal.hilbert(_band(x, sr_work, lo, hi, order=2)))
            octs.append(np.maximum(_down(_filtfilt(sos, e), sr_work, feature_rate, n_frames), 0.0))
        cols += octs if bands else []
        if shape:
            total = np.sum(octs, axis=0)
            floor = 1e-6 * (total.max() + 1e-30)
            cols += [o / (total + floor) for o in octs]
    F = np.stack(cols, axis=1) if cols else np.zeros((n_frames, 0))
    return normalise_columns(F, feature_rate, normalise=normalise, log=log, local_s=local_s), names


def normalise_columns(
    F: np.ndarray, rate: float, normalise: str = "zscore", log: bool = False, local_s: float = 3.0
) -> np.ndarray:
    """Per-column normalisation of envelopes (see :func:`envelope_features`)."""
    if normalise not in ("zscore", "robust", "local"):
        raise ValueError(f"normalise must be zscore, robust or local, got {normalise!r}")
    F = np.maximum(np.asarray(F, dtype=np.float64), 0.0)
    if len(F) == 0:
        return F
    if normalise == "local":
        w = max(3, int(round(local_s * rate)))
        F = F / (ndimage.maximum_filter1d(F, w, axis=0, mode="nearest") + 1e-12)
    if log:
        F = np.log(F + 1e-3 * (F.max(axis=0) + 1e-12))
    # a column whose spread is negligible against its size (silence) becomes zeros
    scale = np.abs(F).max(axis=0) + 1e-30
    if normalise == "robust":
        centre = np.median(F, axis=0)
        lo, hi = np.percentile(F, [5, 95], axis=0)
        sd = hi - lo
    else:
        centre, sd = F.mean(axis=0), F.std(axis=0)
    ok = sd > 1e-8 * scale
    return np.where(ok, (F - centre) / np.where(ok, sd, 1.0), 0.0)


def autocorrelation(env: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation (lag 0 = 1) of a mean-removed envelope, via FFT (zeros
    for a signal constant up to rounding)."""
    e = np.asarray(env, dtype=np.float64)
    n = len(e)
    if n == 0:
        return np.zeros(0)
    scale = float(np.abs(e).max())
    e = e - e.mean()
    if not np.any(np.abs(e) > 1e-8 * scale):  # constant up to rounding (e.g. a posterior
        return np.zeros(n)  # of silence): no periodicity, not peaks of rounding noise
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(e, nfft)
    r = np.fft.irfft(spec * np.conj(spec), nfft)[:n]
    return r / r[0]


def windowed_autocorrelation(env: np.ndarray, n_lags: int, window: int) -> np.ndarray:
    """Mean of the normalised autocorrelations of half-overlapping ``window``-frame windows
    (the whole signal when shorter): a loud artefact weighs as one window, not the whole."""
    env = np.asarray(env, dtype=np.float64)
    if window <= 0 or len(env) <= window:
        r = autocorrelation(env)
        return r[:n_lags]
    hop = max(1, window // 2)
    starts = list(range(0, len(env) - window + 1, hop))
    if starts[-1] + window < len(env):
        starts.append(len(env) - window)
    acs = [autocorrelation(env[s : s + window])[:n_lags] for s in starts]
    return np.mean(acs, axis=0)


def cycle_candidates(
    env: np.ndarray,
    feature_rate: float,
    min_bpm: float = 30.0,
    max_bpm: float = 240.0,
    n_candidates: int = 3,
    systole_min_s: float = 0.12,
    window_s: float = 5.0,
    systole_env: np.ndarray | None = None,
    detrend: bool = True,
) -> list[tuple[float, float, float]]:
    """Candidate ``(period_s, systole_s, strength)`` triples, strongest autocorrelation first.

    The period candidates are the autocorrelation peaks of ``env`` with lags in
    ``[60 / max_bpm, 60 / min_bpm]`` s (the range's ends count when the curve is still
    rising there); each candidate's systolic interval (S1 start to S2 start) is the
    autocorrelation peak between ``systole_min_s`` and half the period (Springer's rule),
    or 0.4 times the period when there is no peak there. An empty list means no
    periodicity could be measured (a signal shorter than two periods, or constant).
    The autocorrelation is averaged over ``window_s`` windows
    (:func:`windowed_autocorrelation`; 0: the whole signal at once). ``systole_env``, when
    given, is the signal whose autocorrelation gives the systolic intervals (e.g. the
    envelope, when the periods come from the S1 posterior, which has no S2 peak).
    ``detrend`` removes the signals' moving mean over the longest period first.
    """
    window = int(round(window_s * feature_rate))
    if window:
        window = max(window, int(np.ceil(2 * 60.0 / min_bpm * feature_rate)))
    # without its drift (a moving mean over the longest period: a periodic signal's mean over
    # its period is flat, so every rate in range survives): slow swells of loudness (breath,
    # probe pressure) otherwise make the autocorrelation fall steadily and hide the beat
    base = int(round(60.0 / min_bpm * feature_rate)) if detrend else 0
    env = _detrend(env, base)
    r = windowed_autocorrelation(env, len(env), window)
    r_sys = r if systole_env is None else windowed_autocorrelation(
        _detrend(systole_env, base), len(env), window)
    lo = max(1, int(np.floor(60.0 / max_bpm * feature_rate)))
    hi = min(len(r) - 1, int(np.ceil(60.0 / min_bpm * feature_rate)))
    if hi <= lo + 1 or not np.any(r):
        return []
    seg = r[lo : hi + 1]
    peaks, _ = signal.find_peaks(seg)
    peaks = list(peaks)
    if seg[0] > seg[1]:
        peaks.append(0)
    if seg[-1] > seg[-2]:
        peaks.append(len(seg) - 1)
    peaks = sorted(set(peaks), key=lambda i: -seg[i])[:n_candidates]
    out = []
    for p in peaks:
        lag = lo + p
        period = _refine(r, lag) / feature_rate
        s_lo = max(1, int(round(systole_min_s * feature_rate)))
        s_hi = int(lag // 2)
        systole = 0.4 * period
        if s_hi > s_lo + 1:
            sp, _ = signal.find_peaks(r_sys[s_lo : s_hi + 1])
            if len(sp):
                best = s_lo + int(sp[np.argmax(r_sys[s_lo + sp])])
                systole = _refine(r_sys, best) / feature_rate
        out.append((float(period), float(systole), float(seg[p])))
    return out


def fundamental_first(
    candidates: list[tuple[float, float, float]], ratio: float = 0.7, tolerance: float = 0.1
) -> list[tuple[float, float, float]]:
    """The candidates with the fundamental period first: a harmonic-consistency check.

    Starting from the strongest autocorrelation peak, while another candidate lies at half
    its period (within ``tolerance`` of it, relative) and is at least ``ratio`` times as
    strong, that one is taken instead: a periodic signal's autocorrelation peaks at every
    multiple of its period, so a strong peak at half a candidate's period says the candidate
    is a subharmonic (two beats), whatever the decoding scores of the two would be. The
    rest keep their order (strongest first).

    Parameters
    ----------
    candidates : ``(period_s, systole_s, strength)`` as from :func:`cycle_candidates` (ask
        it for every peak: the half period may be weaker than the strongest few).
    ratio : strength of the half-period peak, relative to the current choice, above which
        the current choice counts as a subharmonic.
    tolerance : relative distance from the exact half period still counted as it.

    Examples
    --------
    >>> fundamental_first([(1.0, 0.3, 0.5), (0.51, 0.2, 0.45), (0.33, 0.1, 0.1)])[0]
    (0.51, 0.2, 0.45)
    >>> fundamental_first([(1.0, 0.3, 0.5), (0.51, 0.2, 0.2)])[0]
    (1.0, 0.3, 0.5)
    """
    if not candidates:
        return []
    order = sorted(candidates, key=lambda c: -c[2])
    best = order[0]
    while True:
        if best[2] <= 0:  # no periodicity to speak of: nothing is a subharmonic
            break
        half = best[0] / 2
        sub = [c for c in order if abs(c[0] - half) <= tolerance * half and c[2] >= ratio * best[2]]
        if not sub:
            break
        best = max(sub, key=lambda c: c[2])
    return [best] + [c for c in order if c is not best]


def _detrend(x: np.ndarray, width: int) -> np.ndarray:
    """``x`` minus its moving mean over ``width`` frames (unchanged when shorter)."""
    x = np.asarray(x, dtype=np.float64)
    if width < 2 or len(x) <= width:
        return x
    return x - ndimage.uniform_filter1d(x, width, mode="nearest")


def _refine(r: np.ndarray, i: int) -> float:
    """Sub-frame peak position by parabolic interpolation."""
    if 0 < i < len(r) - 1:
        a, b, c = r[i - 1], r[i], r[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return i + float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return float(i)

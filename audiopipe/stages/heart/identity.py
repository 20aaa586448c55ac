"""Which decoded sound is S1: a check of a decoded path against its S1 <-> S2 swap.

The emission model learns S1 and S2 from whatever separates them in its training
recordings, often loudness; on a new patient or auscultation site that cue may reverse
(S2 is typically the louder sound at the base, S1 at the apex), and near 120 bpm the
durations (systole ~ diastole) cannot tell the decoder which is which. The cues below
hold across patients and sites (physiology, not one recording's training):

- ``interval``: systole (S1 to S2) is shorter than diastole (S2 to the next S1) whenever
  the rate leaves room for the difference; ``median((dia - sys) / (dia + sys))`` over the
  decoded cycles, in [-1, 1], near 0 at fast rates (so it weighs itself by how different
  the two intervals are);
- ``pitch``: S1 (mitral and tricuspid closure) is lower-pitched than S2 (aortic and
  pulmonary closure); the log ratio of the median spectral centroids (20-400 Hz) of the
  decoded S2 sounds over the decoded S1 sounds.

Round 8 (issue 12 §2) adds two cues that do not rest on the centroid (on a patient whose
sounds differ little in pitch it is near 0 whichever label they carry):

- ``spread``: S2 (aortic and pulmonary closure, often split) has more of its energy above
  :data:`HIGH_HZ` than S1; the log ratio of the median high-band shares (of 25-400 Hz) in
  :data:`SOUND_WINDOW_S` around the decoded S2 over the decoded S1 sounds;
- ``width``: S1 lasts longer than S2 (~120 against ~90 ms); the log ratio of the median
  widths at half the peak of the smoothed envelope around the decoded S1 over the S2 sounds.

Round 9 adds a cue that rests on neither the sounds' spectra nor systole < diastole:

- ``regularity``: systole (S1 to S2) is nearly constant from beat to beat while diastole
  (S2 to the next S1) absorbs the heart rate's variation (respiratory sinus arrhythmia,
  slow drifts); the log ratio of the robust spreads (MAD) of the decoded diastoles over the
  decoded systoles, timed at the sounds' envelope peaks (:func:`sound_times`) with a floor
  of :data:`TIMING_S`. It does not fade at 120 bpm, where systole ~ diastole, but is ~0 on
  a heart that beats like a clock.

All are positive for a path with S1 and S2 in place and change sign under the swap.
:func:`identity_evidence` gives ``pitch + interval_weight * interval + spread_weight *
spread + width_weight * width + regularity_weight * regularity``; a path whose evidence is
below ``-margin`` has them swapped (:func:`swap_states` relabels it).

Examples
--------
>>> import numpy as np
>>> path = np.array(([0] * 5 + [1] * 10 + [2] * 4 + [3] * 20) * 4)
>>> round(interval_cue(path), 2)
0.23
>>> swap_states(path)[:6].tolist()
[2, 2, 2, 2, 2, 3]
>>> round(interval_cue(swap_states(path)), 2)
-0.23
"""

from __future__ import annotations

import numpy as np

from audiopipe.stages.heart.hsmm import path_to_runs

__all__ = [
    "SWAP",
    "identity_evidence",
    "interval_cue",
    "pitch_cue",
    "regularity_cue",
    "sound_times",
    "spread_cue",
    "swap_states",
    "width_cue",
]

#: the state permutation of an S1 <-> S2 swap (S1, systole, S2, diastole -> S2, dia, S1, sys)
SWAP = np.array([2, 3, 0, 1])
#: the band (Hz) whose spectral centroid gives a sound's pitch
PITCH_BAND = (20.0, 400.0)
#: the heart-sound band (Hz) and the lower edge of its high part (``spread_cue``)
SOUND_BAND = (25.0, 400.0)
HIGH_HZ = 150.0
#: the window (s) centred on a decoded sound in which ``spread_cue`` and ``width_cue`` look
SOUND_WINDOW_S = 0.1
#: the working rate (Hz) of the round-8 cues and the envelope's smoothing (Hz)
CUE_SR = 1000
WIDTH_LOWPASS_HZ = 20.0
#: ``regularity_cue``: the floor (s) of an interval spread (the timing of an envelope peak),
#: the fewest systoles and diastoles it needs, and the longest interval it counts (a gap)
TIMING_S = 0.003
MIN_INTERVALS = 4
MAX_INTERVAL_S = 1.0


def swap_states(path: np.ndarray) -> np.ndarray:
    """The path with S1 <-> S2 and systole <-> diastole exchanged."""
    return SWAP[np.asarray(path, dtype=int)]


def interval_cue(path: np.ndarray) -> float:
    """``median((diastole - systole) / (diastole + systole))`` over the decoded cycles.

    Systole is S1 start to S2 start, diastole S2 start to the next S1 start; 0 when the
    path has no complete cycle.
    """
    runs = path_to_runs(path)
    s1 = np.array([s for s, _, k in runs if k == 0])
    s2 = np.array([s for s, _, k in runs if k == 2])
    vals = []
    for a, c in zip(s1[:-1], s1[1:], strict=True):
        b = s2[(s2 > a) & (s2 < c)]
        if len(b) == 1:
            sys, dia = b[0] - a, c - b[0]
            vals.append((dia - sys) / (dia + sys))
    return float(np.median(vals)) if vals else 0.0


def _centroid(x: np.ndarray, sr: float) -> float:
    if len(x) < 8:
        return np.nan
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    band = (f >= PITCH_BAND[0]) & (f <= PITCH_BAND[1])
    total = spec[band].sum()
    return float((f[band] * spec[band]).sum() / total) if total > 0 else np.nan


def pitch_cue(path: np.ndarray, y: np.ndarray, sr: float, feature_rate: float) -> float:
    """``log(median centroid of the S2 sounds / median centroid of the S1 sounds)``.

    Centroids of the band :data:`PITCH_BAND` of each decoded sound's samples; 0 when a
    sound class has no measurable segment.
    """
    y = np.asarray(y, dtype=float)
    hop = sr / feature_rate
    cents: dict[int, list[float]] = {0: [], 2: []}
    for s, e, k in path_to_runs(path):
        if k in cents:
            c = _centroid(y[int(round(s * hop)) : int(round(e * hop))], sr)
            if np.isfinite(c) and c > 0:
                cents[k].append(c)
    if not cents[0] or not cents[2]:
        return 0.0
    return float(np.log(np.median(cents[2]) / np.median(cents[0])))


def _sound_centres(path: np.ndarray, feature_rate: float) -> dict[int, np.ndarray]:
    """Centre times (s) of the decoded S1 (0) and S2 (2) runs."""
    runs = path_to_runs(path)
    return {k: np.array([(s + e) / 2 / feature_rate for s, e, kk in runs if kk == k])
            for k in (0, 2)}


def _sound_band(y: np.ndarray, sr: float) -> np.ndarray:
    """The recording at :data:`CUE_SR`, band-passed to :data:`SOUND_BAND`, spikes removed."""
    from audiopipe.stages.heart.features import _band, remove_spikes, resample

    x = resample(np.asarray(y, dtype=float), sr, CUE_SR)
    if len(x) < 64:
        return np.zeros(len(x))
    return remove_spikes(_band(x, CUE_SR, *SOUND_BAND), CUE_SR)


def _log_ratio(a: list[float], b: list[float]) -> float:
    """``log(median(a) / median(b))`` over the finite positive values; 0 when one is empty."""
    a = [v for v in a if np.isfinite(v) and v > 0]
    b = [v for v in b if np.isfinite(v) and v > 0]
    return float(np.log(np.median(a) / np.median(b))) if a and b else 0.0


def _envelope(x: np.ndarray) -> np.ndarray:
    """Hilbert envelope of ``x`` low-passed at :data:`WIDTH_LOWPASS_HZ`."""
    from scipy import signal

    sos = signal.butter(2, WIDTH_LOWPASS_HZ, fs=CUE_SR, output="sos")
    return signal.sosfiltfilt(sos, np.abs(signal.hilbert(x)))


def _windows(x: np.ndarray, env: np.ndarray, centres: np.ndarray):
    """``(window of x, peak index)`` per sound: the :data:`SOUND_WINDOW_S` window of ``x``
    centred on ``env``'s peak within half a window of the decoded centre (sounds whose
    window does not fit in the recording are left out)."""
    h = int(round(SOUND_WINDOW_S * CUE_SR / 2))
    for c in centres:
        i = int(round(c * CUE_SR))
        if i - h < 0 or i + h > len(x):
            continue
        p = i - h + int(np.argmax(env[i - h : i + h]))
        if p - h >= 0 and p + h <= len(x):
            yield x[p - h : p + h], p


def spread_cue(path: np.ndarray, y: np.ndarray, sr: float, feature_rate: float,
               x: np.ndarray | None = None) -> float:
    """``log(median high-band share of the S2 sounds / that of the S1 sounds)``.

    The share of :data:`SOUND_BAND`'s energy above :data:`HIGH_HZ` in the
    :data:`SOUND_WINDOW_S` window centred on each decoded sound's envelope peak; 0 when a
    sound class has no window inside the recording. ``x``: :func:`_sound_band` of ``y`` if
    already made.
    """
    x = _sound_band(y, sr) if x is None else x
    if len(x) < 64:
        return 0.0
    env = _envelope(x)
    n = int(round(SOUND_WINDOW_S * CUE_SR / 2)) * 2
    f = np.fft.rfftfreq(n, 1.0 / CUE_SR)
    band = (f >= SOUND_BAND[0]) & (f <= SOUND_BAND[1])
    high = band & (f >= HIGH_HZ)
    win = np.hanning(n)
    shares: dict[int, list[float]] = {0: [], 2: []}
    for k, centres in _sound_centres(path, feature_rate).items():
        for seg, _ in _windows(x, env, centres):
            p = np.abs(np.fft.rfft(seg * win)) ** 2
            total = p[band].sum()
            if total > 0:
                shares[k].append(float(p[high].sum() / total))
    return _log_ratio(shares[2], shares[0])


def width_cue(path: np.ndarray, y: np.ndarray, sr: float, feature_rate: float,
              x: np.ndarray | None = None) -> float:
    """``log(median width of the S1 sounds / that of the S2 sounds)``.

    A sound's width: the time its envelope (Hilbert, low-passed at
    :data:`WIDTH_LOWPASS_HZ`) stays above half of its peak (the envelope's maximum within
    half of :data:`SOUND_WINDOW_S` of the decoded centre; counted up to 0.2 s each side);
    0 when a sound class has no window inside the recording.
    """
    x = _sound_band(y, sr) if x is None else x
    if len(x) < 64:
        return 0.0
    env = _envelope(x)
    reach = int(0.2 * CUE_SR)
    widths: dict[int, list[float]] = {0: [], 2: []}
    for k, centres in _sound_centres(path, feature_rate).items():
        for _, p in _windows(env, env, centres):
            above = env[max(p - reach, 0) : p + reach + 1] > 0.5 * env[p]
            c = p - max(p - reach, 0)
            lo = c - int(np.argmin(above[c::-1])) if not above[c::-1].all() else 0
            hi = c + int(np.argmin(above[c:])) if not above[c:].all() else len(above)
            widths[k].append((hi - lo) / CUE_SR)
    return _log_ratio(widths[0], widths[2])


def sound_times(path: np.ndarray, feature_rate: float,
                x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, states)`` of the decoded S1 (0) and S2 (2) sounds in time order.

    A sound's time is the peak of the envelope of ``x`` (:func:`_sound_band` of the audio,
    at :data:`CUE_SR`) within half of :data:`SOUND_WINDOW_S` of its decoded centre, or
    without ``x`` the decoded centre (the frame grid's resolution).
    """
    runs = [(s, e, k) for s, e, k in path_to_runs(path) if k in (0, 2)]
    t = np.array([(s + e) / 2 / feature_rate for s, e, _ in runs], dtype=float)
    k = np.array([k for *_, k in runs], dtype=int)
    if x is not None and len(x) >= 64 and len(t):
        env = _envelope(x)
        h = int(round(SOUND_WINDOW_S * CUE_SR / 2))
        for n, c in enumerate(t):
            i = int(round(c * CUE_SR))
            lo, hi = max(i - h, 0), min(i + h, len(env))
            if hi > lo:
                t[n] = (lo + int(np.argmax(env[lo:hi]))) / CUE_SR
    return t, k


def _mad(v: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def regularity_cue(path: np.ndarray, y: np.ndarray | None, sr: float | None,
                   feature_rate: float, x: np.ndarray | None = None) -> float:
    """``log((MAD of the diastoles + TIMING_S) / (MAD of the systoles + TIMING_S))``.

    Systoles: S1 to the next sound when it is S2; diastoles: S2 to the next sound when it
    is S1 (consecutive :func:`sound_times`, up to :data:`MAX_INTERVAL_S`); every interval
    changes kind under the swap, so the cue changes sign. 0 with fewer than
    :data:`MIN_INTERVALS` of either kind. Without audio (``y`` None) the decoded centres
    time the sounds.
    """
    if x is None and y is not None and sr is not None:
        x = _sound_band(y, sr)
    t, k = sound_times(path, feature_rate, x)
    d = np.diff(t)
    ok = d <= MAX_INTERVAL_S
    sys = d[ok & (k[:-1] == 0) & (k[1:] == 2)]
    dia = d[ok & (k[:-1] == 2) & (k[1:] == 0)]
    if len(sys) < MIN_INTERVALS or len(dia) < MIN_INTERVALS:
        return 0.0
    return float(np.log((_mad(dia) + TIMING_S) / (_mad(sys) + TIMING_S)))


def identity_evidence(
    path: np.ndarray,
    y: np.ndarray | None,
    sr: float | None,
    feature_rate: float,
    interval_weight: float = 1.0,
    spread_weight: float = 0.0,
    width_weight: float = 0.0,
    regularity_weight: float = 0.0,
    regularity: bool = False,
) -> dict[str, float]:
    """``{"pitch", "interval", "spread", "width", "regularity", "evidence"}`` for S1 and
    S2 being in place in ``path``.

    Positive evidence: in place; negative: swapped. Without audio (``y`` None) the audio
    cues are 0 (only the intervals count; ``regularity`` times the sounds by the decoded
    centres). ``spread`` and ``width`` (round 8) are computed only when their weight is not
    0, ``regularity`` (round 9) when its weight is not 0 or ``regularity`` is set.
    """
    audio = y is not None and sr is not None
    pitch = pitch_cue(path, y, sr, feature_rate) if audio else 0.0
    interval = interval_cue(path)
    want_reg = bool(regularity_weight) or regularity
    x = (_sound_band(y, sr) if audio and (spread_weight or width_weight or want_reg)
         else None)
    spread = spread_cue(path, y, sr, feature_rate, x) if x is not None and spread_weight else 0.0
    width = width_cue(path, y, sr, feature_rate, x) if x is not None and width_weight else 0.0
    reg = regularity_cue(path, None, None, feature_rate, x) if want_reg else 0.0
    evidence = (pitch + interval_weight * interval + spread_weight * spread
                + width_weight * width + regularity_weight * reg)
    return {"pitch": pitch, "interval": interval, "spread": spread, "width": width,
            "regularity": reg, "evidence": evidence}

"""Beat tracking: onset strength -> tempo (autocorrelation tempogram) -> beats by dynamic programming.

The core follows Ellis (2007), "Beat tracking by dynamic programming", as librosa does:
a global tempo from the autocorrelation tempogram of the onset envelope weighted by a
log-normal prior around ``start_bpm``, then the beat sequence maximising onset strength
at the beats minus ``tightness`` times the squared log-deviation of each inter-beat
interval from the period. With ``local_tempo=True`` the period follows a smoothed local
tempo track (for music whose tempo changes); the default is the global period.

Onsets by band (``bands=True``, the default when audio is given): the mel-mean onset
strength is dominated by cymbals and hi-hats, which fill most mel bands; on drum-only
recordings their off-beat strokes pulled the beats onto the "and" and doubled or halved the
tempo. :func:`band_onset_strength` instead sums the onset envelopes of three bands (kick
0-200 Hz, snare/body 200-3000 Hz, cymbals above 3 kHz), each divided by its own standard
deviation, with the cymbal band weighted by ``high_weight``. The band edges are the
conventional drum ranges; ``high_weight`` (and using the band envelope for tempo and beats
alike) was chosen by leave-one-track-out over the MDB Drums recordings
(``benchmarks/tune_beats.py``).

Beat tracking answers with a tempo whenever the onset envelope moves at all, even for audio
without a pulse (a DC offset gave 117.5 BPM, a steady sine 112 BPM, white noise 137 BPM).
:func:`pulse_clarity` says how much to trust it: how clearly the onsets repeat at the beat
period, in [0, 1] (about 0.9 for a click track, 0.14-0.82 on the MDB Drums recordings, below
0.05 for noise, a steady tone or DC). Audio with no onsets at all - digital silence, a clip
shorter than 3 onset frames - has no tempo: :func:`beat_track` returns 0 (as librosa) and no
beats.

As a stage (:class:`Beats`, clip by clip: only new clips are tracked) it writes tables
``beats`` (clip_id, time_s) and ``tempo`` (clip_id, bpm, n_beats, pulse_clarity, error) and
a PNG of beats over the onset envelope of the first clip processed. ``tempo.bpm`` is empty
(null) where there is no tempo: a clip without onsets (``error`` empty, ``n_beats`` 0,
``pulse_clarity`` 0) and a clip that could not be read (``error`` says why), so averages of
``bpm`` are over the clips that have one (a 0, or the prior's 120, would be averaged in as if
measured).

Examples
--------
>>> import numpy as np
>>> sr = 22050
>>> y = np.zeros(sr * 8, np.float32)
>>> for t in np.arange(0.5, 7.5, 0.5):  # 120 BPM clicks
...     y[int(t * sr) : int(t * sr) + 200] = 1.0
>>> tempo, beats = beat_track(y=y, sr=sr)
>>> round(float(tempo))
120
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiopipe.audio import to_mono
from audiopipe.stages._mir import onset_strength, tempo_estimate, tempo_range_problem
from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
from audiopipe.stages.params import Param

__all__ = ["beat_track", "band_onset_strength", "tempo_estimate", "pulse_clarity", "Beats"]

#: onset bands (Hz): kick, snare/body, cymbals
BANDS = ((0.0, 200.0, 8), (200.0, 3000.0, 32), (3000.0, None, 32))
#: weight of the cymbal band (chosen in benchmarks/tune_beats.py)
HIGH_WEIGHT = 0.5


#: variance (dB², of the mel-mean onset strength) added to the zero lag in
#: :func:`pulse_clarity`: an envelope varying by less than ~0.3 dB has no onsets to repeat
#: (set a priori, not tuned: generated signals only, see the function)
CLARITY_FLOOR = 0.1


def _onset_envelope(y: np.ndarray, sr: float, hop_length: int) -> np.ndarray:
    y = to_mono(y)
    if y.size == 0:
        return np.zeros(0)
    return onset_strength(y, sr=sr, hop_length=hop_length)


def band_onset_strength(
    y: np.ndarray, sr: float = 22050, hop_length: int = 512, high_weight: float = HIGH_WEIGHT
) -> np.ndarray:
    """Sum of per-band onset envelopes (kick, snare/body, cymbals), each scaled to unit std.

    Parameters
    ----------
    y : np.ndarray
        Audio, mono or multichannel (mixed down).
    sr : float
        Sample rate.
    hop_length : int
        Hop of the envelope in samples.
    high_weight : float
        Weight of the band above 3 kHz (cymbals, hi-hats); a band above Nyquist is skipped.

    Returns
    -------
    np.ndarray, float64, one value per frame (as :func:`audiopipe.features.onset_strength`)

    Examples
    --------
    >>> band_onset_strength(np.zeros(22050, np.float32)).shape
    (44,)
    """
    import audiopipe.features as F

    y = to_mono(np.asarray(y, dtype=np.float32))
    out = None
    for (lo, hi, n_mels), w in zip(BANDS, (1.0, 1.0, high_weight), strict=True):
        top = sr / 2 if hi is None else min(hi, sr / 2)
        if w == 0 or top <= lo:
            continue
        e = np.asarray(
            F.onset_strength(y=y, sr=sr, hop_length=hop_length, fmin=lo, fmax=top, n_mels=n_mels),
            np.float64,
        )
        sd = float(np.std(e))
        e = w * e / sd if sd > 0 else np.zeros_like(e)
        out = e if out is None else out + e
    return out if out is not None else np.zeros(0)


def _local_score(onset: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Onsets smoothed with a Gaussian of width period/32 (per-frame period allowed)."""
    p = float(np.median(period))
    k = np.arange(-np.round(p), np.round(p) + 1)
    win = np.exp(-0.5 * (k * 32.0 / p) ** 2)
    # "same" relative to the onsets even when the window is longer (a clip shorter than
    # two beats): np.convolve's "same" would return the window's length instead
    full = np.convolve(onset, win, mode="full")
    start = (win.size - 1) // 2
    return full[start : start + onset.size]


def _dp(
    localscore: np.ndarray, period: np.ndarray, tightness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ellis (2007) dynamic program: best predecessor within [i - 2p, i - p/2] of each frame."""
    n = localscore.size
    backlink = np.full(n, -1, dtype=np.int64)
    cumscore = np.zeros(n)
    thresh = 0.01 * localscore.max()
    first = True
    for i in range(n):
        fpb = period[i]
        hi = i - max(1, int(round(fpb / 2)))  # a predecessor is always an earlier frame
        lo = max(i - int(2 * fpb), 0)
        best_val, best_j = 0.0, -1
        if hi >= lo:
            js = np.arange(hi, lo - 1, -1)
            score = cumscore[js] - tightness * (np.log(i - js) - np.log(fpb)) ** 2
            k = int(np.argmax(score))
            best_val, best_j = float(score[k]), int(js[k])
        cumscore[i] = localscore[i] + best_val
        if first and localscore[i] < thresh:
            backlink[i] = -1
        else:
            backlink[i] = best_j
            first = False
    return backlink, cumscore


def _last_beat(cumscore: np.ndarray) -> int:
    c = cumscore
    is_max = np.zeros(c.size, dtype=bool)
    if c.size > 2:
        is_max[1:-1] = (c[1:-1] > c[:-2]) & (c[1:-1] >= c[2:])
    if not is_max.any():
        return int(np.argmax(c))
    med = np.median(c[is_max])
    cand = np.flatnonzero(is_max & (c >= 0.5 * med))
    return int(cand[-1]) if cand.size else int(np.argmax(c))


def _trim(localscore: np.ndarray, beats: np.ndarray) -> np.ndarray:
    if beats.size == 0:
        return beats
    w = np.hanning(5)
    smooth = np.convolve(localscore[beats], w, mode="same")
    thr = 0.5 * np.sqrt(np.mean(smooth**2))
    keep = np.flatnonzero(smooth >= thr)
    if keep.size == 0:
        return beats[:0]
    return beats[keep[0] : keep[-1] + 1]


def beat_track(
    y: np.ndarray | None = None,
    sr: float = 22050,
    onset_envelope: np.ndarray | None = None,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
    trim: bool = True,
    local_tempo: bool = False,
    bands: bool = True,
    high_weight: float = HIGH_WEIGHT,
) -> tuple[float, np.ndarray]:
    """Estimate the tempo and beat times (seconds) of ``y`` or of an onset envelope.

    Parameters
    ----------
    y : np.ndarray, optional
        Audio, mono ``(n,)`` or multichannel ``(..., n)`` (mixed down).
    sr : float
        Sample rate.
    onset_envelope : np.ndarray, optional
        Precomputed onset strength (``audiopipe.features.onset_strength``).
    hop_length : int
        Hop of the onset envelope in samples.
    start_bpm : float
        Centre of the log-normal tempo prior (one octave standard deviation).
    tightness : float
        How strictly beats follow the tempo (Ellis 2007's alpha).
    trim : bool
        Drop weak leading/trailing beats.
    local_tempo : bool
        Let the beat period follow a smoothed local tempo (tempo changes).
    bands : bool
        With ``y``: track on :func:`band_onset_strength` rather than the mel-mean envelope
        (ignored when ``onset_envelope`` is given).
    high_weight : float
        Weight of the cymbal band in :func:`band_onset_strength`.

    Returns
    -------
    tempo : float
        Global tempo in BPM (median of the local tempo with ``local_tempo``); 0 when there are no
        onsets (silence, fewer than 3 onset frames): no tempo.
    beat_times : np.ndarray, float64, seconds

    Examples
    --------
    >>> beat_track(y=np.zeros(22050, np.float32))
    (0.0, array([], dtype=float64))
    """
    if not (np.isfinite(start_bpm) and start_bpm > 0):
        raise ValueError(f"beat_track: start_bpm must be a finite number > 0, got {start_bpm}")
    if not (np.isfinite(tightness) and tightness >= 0):
        raise ValueError(f"beat_track: tightness must be a finite number >= 0, got {tightness}")
    if problem := tempo_range_problem(sr, hop_length, start_bpm):  # (faster tempi: unreachable)
        raise ValueError(f"beat_track: {problem} (start_bpm)")
    if onset_envelope is None:
        if y is None:
            raise ValueError("beat_track needs y or onset_envelope")
        if bands:
            onset_envelope = band_onset_strength(y, sr, hop_length, high_weight)
        else:
            onset_envelope = _onset_envelope(y, sr, hop_length)
    o = np.asarray(onset_envelope, dtype=np.float64).ravel()
    empty = (0.0, np.zeros(0, dtype=np.float64))
    if o.size < 3 or not np.any(o > 0) or not np.all(np.isfinite(o)):
        return empty
    fr = sr / hop_length
    if local_tempo:
        loc = tempo_estimate(o, sr, hop_length, start_bpm=start_bpm, aggregate=False)
        # a ~4 s running median in log-tempo removes isolated octave jumps
        from scipy.ndimage import median_filter

        lt = median_filter(np.log2(loc), size=max(3, int(4 * fr) | 1), mode="nearest")
        bpm_track = 2.0**lt
        tempo = float(np.median(bpm_track))
    else:
        tempo = float(tempo_estimate(o, sr, hop_length, start_bpm=start_bpm)[0])
        bpm_track = np.full(o.size, tempo)
    period = fr * 60.0 / bpm_track  # fractional frames per beat
    sd = np.std(o, ddof=1)
    onorm = o / (sd if sd > 0 else 1.0)
    localscore = _local_score(onorm, period)
    backlink, cumscore = _dp(localscore, period, tightness)
    beats = [_last_beat(cumscore)]
    while backlink[beats[-1]] >= 0:
        if backlink[beats[-1]] >= beats[-1]:  # cannot happen (_dp looks back); never loop
            raise RuntimeError(f"beat_track: backlink cycle at frame {beats[-1]}")
        beats.append(int(backlink[beats[-1]]))
    b = np.array(beats[::-1], dtype=np.int64)
    if trim:
        b = _trim(localscore, b)
    return tempo, b * hop_length / float(sr)


def pulse_clarity(
    onset_envelope: np.ndarray, tempo: float, sr: float = 22050, hop_length: int = 512,
    floor: float = CLARITY_FLOOR,
) -> float:
    """How clearly the onsets repeat at the beat period of ``tempo``: a figure in [0, 1].

    The mel-mean onset strength (:func:`audiopipe.features.onset_strength`, in dB), mean
    removed and smoothed as the beat tracker scores it (a unit-sum Gaussian of width
    period / 32), is autocorrelated (unbiased); the figure is its larger value at the two
    whole lags around the period, over its zero lag plus ``floor`` (dB²), clipped to [0, 1].
    Relative to the zero lag, stationary noise scores near 0 (its envelope does not
    repeat); the floor keeps the tiny, scale-free wiggles of a steady tone's or a DC
    offset's envelope from counting as a pulse. 0 when there is no tempo (silence); NaN when
    the clip is shorter than two beat periods (one period cannot show a repetition). The
    mel-mean envelope, not the band envelope the beats are tracked on: the bands' narrow
    envelopes gave a steady 440 Hz sine 0.26 (the mel-mean 0.00), clicks the same ~0.9.

    Examples
    --------
    >>> o = np.zeros(430); o[::22] = 10.0  # an onset every 22 frames = 117.5 BPM
    >>> bool(pulse_clarity(o, 117.5) > 0.9), pulse_clarity(np.zeros(430), 0.0)
    (True, 0.0)
    """
    o = np.asarray(onset_envelope, np.float64).ravel()
    if not (np.isfinite(tempo) and tempo > 0) or o.size == 0 or not np.all(np.isfinite(o)):
        return 0.0
    p = sr / hop_length * 60.0 / tempo
    n = o.size
    if n < 2 * p:
        return float("nan")
    k = np.arange(-np.round(p), np.round(p) + 1)
    x = _local_score(o - o.mean(), np.array([p])) / np.exp(-0.5 * (k * 32.0 / p) ** 2).sum()
    m = 1 << int(np.ceil(np.log2(2 * n)))
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, m)) ** 2, m)[:n] / (n - np.arange(n))
    peak = max((ac[lag] for lag in {int(np.floor(p)), int(np.ceil(p))} if 0 < lag < n), default=0.0)
    return float(np.clip(peak / (ac[0] + floor), 0.0, 1.0))


# --------------------------------------------------------------------------- stage


def _plot(fh: Any, onset: np.ndarray, beats: np.ndarray, fr: float, title: str) -> None:
    from audiopipe.stages._common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3))
    t = np.arange(onset.size) / fr
    ax.plot(t, onset, lw=0.8, label="onset strength")
    ax.vlines(beats, 0, onset.max() if onset.size else 1, color="r", alpha=0.6, label="beats")
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=80)
    plt.close(fig)


class Beats(ClipStage):
    """Tempo and beat times of every clip (tables ``beats``, ``tempo``)."""

    name = "beats"
    summary = (
        "Onset strength → global (or local) tempo → dynamic-programming beats (Ellis 2007), "
        "clip by clip; tables `beats` (clip_id, time_s) and `tempo` (clip_id, bpm, n_beats, "
        "pulse_clarity, error); pulse_clarity (0-1: how clearly the onsets repeat at the beat "
        "period; near 0 for noise, steady tones, silence) says how far to trust the tempo; "
        "bpm is null for a clip without onsets (silence, shorter than 3 frames) and for a "
        "clip that cannot be read (its `tempo` row has the error)."
    )
    params = (
        Param("sr", "int", 22050, "analysis sample rate (Hz)", low=1000, from_dataset="sample_rate"),
        Param(
            "hop_length", "int", 512, "onset-envelope hop (samples)", low=1,
            from_dataset="hop_length",
        ),
        Param("start_bpm", "float", 120.0, "centre of the log-normal tempo prior", low=1),
        Param("tightness", "float", 100.0, "how strictly beats follow the tempo", low=0),
        Param("local_tempo", "bool", False, "let the period follow a smoothed local tempo"),
        Param("bands", "bool", True, "onsets summed over kick/snare/cymbal bands (drums)"),
        Param("high_weight", "float", HIGH_WEIGHT, "weight of the cymbal band (> 3 kHz)", low=0),
        Param("clips", "list", None, "only these clip ids (default: every clip)"),
    )
    tables = ("tempo", "beats")  # the first has one row per clip: what is done
    version = "3"  # 2: tempo.pulse_clarity; 3: bpm null without onsets (was 0) or on error
    shard_size = 32

    def check(self, params: dict[str, Any]) -> list[str]:
        # refused only where the starting tempo itself is out of reach (a 2 kHz recording at
        # hop 512 tracks up to 234 BPM: fine for the default 120)
        problem = tempo_range_problem(params["sr"], params["hop_length"], params["start_bpm"])
        return [f"{problem} (start_bpm)"] if problem else []

    @property
    def schemas(self) -> dict[str, Any]:  # type: ignore[override]
        import pyarrow as pa

        return {
            "beats": pa.schema([("clip_id", pa.string()), ("time_s", pa.float64())]),
            "tempo": pa.schema(
                [
                    ("clip_id", pa.string()),
                    ("bpm", pa.float64()),
                    ("n_beats", pa.int64()),
                    ("pulse_clarity", pa.float64()),
                    ("error", pa.string()),
                ]
            ),
        }

    def select(self, ctx: StageContext) -> list[str]:
        ids = ctx.clip_ids()
        want = set(ctx.params["clips"] or ())
        return [c for c in ids if c in want] if want else ids

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        p = ctx.params
        sr, hop = p["sr"], p["hop_length"]
        kw = {k: p[k] for k in ("start_bpm", "tightness", "local_tempo")}
        out = ClipBatch(rows={"beats": [], "tempo": []})
        for cid in clip_ids:
            try:
                y, _ = ctx.ds.load_audio(cid, sr=sr)
                if p["bands"]:
                    onset = band_onset_strength(y, sr, hop, p["high_weight"])
                else:
                    onset = _onset_envelope(y, sr, hop)
                tempo, bt = beat_track(onset_envelope=onset, sr=sr, hop_length=hop, **kw)
                mel = _onset_envelope(y, sr, hop) if p["bands"] else onset
                clarity = pulse_clarity(mel, tempo, sr, hop)
            except Exception as err:  # noqa: BLE001  (errors are data)
                out.failed += 1
                out.rows["tempo"].append(
                    {"clip_id": cid, "bpm": None, "n_beats": 0,
                     "pulse_clarity": float("nan"), "error": f"{type(err).__name__}: {err}"}
                )
                continue
            out.rows["beats"] += [{"clip_id": cid, "time_s": float(t)} for t in bt]
            out.rows["tempo"].append(  # tempo 0: no onsets, no tempo (null, not 0 BPM)
                {"clip_id": cid, "bpm": tempo if tempo > 0 else None, "n_beats": int(bt.size),
                 "pulse_clarity": clarity, "error": None}
            )
            if out.plot is None and bt.size:
                out.plot = (cid, onset, bt, tempo)
        return out

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        from audiopipe.stages._common import metric_rows

        t = ctx.ds.table("tempo", ["error", "n_beats"]).to_pydict()
        m = {
            "n_clips": len(t["error"]),
            "n_ok": sum(e is None for e in t["error"]),
            "n_beats": int(sum(t["n_beats"])),
        }
        return metric_rows("beats", "dp", m, evaluation="count", run_id=ctx.run_id)

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Any]:
        cid, onset, bt, tempo = batch.plot
        fr = ctx.params["sr"] / ctx.params["hop_length"]
        return {"beats": lambda fh: _plot(fh, onset, bt, fr, f"{cid[:12]}: {tempo:.1f} BPM")}

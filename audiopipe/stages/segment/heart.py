"""Heart mode of the ``segment`` stage: the LR-HSMM of :mod:`audiopipe.stages.heart`, trained
from the dataset's labelled recordings.

- **References** (:func:`read_clip_references`): ``reference`` and, optionally, ``points``
  name CirCor-style ``.tsv`` interval files (a folder of them, or one file) or a
  PASCAL-style point CSV (``file``/``path``, ``sound``/``label``, ``time_s`` or ``sample``
  with ``sample_rate``), read by :func:`audiopipe.stages.heart.read_references`. A reference
  names a clip when the clip's uri ends with its name, with or without the audio extension
  (``85343_AV`` names ``.../85343_AV.wav``; ``audio/2011.flac`` names ``.../audio/2011.flac``).
- **Fit** (:func:`fit_heart`): every referenced clip is segmented by a model trained on
  the *other patients* only (grouped cross-validation: leave-one-patient-out when there
  are at most ``n_splits`` patients, else grouped ``n_splits``-fold; the patient is the
  ``group_column`` label, or the reference name up to its first ``_``, CirCor's patient id;
  PASCAL's names have none, so each recording is its own group). Those out-of-fold
  segments are the referenced clips' rows (``origin = cv``) and give the metrics: frame
  accuracy over annotated time (interval references), S1/S2/both-sounds F-measure within
  ``tolerance_s`` (all references; sounds found where the reference skips beats are not
  scored, :func:`audiopipe.stages.heart.annotated_stretches`). The final model, trained on every referenced clip, is
  saved with skops and segments every other clip (``origin = model``).
- **Parameters** passed to the estimator (:data:`ESTIMATOR_PARAMS`, same names): ``C``,
  ``emission``, ``min_bpm``, ``max_bpm``, ``n_candidates``, ``refine``, ``identity_check``
  (the S1/S2 swap check, on by default), round 8's options of that check
  (``identity_spread_weight``, ``identity_width_weight``: weights of the spread and width
  cues, 0 by default; ``identity_compare``: judge the path decoded with S1 and S2
  exchanged by its own cues, off by default), round 9's (``identity_regularity_weight``,
  0 by default; ``identity_regularity_margin``, 0.5, and ``identity_regularity: false``
  for the estimator's ``identity_regularity_margin=None``) and ``random_state``; the others keep the
  estimator's defaults (so do these, unless set: a stored run's outputs do not change).
- **Predict**: every clip gets segments from its first sample to its last (S1, systole, S2,
  diastole), each with the mean posterior of its state as ``confidence``; a clip without
  sound (:func:`check_sound`) gets none and an ``errors`` row, as in periodic mode.

Examples
--------
>>> clip_key("/data/heart/85343_AV.wav")[-3:]
['data/heart/85343_AV', 'heart/85343_AV', '85343_AV']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from audiopipe.stages.base import ClipBatch, StageContext

__all__ = [
    "clip_key",
    "read_clip_references",
    "fit_heart",
    "estimator",
    "process_heart",
    "process_periodic",
    "check_sound",
    "NoSound",
    "SILENCE_PEAK",
    "SOUND_CONTRAST",
    "sound_contrast",
    "sound_level",
    "heart_metrics",
]

#: HeartSegmenter parameters the stage declares (same names)
ESTIMATOR_PARAMS = ("C", "emission", "min_bpm", "max_bpm", "n_candidates", "refine",
                    "identity_check", "identity_spread_weight", "identity_width_weight",
                    "identity_compare", "identity_regularity_weight",
                    "identity_regularity_margin", "random_state")


def clip_key(uri: str) -> list[str]:
    """Every trailing part of ``uri``, then the same without the file extension."""
    from audiopipe.stages._common import uri_tails

    tails = uri_tails(uri)
    stem = uri.rsplit(".", 1)[0] if "." in uri.rsplit("/", 1)[-1] else uri
    return tails + uri_tails(stem) if stem != uri else tails


def read_clip_references(ctx: StageContext) -> dict[str, dict]:
    """Per clip id: its reference (``kind``, ``intervals``, ``points``) and ``name``."""
    from audiopipe.stages._common import StageInputError, uri_matcher
    from audiopipe.stages.heart import read_references

    p = ctx.params
    refs: dict[str, dict] = {}
    for key in ("reference", "points"):
        if not p[key]:
            continue
        if "://" in str(p[key]):
            raise StageInputError(f"{key}: heart references are read from a local path, got "
                                  f"{p[key]}")
        try:
            refs.update(read_references(p[key], p["sample_rate"]))
        except (OSError, ValueError, KeyError) as err:
            raise StageInputError(f"{key} {p[key]}: {err}") from None
    match = uri_matcher(ctx.ds, keys=clip_key)
    out: dict[str, dict] = {}
    for name, ref in refs.items():
        cid = match(name)
        if cid is not None and cid not in out:
            out[cid] = {**ref, "name": name}
    if not out:
        raise StageInputError(
            f"dataset {ctx.ds.name!r}: no clip is named by the heart references "
            f"({len(refs)} recordings in {p['reference'] or ''} {p['points'] or ''})".strip()
        )
    return out


def reference_id(refs: dict[str, dict]) -> list:
    """JSON-able identity of the references (the model key)."""
    return sorted(
        (c, r["name"], [list(x) for x in r["intervals"]],
         {k: np.round(v, 4).tolist() for k, v in r["points"].items()})
        for c, r in refs.items()
    )


def estimator(params: dict[str, Any]) -> Any:
    """A :class:`~audiopipe.stages.heart.HeartSegmenter` with the stage's parameters."""
    from audiopipe.stages.heart import HeartSegmenter

    kw = {k: params[k] for k in ESTIMATOR_PARAMS}
    if not params["identity_regularity"]:  # the estimator's "never decides alone"
        kw["identity_regularity_margin"] = None
    return HeartSegmenter(**kw)


def _groups(ctx: StageContext, refs: dict[str, dict]) -> list[str]:
    col = ctx.params["group_column"]
    if col:
        from audiopipe.stages._common import label_column

        vals = dict(zip(ctx.clip_ids(), label_column(ctx.ds, col, min_classes=1), strict=True))
        return [str(vals[c]) for c in refs]
    return [r["name"].rsplit("/", 1)[-1].split("_")[0] for r in refs.values()]


def fit_heart(ctx: StageContext) -> dict[str, Any]:
    """Out-of-fold analyses of the referenced clips, metrics, the final model and what was
    warned about (``warnings``: the run report lists them)."""
    from sklearn.base import clone

    from audiopipe.stages.heart import cross_val_segments

    p = ctx.params
    refs = read_clip_references(ctx)
    ids = list(refs)
    recs = [ctx.ds.load_audio(c) for c in ids]
    intervals = [refs[c]["intervals"] for c in ids]
    groups = _groups(ctx, refs)
    est = estimator(p)
    oof: dict[str, dict] = {}
    notes: list[str] = []
    if len(set(groups)) >= 2:
        res = cross_val_segments(est, recs, intervals, groups, n_splits=p["n_splits"], full=True)
        oof = dict(zip(ids, res, strict=True))
    else:
        notes.append(f"segment heart: the references name one patient ({groups[0]}): no "
                     "grouped cross-validation, no metrics")
        warnings.warn(notes[-1], RuntimeWarning, stacklevel=2)
    final = clone(est).fit(recs, intervals)
    metrics = heart_metrics(refs, {c: a["segments"] for c, a in oof.items()}, p["tolerance_s"])
    if metrics:
        metrics["n_patients"] = float(len(set(groups)))
    return {"reference": refs, "oof": oof, "model": final, "metrics": metrics, "warnings": notes}


#: a recording whose samples all stay within one 16-bit step of zero (-90 dBFS) holds no
#: sound: the heart and periodic models would decode beats in it anyway
SILENCE_PEAK = 1.0 / 32768
#: heart sounds stand out of the recording's own floor, at any level: the mean over the
#: 25-400 Hz bins of a frame's power, each bin over its floor (its quietest
#: :data:`SOUND_FLOOR_PERCENTILE` % of frames), reaches this in the recording's loudest
#: :data:`SOUND_LOUD_S` of frames (:func:`sound_contrast`). Stationary noise stays near 4.5
#: (1 / 0.22) whatever its colour and level, since each bin is measured against itself.
#: Chosen on split A's tuning recordings (also with 35 s of noise floor after 5 s of each,
#: and hard-clipped at gains 8-30) and generated noises (``benchmarks/tune_heart_sound.py``,
#: round 3: heart >= 23.9, noise <= 8.3; held out: 26.0 / 8.9); the corpora's music and
#: speech measure 31.6 or more (a bird song with nothing under 400 Hz: 7.1, refused)
SOUND_CONTRAST = 14.0
#: how much of a recording must stand out (seconds of frames): a few beats' S1 and S2 (about
#: 0.1 s each), not one bump or three clicks in a floor; a recording with fewer frames than
#: four times this needs a quarter of them
SOUND_LOUD_S = 0.5
#: ... and at least this share of a long recording's frames: the loudest 0.5 s of a long
#: stationary noise reach higher by chance (10 minutes of white noise: 9.96 with 0.5 s,
#: against 8.3 at most for 5-20 s of noise), its loudest 1 % do not
SOUND_LOUD_SHARE = 0.01
#: the band, analysis rate, window, hop and floor percentile of :func:`sound_contrast` (the
#: band and rate of the heart model's features, :mod:`audiopipe.stages.heart.features`;
#: 64 ms windows: 24 bins 15.6 Hz apart in the band)
SOUND_BAND_HZ = (25.0, 400.0)
SOUND_SR = 1000
SOUND_WINDOW_S = 0.064
SOUND_HOP_S = 0.02
SOUND_FLOOR_PERCENTILE = 20.0


class NoSound(ValueError):
    """A recording with no sound to segment (its ``errors`` row says so)."""

    kind = "NoSound"


def _band_spectra(
    y: np.ndarray, sr: int, window_s: float = SOUND_WINDOW_S
) -> tuple[np.ndarray, np.ndarray]:
    """``(power, rms)``: per ``window_s`` frame (hop :data:`SOUND_HOP_S`) of ``y``
    at :data:`SOUND_SR` band-passed to :data:`SOUND_BAND_HZ`, its Hann-windowed power in
    the band's bins and its band RMS; frames of silence left out: those over which ``y``
    stays constant (digital silence or a DC offset, and the band-pass filter's ringing into
    them), or with a band RMS under 1 % of one 16-bit step."""
    from audiopipe.stages.heart.features import _band, resample

    y = np.asarray(y, dtype=np.float64)
    moves = np.r_[0, np.cumsum(np.diff(y) != 0)]  # (changes of y up to each sample)
    x = resample(y - y.mean(), sr, SOUND_SR) if y.size else y
    n = int(round(window_s * SOUND_SR))
    hop = int(round(SOUND_HOP_S * SOUND_SR))
    f = np.fft.rfftfreq(n, 1.0 / SOUND_SR)
    keep = (f >= SOUND_BAND_HZ[0]) & (f <= SOUND_BAND_HZ[1])
    if len(x) < n:
        return np.zeros((0, int(keep.sum()))), np.zeros(0)
    x = _band(x, SOUND_SR, *SOUND_BAND_HZ)
    starts = np.arange(0, len(x) - n + 1, hop)
    win = np.hanning(n)
    power, rms, sound = [], [], []
    for i in range(0, len(starts), 4096):  # (bounded memory on long recordings)
        fr = x[starts[i : i + 4096, None] + np.arange(n)]
        rms.append(np.sqrt(np.mean(fr**2, axis=1)))
        power.append(np.abs(np.fft.rfft(fr * win, axis=1)[:, keep]) ** 2)
        a = np.minimum(starts[i : i + 4096] * sr // SOUND_SR, len(y) - 1)
        b = np.minimum(-(-(starts[i : i + 4096] + n) * sr // SOUND_SR), len(y)) - 1
        sound.append((moves[b] > moves[a]) & (rms[-1] > 0.01 * SILENCE_PEAK))
    on = np.concatenate(sound)
    return np.concatenate(power)[on], np.concatenate(rms)[on]


def _measure(
    y: np.ndarray, sr: int, window_s: float = SOUND_WINDOW_S,
    floor_q: float = SOUND_FLOOR_PERCENTILE,
) -> tuple[float, float, float]:
    """``(contrast, level, seconds)`` of :func:`sound_contrast` and :func:`sound_level`, and
    how many seconds of frames they take as the loudest."""
    power, rms = _band_spectra(y, sr, window_s)
    k = max(int(round(SOUND_LOUD_S / SOUND_HOP_S)), int(np.ceil(SOUND_LOUD_SHARE * len(rms))))
    k = max(1, min(k, len(rms) // 4))
    level = (float(20 * np.log10(np.sqrt(np.mean(np.sort(rms)[-k:] ** 2))))
             if rms.size else float("-inf"))
    floor = np.percentile(power, floor_q, axis=0) if len(power) >= 2 else None
    if floor is None or not (floor > 0).any():
        return float("nan"), level, k * SOUND_HOP_S
    s = np.mean(power[:, floor > 0] / floor[floor > 0], axis=1)
    return float(np.partition(s, -k)[-k]), level, k * SOUND_HOP_S


def sound_contrast(
    y: np.ndarray, sr: int, window_s: float = SOUND_WINDOW_S,
    floor_q: float = SOUND_FLOOR_PERCENTILE,
) -> float:
    """How far the loudest :data:`SOUND_LOUD_S` of frames of ``y`` stand out of its floor in
    the heart sounds' band: per ``window_s`` frame, the mean over the band's bins of the power
    over that bin's floor (its ``floor_q``-th percentile over the frames); the
    :data:`SOUND_LOUD_S`-th loudest frame's value (of a quarter of the frames when fewer
    than four times that; nan with fewer than 2 frames of sound).

    A heart sound lasts 50-150 ms, once or twice a beat: its frames stand far above the
    diastole's in every low bin; each bin of a stationary noise (any colour, any level)
    stays near its own floor, so its frames average near 4.5.

    Examples
    --------
    >>> sr = 4000
    >>> noise = np.random.default_rng(0).standard_normal(10 * sr)
    >>> bool(sound_contrast(0.3 * noise, sr) < SOUND_CONTRAST)
    True
    """
    return _measure(y, sr, window_s, floor_q)[0]


def sound_level(y: np.ndarray, sr: int) -> float:
    """The band RMS of the loudest :data:`SOUND_LOUD_S` of frames of ``y`` (of the loudest
    quarter when fewer than four times that), dBFS; -inf when every frame is silent.

    Examples
    --------
    >>> round(sound_level(0.1 * np.sin(2 * np.pi * 100 * np.arange(4000) / 4000), 4000))
    -23
    """
    return _measure(y, sr)[1]


def check_sound(y: np.ndarray, sr: int) -> None:
    """:class:`NoSound` when every sample of ``y`` is within :data:`SILENCE_PEAK` of zero,
    or when nothing in it stands out of its floor in the heart sounds' band
    (:func:`sound_contrast` below :data:`SOUND_CONTRAST`), at any level: the heart and
    periodic models would decode beats in stationary noise.

    Examples
    --------
    >>> loud_noise = 0.3 * np.random.default_rng(0).standard_normal(10 * 4000)
    >>> try:
    ...     check_sound(loud_noise, 4000)
    ... except NoSound as err:
    ...     print(str(err)[:46])
    no sound to segment in 25-400 Hz (the heart so
    """
    peak = float(np.max(np.abs(y))) if np.size(y) else 0.0
    if peak <= SILENCE_PEAK:
        raise NoSound(f"no sound to segment: the recording ({np.size(y) / sr:.2f} s) peaks at "
                      f"{peak:.1e}, within one 16-bit step of zero")
    contrast, level, loud_s = _measure(y, sr)
    if np.isnan(contrast):
        raise NoSound(
            f"no sound to segment: the recording ({np.size(y) / sr:.2f} s) has fewer than two "
            f"{SOUND_WINDOW_S * 1000:g} ms frames of sound in {SOUND_BAND_HZ[0]:g}-"
            f"{SOUND_BAND_HZ[1]:g} Hz (the heart sounds' band): too short to tell a sound "
            "from its floor"
        )
    if contrast < SOUND_CONTRAST:
        raise NoSound(
            f"no sound to segment in {SOUND_BAND_HZ[0]:g}-{SOUND_BAND_HZ[1]:g} Hz (the heart "
            f"sounds' band): in the recording ({np.size(y) / sr:.2f} s; its loudest "
            f"{loud_s:.2f} s there at {level:.0f} dBFS) nothing stands out of its noise "
            f"floor (those frames {contrast:.1f}x the band's floor, stationary noise about "
            f"4.5x; a heart sound: >= {SOUND_CONTRAST}x)"
        )


def process_periodic(
    ctx: StageContext, clip_ids: Sequence[str], rows: Callable[..., list], sound_s: float
) -> ClipBatch:
    """``segments`` rows of the periodic model; a clip that cannot be read, has no sound, or
    in which the model finds no heart sound (shorter than a beat) is an ``errors`` row and
    the others are segmented (errors are data, as in :func:`process_heart`)."""
    from audiopipe.stages._common import error_row
    from audiopipe.stages.segment.periodic import PeriodicSegmenter

    model = PeriodicSegmenter(sound_s=sound_s)
    out = ClipBatch(rows={"segments": []})
    for cid in clip_ids:
        try:
            y, sr = ctx.ds.load_audio(cid)
            check_sound(y, sr)
            segs = model.predict_segments(y, sr)
            if not segs:
                raise NoSound(f"no heart sound found in the recording ({len(y) / sr:.2f} s)")
        except Exception as err:  # noqa: BLE001  (errors are data)
            out.failed += 1
            out.errors.append(error_row("segment", cid, ctx.ds.clip_uri(cid) or "", err, ctx.run_id))
            continue
        out.rows["segments"] += rows(cid, segs, "periodic", "periodic", ctx.run_id)
        if out.plot is None:
            out.plot = (cid, None, 0.01, None, segs)
    return out


def process_heart(
    ctx: StageContext, clip_ids: Sequence[str], state: Any, rows: Callable[..., list]
) -> ClipBatch:
    """``segments`` rows of the clips: out-of-fold for referenced clips, else the final
    model's; ``rows`` makes the table rows (the stage's one row format)."""
    from audiopipe.stages._common import error_row

    out = ClipBatch(rows={"segments": []})
    for cid in clip_ids:
        if cid in state.oof:
            a, origin = state.oof[cid], "cv"
        else:
            try:
                y, sr = ctx.ds.load_audio(cid)
                check_sound(y, sr)  # (the model would decode beats in silence)
                a, origin = state.model.analyse(y, sr), "model"
            except Exception as err:  # noqa: BLE001  (errors are data)
                out.failed += 1
                out.errors.append(error_row("segment", cid, ctx.ds.clip_uri(cid) or "", err, ctx.run_id))
                continue
        segs = [(s, e, k, c) for (s, e, k), c in zip(a["segments"], a["confidence"], strict=True)]
        out.rows["segments"] += rows(cid, segs, "heart", origin, ctx.run_id)
        if out.plot is None or (out.plot[3] is None and cid in state.reference):
            out.plot = (cid, a, state.model.feature_rate, state.reference.get(cid), None)
    return out


def heart_metrics(
    refs: dict[str, dict], segments: dict[str, list], tolerance_s: float
) -> dict[str, float]:
    """Mean scores of the clips in ``segments`` against their references (keys present in
    any clip's scores; ``frame_accuracy`` over interval references only), ``n_clips``."""
    from audiopipe.stages.heart import score_recording

    per = [score_recording(refs[c], s, window=tolerance_s) for c, s in segments.items()]
    if not per:
        return {}
    keys = sorted({k for x in per for k in x})
    out = {k: float(np.mean([x[k] for x in per if k in x])) for k in keys}
    out["n_clips"] = float(len(per))
    out["n_interval_clips"] = float(sum("frame_accuracy" in x for x in per))
    return out


def plot(fh: Any, cid: str, analysis: dict, feature_rate: float, ref: dict | None,
         title: str) -> None:
    """:func:`~audiopipe.stages.heart.plot_heart` of about 5 s of one clip."""
    from audiopipe.stages.heart import plot_heart

    start = 0.0
    if ref is not None:
        pts = np.r_[ref["points"].get("S1", []), ref["points"].get("S2", [])]
        start = max(0.0, float(pts.min()) - 0.5) if pts.size else 0.0
    F = analysis["features"]
    plot_heart(
        fh,
        F[:, 0] if F.size else np.zeros(len(F)),
        feature_rate,
        analysis["segments"],
        reference=ref["intervals"] if ref is not None and ref["kind"] == "intervals" else None,
        points=ref["points"] if ref is not None else None,
        title=f"{title}: {analysis['heart_rate_bpm']:.0f} bpm",
        span=(start, start + 5.0),
    )

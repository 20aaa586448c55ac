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
#: heart sounds stand out of the noise floor: the 90th percentile of the 20 ms frames' RMS
#: in 25-400 Hz over their median (:func:`sound_contrast`) is at least this in a recording
#: with a heart sound; stationary noise of any level and colour (white, pink, brown, blue,
#: with a few clicks) stays under it. Chosen on split A's tuning recordings and generated
#: noises (``benchmarks/tune_heart_sound.py``, round 1: heart >= 2.11, noise <= 1.65)
SOUND_CONTRAST = 1.8
#: ... and a recording is refused for it only when it is quiet too: its loudest
#: :data:`SOUND_LOUD_S` of 20 ms frames in 25-400 Hz below this (dBFS RMS). A sound stands out
#: of the floor over the loudest seconds, not always over the whole recording (a few seconds
#: of heart sounds in a long quiet take measured 1.46), and music or speech near full scale
#: is not "no sound" (review 10). 60 dB below full scale is the bottom of a 10-bit range, set
#: by that argument, not tuned
SOUND_QUIET_DBFS = -60.0
#: how much of a recording must be loud for :data:`SOUND_QUIET_DBFS` (seconds): a few beats'
#: S1 and S2 (about 0.1 s each), not one bump in a -80 dBFS floor (the loudest frame alone let
#: it pass, review 11), nor a tenth of the recording (a long quiet take refused 5 of 16)
SOUND_LOUD_S = 0.5
#: the band, frame length and percentile of :func:`sound_contrast`
SOUND_BAND_HZ = (25.0, 400.0)
SOUND_FRAME_S = 0.02
SOUND_PERCENTILE = 90.0


class NoSound(ValueError):
    """A recording with no sound to segment (its ``errors`` row says so)."""

    kind = "NoSound"


def sound_contrast(
    y: np.ndarray, sr: int, frame_s: float = SOUND_FRAME_S, q: float = SOUND_PERCENTILE
) -> float:
    """How far the loud frames of ``y`` stand out of its noise floor: the ``q``-th percentile
    of the RMS of ``frame_s`` frames of ``y`` band-passed to :data:`SOUND_BAND_HZ`, over
    their median (frames of digital silence left out; nan when none is left).

    A heart sound lasts 50-150 ms, once or twice a beat: its frames stand well above the
    diastole's; a stationary noise floor's frames all have about the same RMS (about 1.3
    for white noise, whatever its level).
    """
    rms = band_frame_rms(y, sr, frame_s)
    floor = float(np.median(rms)) if rms.size else 0.0
    if floor <= 0.0:
        return float("nan")
    return float(np.percentile(rms, q)) / floor


def band_frame_rms(y: np.ndarray, sr: int, frame_s: float = SOUND_FRAME_S) -> np.ndarray:
    """RMS of the ``frame_s`` frames of ``y`` band-passed to :data:`SOUND_BAND_HZ`, less the
    frames of silence (a band RMS under 1 % of one 16-bit step: digital silence, or a DC
    offset alone, which the band-pass removes)."""
    from scipy.signal import butter, sosfiltfilt

    y = np.asarray(y, dtype=np.float64)
    n = max(int(round(frame_s * sr)), 1)
    hi = min(SOUND_BAND_HZ[1], 0.45 * sr)
    if len(y) < 2 * n or hi <= SOUND_BAND_HZ[0]:
        return np.zeros(0)
    sos = butter(4, [SOUND_BAND_HZ[0], hi], "bandpass", fs=sr, output="sos")
    k = len(y) // n
    band = sosfiltfilt(sos, y, padlen=min(3 * (2 * len(sos) + 1), len(y) - 1))
    rms = np.sqrt(np.mean(band[: k * n].reshape(k, n) ** 2, axis=1))
    return rms[rms > 0.01 * SILENCE_PEAK]


def check_sound(y: np.ndarray, sr: int) -> None:
    """:class:`NoSound` when every sample of ``y`` is within :data:`SILENCE_PEAK` of zero,
    or when it is quiet (:data:`SOUND_QUIET_DBFS`) and nothing in it stands out of its noise
    floor (:func:`sound_contrast` below :data:`SOUND_CONTRAST`): the heart and periodic
    models would decode beats in the noise."""
    peak = float(np.max(np.abs(y))) if np.size(y) else 0.0
    if peak <= SILENCE_PEAK:
        raise NoSound(f"no sound to segment: the recording ({np.size(y) / sr:.2f} s) peaks at "
                      f"{peak:.1e}, within one 16-bit step of zero")
    rms = band_frame_rms(y, sr)
    k = max(int(round(SOUND_LOUD_S / SOUND_FRAME_S)), 1)  # the k-th loudest frame
    loud = float(np.partition(rms, -k)[-k]) if rms.size >= k else 0.0
    loudest = 20 * np.log10(max(loud, 1e-12))
    if loudest >= SOUND_QUIET_DBFS:
        return
    contrast = sound_contrast(y, sr)
    if not contrast >= SOUND_CONTRAST:  # (nan: too short to tell a sound from the floor)
        raise NoSound(
            f"no sound to segment in {SOUND_BAND_HZ[0]:g}-{SOUND_BAND_HZ[1]:g} Hz (the heart "
            f"sounds' band): the recording ({np.size(y) / sr:.2f} s) is quiet there (its "
            f"loudest {SOUND_LOUD_S:g} s at {loudest:.0f} dBFS at most, under "
            f"{SOUND_QUIET_DBFS:g}) and nothing "
            f"in it stands out of its noise floor (the loudest tenth of its frames "
            f"{contrast:.2f}x over their median; a heart sound: >= {SOUND_CONTRAST}x)"
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
            out.errors.append(error_row("segment", cid, "", err, ctx.run_id))
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
                out.errors.append(error_row("segment", cid, "", err, ctx.run_id))
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

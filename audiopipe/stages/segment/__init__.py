"""Stage ``segment``: split recordings into homogeneous (start, end, label) segments.

Four modes, each a module of this package:

- ``supervised`` (:mod:`.supervised`): a frame classifier whose posteriors are smoothed by
  a sticky HMM into labelled segments. Training labels come from an events table (path,
  onset_s, offset_s, label); frames outside every event get ``background``. Clips with
  events are segmented by clip-level K-fold CV (their segments are out-of-fold
  predictions, scored against the events: ``metrics.evaluation = cv``); every other clip by
  the model fitted on all of them.
- ``novelty`` (:mod:`.novelty`): Foote's checkerboard kernel on the self-similarity matrix
  of frame features, peaks → boundaries; unsupervised, labels ``seg0, seg1, ...``; scored
  against the events when given (``evaluation = reference``).
- ``periodic`` (:mod:`.periodic`): a two-state (S1/S2) periodic model for heart sounds,
  scored against reference S1/S2 times when given (``evaluation = reference``).
- ``heart`` (:mod:`.heart`): supervised S1/systole/S2/diastole segmentation (Springer's
  logistic-regression HSMM, :mod:`audiopipe.stages.heart`) trained from the dataset's
  recordings named by CirCor ``.tsv`` interval or PASCAL point references; referenced clips
  are segmented out-of-fold by patient-grouped CV (``evaluation = cv``), the others by the
  final model; every recording is covered from start to end. Its estimator's options are
  stage parameters of the same names (:data:`.heart.ESTIMATOR_PARAMS`), among them the
  S1/S2 identity check's (``identity_check``; round 8's ``identity_spread_weight``,
  ``identity_width_weight`` and ``identity_compare``, off by default; round 9's
  ``identity_regularity_weight``, off, and ``identity_regularity`` with its margin, on).

Segmentation is clip by clip: a run segments only clips that are new since the last one
(and drops removed clips), unless the parameters, the code or - in supervised mode, which
needs 2 labelled clips - the labelled clips changed. Evaluation (:mod:`.evaluate`):
mir_eval's boundary F-measure at ±0.5 s and ±3 s and frame accuracy.

Outputs: ``segments`` (clip_id, start_s, end_s, label, confidence, mode, origin, run_id),
``metrics``, the supervised model ``segment.skops`` and a PNG of the first clip segmented
(feature image, reference, estimate) in the run's folder.

Examples
--------
>>> import numpy as np
>>> from audiopipe.stages.segment.novelty import novelty_boundaries
>>> X = np.r_[np.zeros((50, 2)), np.ones((50, 2))] + 0.01
>>> novelty_boundaries(X, hop_s=0.1, kernel_s=2.0)
array([5.])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
from audiopipe.stages.params import Param

__all__ = ["Segment"]

#: the method API, imported on first use (scikit-learn and scipy are slow to import)
_LAZY = {
    "viterbi": "audiopipe.stages._viterbi",
    "sticky_transition": "audiopipe.stages.segment.supervised",
    "labels_to_segments": "audiopipe.stages.segment.supervised",
    "FrameSegmenter": "audiopipe.stages.segment.supervised",
    "SegmentWarning": "audiopipe.stages.segment.supervised",
    "out_of_fold_segments": "audiopipe.stages.segment.supervised",
    "novelty_curve": "audiopipe.stages.segment.novelty",
    "novelty_boundaries": "audiopipe.stages.segment.novelty",
    "PeriodicSegmenter": "audiopipe.stages.segment.periodic",
    "synthetic_pcg": "audiopipe.stages.segment.periodic",
    "evaluate_segments": "audiopipe.stages.segment.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TRUSTED = (
    "audiopipe.stages.segment.supervised.FrameSegmenter",
    "audiopipe.stages.heart.model.HeartSegmenter",
)
SOUND_S = 0.1  # duration the periodic model reports for each S1 / S2 sound


@dataclass
class _Fitted:
    """What :meth:`Segment.fit` leaves for the clips: references, model, CV segments."""

    hop_s: float = 0.0
    reference: dict[str, list] = field(default_factory=dict)
    model: Any = None
    model_id: str | None = None
    model_uri: str | None = None
    oof: dict[str, list] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: warnings of the fit (e.g. a CV fold lacking labels), listed in the run's report
    warnings: list[str] = field(default_factory=list)


class Segment(ClipStage):
    """Segments of every clip (table ``segments``); see the package docstring."""

    name = "segment"
    summary = (
        "Homogeneous (start, end, label) segments: supervised frames + sticky HMM (events "
        "file), Foote novelty, or a periodic S1/S2 heart-sound model; table `segments`."
    )
    params = (
        Param("mode", "str", "supervised", "how to segment",
              choices=("supervised", "novelty", "periodic", "heart")),
        Param("events", "path", None,
              "CSV (path, onset_s, offset_s, label): training labels (supervised) or reference"),
        Param("background", "str", "background", "label of frames outside every event"),
        Param("feature", "list", ("mfcc",), "frame feature(s) (concatenated)"),
        Param("context_s", "float", 0.5, "moving-average context appended to frames (s)", low=0),
        Param("min_duration_s", "float", 1.0, "expected shortest segment (s)", low=0.001),
        Param("kernel_s", "float", 4.0, "width of the checkerboard kernel (novelty, s)",
              low=0.001),
        Param("peak_delta", "float", 0.1, "minimum novelty peak prominence (relative)", low=0),
        Param("reference", "path", None,
              "S1/S2 reference: CSV (path, time_s, label) scoring periodic mode; heart mode's "
              "training labels: a folder of CirCor .tsv interval files, one .tsv, or a point "
              "CSV (file|path, sound|label, time_s|sample)"),
        Param("points", "path", None,
              "heart: a second reference (e.g. PASCAL S1/S2 points CSV) merged with reference"),
        Param("sample_rate", "float", None,
              "heart: rate (Hz) of a point CSV's sample column when it has no time_s", low=1),
        Param("group_column", "str", None,
              "heart: label column naming each clip's patient for grouped CV (default: the "
              "reference name up to its first '_', CirCor's patient id)"),
        Param("tolerance_s", "float", 0.1, "hit window of S1/S2 times (periodic, heart; s)",
              low=0),
        Param("n_splits", "int", 3,
              "CV folds: clip-level (supervised); patient-grouped, leave-one-patient-out when "
              "there are at most this many patients (heart)", low=2),
        Param("C", "float", 0.01, "heart: inverse L2 penalty of the emission model", low=1e-9),
        Param("emission", "str", "logistic",
              "heart: frame classifier (logistic regression; the same on squared and product "
              "features; a one-hidden-layer network)", choices=("logistic", "quadratic", "mlp")),
        Param("min_bpm", "float", 30.0, "heart: lowest heart rate searched (bpm)", low=10),
        Param("max_bpm", "float", 240.0, "heart: highest heart rate searched (bpm)", low=20),
        Param("n_candidates", "int", 3, "heart: heart-period candidates decoded", low=1),
        Param("refine", "int", 2,
              "heart: re-estimations of period and systole from the decoded path", low=0),
        Param("identity_check", "bool", True,
              "heart: check each decoded path's S1/S2 identity (S1 lower-pitched, systole "
              "shorter than diastole) and decode again with S1 and S2 exchanged when swapped"),
        Param("identity_spread_weight", "float", 0.0,
              "heart: weight in the identity check of the spread cue (S2 has more of its energy "
              "above 150 Hz than S1; round 8); 0: not computed", low=0),
        Param("identity_width_weight", "float", 0.0,
              "heart: weight in the identity check of the width cue (S1 lasts longer than S2; "
              "round 8); 0: not computed", low=0),
        Param("identity_compare", "bool", False,
              "heart: also decode with S1 and S2 exchanged and keep that path when its identity "
              "evidence is the higher by twice the margin (round 8; else the sign rule)"),
        Param("identity_regularity_weight", "float", 0.0,
              "heart: weight in the identity check of the regularity cue (systole is steadier "
              "from beat to beat than diastole; round 9); 0: not added", low=0),
        Param("identity_regularity", "bool", True,
              "heart: the regularity cue decides alone when it says 'swapped' or 'in place' by "
              "more than identity_regularity_margin (round 9); false: it never decides alone"),
        Param("identity_regularity_margin", "float", 0.5,
              "heart: the margin of that rule (a log ratio of the diastoles' and systoles' "
              "beat-to-beat spreads; tuned)", low=0),
        Param("random_state", "int", 0, "seed of the folds and frame sampling"),
    )
    tables = ("segments",)
    settled_errors = frozenset({"NoSound"})  # a silent recording: not retried every run
    trusted = TRUSTED
    # 9: NoSound by each 25-400 Hz bin over its own floor, at any level (8 let loud noise
    # through: periodic mode invented beats in it, review 12); periodic mode records an
    # unreadable clip and goes on; 8: NoSound only when the heart sounds' band is quiet too
    # (7 refused loud music and long quiet takes, review 10); 7: a recording with nothing
    # above its noise floor is NoSound too (review 8); 6: heart mode gives a recording without
    # sound an errors row, no segments (it decoded beats in silence); 5: heart mode's identity
    # check weighs the beat-to-beat regularity of systole against diastole (issue 12 §2 round
    # 9); 4: novelty: float-noise dimensions and peaks at the clip edges left out; 3: heart
    # mode's S1/S2 F-measures no longer score sounds where the reference skips beats (round
    # 6); 2: every clip segmented, origin column
    version = "9"

    def check(self, params: dict[str, Any]) -> list[str]:
        if params["mode"] == "supervised" and not params["events"]:
            return ["mode supervised needs param 'events' (CSV: path, onset_s, offset_s, label)"]
        if params["mode"] == "heart" and not (params["reference"] or params["points"]):
            return ["mode heart needs param 'reference' (folder of CirCor .tsv files, a .tsv, "
                    "or an S1/S2 point CSV) or 'points'"]
        if params["min_bpm"] >= params["max_bpm"]:  # refused in every mode: no silent nonsense
            return [f"min_bpm ({params['min_bpm']}) must be below max_bpm ({params['max_bpm']})"]
        idle = [k for k in ("identity_spread_weight", "identity_width_weight", "identity_compare",
                            "identity_regularity_weight") if params[k]]
        if idle and not params["identity_check"]:  # options of a check that is not made
            return [f"{', '.join(idle)} set but identity_check is false: the S1/S2 identity "
                    "check they tune is not made (set identity_check: true, or leave them out)"]
        return []

    @property
    def schemas(self) -> dict[str, Any]:  # type: ignore[override]
        import pyarrow as pa

        return {
            "segments": pa.schema(
                [
                    ("clip_id", pa.string()),
                    ("start_s", pa.float64()),
                    ("end_s", pa.float64()),
                    ("label", pa.string()),
                    ("confidence", pa.float64()),
                    ("mode", pa.string()),
                    ("origin", pa.string()),  # cv | model | novelty | periodic
                    ("run_id", pa.string()),
                ]
            )
        }

    # ---- read -------------------------------------------------------------------------
    def _hop_s(self, ctx: StageContext) -> float:
        from audiopipe.stages._common import StageInputError

        t = ctx.ds.table("frames_index", ["sr", "hop_length"])
        if t.num_rows == 0:
            raise StageInputError(f"dataset {ctx.ds.name!r} has no frames: ingest it first")
        return float(t.column("hop_length")[0].as_py()) / float(t.column("sr")[0].as_py())

    def _features(self, ctx: StageContext) -> list[str]:
        from audiopipe.stages._common import StageInputError

        have = ctx.ds.features_available()
        for f in ctx.params["feature"]:
            if f not in have:
                raise StageInputError(
                    f"dataset {ctx.ds.name!r} has no frame feature {f!r} (has: {', '.join(have)})"
                )
        return list(ctx.params["feature"])

    def _frames(self, ctx: StageContext, ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[int]]:
        """Per clip id, the features concatenated; and each feature's column count."""
        from audiopipe.stages._frames import read_frames_many

        per = [read_frames_many(ctx.ds, list(ids), f) for f in self._features(ctx)]
        frames = {
            c: np.concatenate([np.asarray(pf[i], np.float64) for pf in per], axis=1)
            for i, c in enumerate(ids)
        }
        return frames, [next((a.shape[1] for a in map(np.asarray, pf) if a.ndim == 2), 0)
                        for pf in per]

    def _reference(self, ctx: StageContext) -> dict[str, list]:
        """Per clip id: full reference segmentation from the events file (background filled)."""
        from audiopipe.stages.segment.events import reference_segments

        return reference_segments(ctx) if ctx.params["events"] else {}

    # ---- fit --------------------------------------------------------------------------
    def model_key(self, ctx: StageContext) -> str | None:
        from audiopipe.stages._common import stable_id

        if ctx.params["mode"] == "heart":
            from audiopipe.stages.segment.heart import read_clip_references, reference_id

            return stable_id("segment-heart", reference_id(read_clip_references(ctx)))
        if ctx.params["mode"] != "supervised":
            return None

        ref = self._reference(ctx)
        return stable_id("segment", sorted(ref.items()))

    def fit(self, ctx: StageContext) -> _Fitted:
        p = ctx.params
        mode = p["mode"]
        if mode == "periodic":
            return _Fitted()
        if mode == "heart":
            from audiopipe.stages._common import save_model
            from audiopipe.stages.segment.heart import fit_heart

            h = fit_heart(ctx)
            return _Fitted(reference=h["reference"], model=h["model"], oof=h["oof"],
                           metrics=h["metrics"], model_id=self.model_key(ctx), warnings=h["warnings"],
                           model_uri=save_model(ctx, "segment", h["model"]))
        hop_s = self._hop_s(ctx)
        self._features(ctx)
        ref = self._reference(ctx)
        if mode == "novelty":
            return _Fitted(hop_s=hop_s, reference=ref)
        from audiopipe.stages._common import StageInputError, save_model
        from audiopipe.stages.segment.evaluate import evaluate_segments
        from audiopipe.stages.segment.supervised import FrameSegmenter, out_of_fold_segments

        ids = list(ref)
        frames, _ = self._frames(ctx, ids)
        labels = {c: _frame_labels(ref[c], len(frames[c]), hop_s, p["background"]) for c in ids}
        if len({x for v in labels.values() for x in v}) < 2:
            raise StageInputError(f"dataset {ctx.ds.name!r}: events file {p['events']} gives one label only")
        if len(ids) < 2:  # out-of-fold scores: a clip to fit on, another to test
            raise StageInputError(f"dataset {ctx.ds.name!r}: events file {p['events']} labels "
                                  f"{len(ids)} clip; supervised segmentation cross-validates "
                                  "clip by clip: it needs at least 2 labelled clips")
        seg = FrameSegmenter(
            hop_s=hop_s,
            context_s=p["context_s"],
            min_duration_s=p["min_duration_s"],
            random_state=p["random_state"],
        )
        notes: list[str] = []
        oof = out_of_fold_segments(seg, frames, labels, p["n_splits"], p["random_state"], notes)
        final = seg.fit([frames[c] for c in ids], [labels[c] for c in ids])
        per = [evaluate_segments(ref[c], oof[c]) for c in ids]
        metrics = {key: float(np.mean([x[key] for x in per])) for key in per[0]}
        metrics["n_clips"] = float(len(ids))
        return _Fitted(
            hop_s=hop_s,
            reference=ref,
            model=final,
            model_id=self.model_key(ctx),
            model_uri=save_model(ctx, "segment", final),
            oof=oof,
            metrics=metrics,
            warnings=notes,
        )

    # ---- predict ----------------------------------------------------------------------
    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: _Fitted) -> ClipBatch:
        mode = ctx.params["mode"]
        out = ClipBatch(rows={"segments": []})
        if mode == "periodic":
            from audiopipe.stages.segment.heart import process_periodic

            return process_periodic(ctx, clip_ids, _rows, SOUND_S)
        if mode == "heart":
            from audiopipe.stages.segment.heart import process_heart

            return process_heart(ctx, clip_ids, state, _rows)
        frames, widths = self._frames(ctx, clip_ids)
        for cid in clip_ids:
            if mode == "novelty":
                segs = _novelty_segments(frames[cid], state.hop_s, ctx.params, widths)
                origin = "novelty"
            elif cid in state.oof:
                segs, origin = state.oof[cid], "cv"
            else:
                segs, origin = state.model.predict_segments(frames[cid]), "model"
            out.rows["segments"] += _rows(cid, segs, mode, origin, ctx.run_id)
            if out.plot is None:
                out.plot = (cid, frames[cid], state.hop_s, state.reference.get(cid), segs)
        return out

    # ---- evaluate ---------------------------------------------------------------------
    def evaluate(self, ctx: StageContext, state: _Fitted | None) -> list[dict[str, Any]]:
        from audiopipe.stages._common import metric_rows

        p, mode = ctx.params, ctx.params["mode"]
        if state is None:
            return []
        model_id = state.model_id or f"segment-{mode}"
        if mode in ("supervised", "heart"):
            return metric_rows("segment", model_id, state.metrics, evaluation="cv",
                               split=mode, run_id=ctx.run_id)
        segs = ctx.ds.table("segments").to_pandas()
        if mode == "novelty":
            if not state.reference:
                return []
            from audiopipe.stages.segment.evaluate import evaluate_segments

            scored = [c for c in state.reference if c in set(segs.clip_id)]
            per = [
                evaluate_segments(
                    state.reference[c],
                    list(segs[segs.clip_id == c][["start_s", "end_s", "label"]].itertuples(
                        index=False, name=None)),
                )
                for c in scored
            ]
            if not per:
                return []
            m = {k: float(np.mean([x[k] for x in per])) for k in per[0] if k != "frame_accuracy"}
            m["n_clips"] = float(len(per))
            return metric_rows("segment", model_id, m, evaluation="reference", split="novelty",
                               run_id=ctx.run_id)
        if not p["reference"]:
            return []
        m = _periodic_scores(ctx, segs, p["tolerance_s"])
        return metric_rows("segment", model_id, m, evaluation="reference", split="periodic",
                           run_id=ctx.run_id) if m else []

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Any]:
        cid, frames, hop_s, ref, est = batch.plot
        mode = ctx.params["mode"]
        title = f"{ctx.ds.name} {mode}: {cid[:10]}"
        if mode == "heart":
            from audiopipe.stages.segment.heart import plot as heart_plot

            return {"segment-heart": lambda fh: heart_plot(fh, cid, frames, hop_s, ref, title)}
        return {f"segment-{mode}": lambda fh: _plot(fh, frames, hop_s, ref, est, title)}


def _rows(cid: str, segs: list, mode: str, origin: str, run_id: str) -> list[dict[str, Any]]:
    return [
        {"clip_id": cid, "start_s": float(s), "end_s": float(e), "label": str(lab),
         "confidence": float(c), "mode": mode, "origin": origin, "run_id": run_id}
        for s, e, lab, c in segs
    ]


def _frame_labels(segs: list, n: int, hop_s: float, bg: str) -> np.ndarray:
    t = np.arange(n) * hop_s
    lab = np.array([bg] * n, dtype=object)
    for s, e, label in segs:
        lab[(t >= s) & (t < e)] = label
    return lab.astype(str)


def _novelty_segments(frames: np.ndarray, hop_s: float, p: dict[str, Any],
                      widths: list[int]) -> list:
    from audiopipe.stages.segment.novelty import novelty_boundaries

    b = novelty_boundaries(frames, hop_s, p["kernel_s"], p["peak_delta"], widths=widths)
    end = len(frames) * hop_s
    edges = np.r_[0.0, b[(b > 0) & (b < end)], end]
    return [(s, e, f"seg{i}", 1.0) for i, (s, e) in enumerate(zip(edges[:-1], edges[1:], strict=True))]


def _periodic_scores(ctx: StageContext, segs: Any, tol: float) -> dict[str, float]:
    """F-measures of S1, S2 and all sounds against the reference, within its annotated span."""
    import mir_eval

    from audiopipe.stages._common import read_frame_file, uri_matcher

    r = read_frame_file(ctx.ds, ctx.params["reference"], "reference", ())
    r = r.rename(columns={"file": "path", "sound": "label"})
    for c in ("path", "time_s", "label"):
        if c not in r.columns:
            from audiopipe.stages._common import StageInputError

            raise StageInputError(
                f"dataset {ctx.ds.name!r}: reference file {ctx.params['reference']} has no "
                f"column {c!r}"
            )
    match = uri_matcher(ctx.ds)
    per = []
    for path, g in r.groupby("path"):
        cid = match(path)
        if cid is None:
            continue
        mine = segs[segs.clip_id == cid]
        sound = {lab: np.sort(mine[mine.label == lab].end_s.to_numpy() - SOUND_S / 2)
                 for lab in ("S1", "S2")}
        lo, hi = g.time_s.min() - 0.5, g.time_s.max() + 0.5  # annotated span only
        m = {}
        for lab in ("S1", "S2"):
            est = sound[lab][(sound[lab] >= lo) & (sound[lab] <= hi)]
            m[f"f_{lab}"] = mir_eval.onset.f_measure(
                np.sort(g[g.label == lab].time_s.to_numpy()), est, window=tol
            )[0]
        both = np.sort(np.r_[sound["S1"], sound["S2"]])
        m["f_sounds"] = mir_eval.onset.f_measure(
            np.sort(g.time_s.to_numpy()), both[(both >= lo) & (both <= hi)], window=tol
        )[0]
        per.append(m)
    if not per:
        return {}
    out = {k: float(np.mean([x[k] for x in per])) for k in per[0]}
    out["n_clips"] = float(len(per))
    return out


def _plot(
    fh: Any, frames: np.ndarray | None, hop_s: float, ref: list | None, est: list, title: str
) -> None:
    from audiopipe.stages._common import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(3 if frames is not None else 2, 1, figsize=(9, 4.5), sharex=True)
    ax = list(np.atleast_1d(axes))
    end = max([e for _, e, *_ in est] + [e for _, e, *_ in (ref or [])] + [1.0])
    if frames is not None:
        a = ax.pop(0)
        a.imshow(
            frames.T, aspect="auto", origin="lower", extent=(0, len(frames) * hop_s, 0, frames.shape[1])
        )
        a.set_ylabel("feature")
    labels = sorted({s[2] for s in est} | {s[2] for s in (ref or [])})
    cmap = plt.get_cmap("tab10")
    for a, segs, name in ((ax[0], ref or [], "reference"), (ax[1], est, "estimated")):
        for s, e, lab, *_ in segs:
            a.axvspan(s, e, color=cmap(labels.index(lab) % 10), alpha=0.7)
            if e - s > 0.03 * end:
                a.text((s + e) / 2, 0.5, lab, ha="center", va="center", fontsize=7)
        a.set_yticks([])
        a.set_ylabel(name)
    ax[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)

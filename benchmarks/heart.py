"""Benchmark: supervised heart-sound segmentation (LR-HSMM) on held-out CirCor and PASCAL.

Data (../shared/corpora/heart): CirCor patients 85343 (4 recordings) and 85345 (2), interval
references (S1/systole/S2/diastole, unannotated parts not scored); PASCAL A, 10 recordings
with S1/S2 centre points (not every beat marked) (turned into training intervals by
:func:`audiopipe.stages.heart.points_to_intervals`: S1 122 ms, S2 94 ms around each point,
systole/diastole between consecutive S1-S2 / S2-S1 points with plausible gaps, a tuned
guard left unannotated around every boundary). Models are trained across both corpora.

Two splits, each with a tuning part and a report part that nothing was chosen on:

- split A: tune on CirCor patient 85343 + PASCAL recordings 1-5 (sorted by name),
  report on patient 85345 + PASCAL 6-10;
- split B: the swap (tune on 85345 + PASCAL 6-10, report on 85343 + PASCAL 1-5).

The configuration of each split comes from ``benchmarks/tune_heart.py`` (written to
``benchmarks/results/heart_tuning.json``; run it first, or this script runs it). For the
report, the model is trained on the tuning part's recordings (CirCor patient + the five
PASCAL recordings: the other patient is never seen, i.e. leave-one-patient-out) and scored
on the report part: frame accuracy over annotated frames (CirCor, 10 ms frames), S1/S2
F-measure at +-0.1 s (one-to-one) within the reference's annotated stretches (PASCAL; from
round 6, :func:`audiopipe.stages.heart.annotated_stretches`: no estimate is scored where
the annotators skipped beats) and, as rounds 1-5 scored it, within the whole annotated
span +-0.5 s (``*_span``), whole-recording coverage, heart rate against the references' median S1-S1
interval, and decoding time. The baseline is the ``segment`` stage's periodic mode
(:class:`audiopipe.stages.segment.PeriodicSegmenter`) on the same recordings in the same
run. All audio is read at 4 kHz (the rate the stage's tests ingest heart sounds at).

Measured (issue 12 §2; held-out CirCor frame accuracy / PASCAL F S1, F S2; rounds 1-5
scored PASCAL over the whole span, round 6 within the annotated stretches, with round 5's
configurations; round 1 measured CirCor only, A 0.864, B 0.595; the baseline is from
round 6's run, which over the whole span gives A 0.768, 0.747 and B 0.635, 0.559 as in
rounds 3-5):

=====  ====================  ====================  ====================  ====================  ====================
split  round 2               round 3               rounds 4 and 5        round 6 (stretches)   baseline (stretches)
=====  ====================  ====================  ====================  ====================  ====================
A      0.553 / 0.883, 0.860  0.134 / 0.854, 0.776  0.547 / 0.854, 0.776  0.547 / 0.871, 0.815  0.125 / 0.779, 0.785
B      0.862 / 0.867, 0.878  0.858 / 0.847, 0.845  0.858 / 0.847, 0.845  0.858 / 0.903, 0.869  0.734 / 0.664, 0.579
=====  ====================  ====================  ====================  ====================  ====================

Round 2: split B's held-out patient (85343, murmur) went from 0.595 to 0.862: round 1's
tuning chose on 0.001 gains (now a change needs ``MARGIN``), half-period candidates that
leave no room for systole or diastole are dropped, and the S1 posterior may give the rate
(``rate_from``). Split A's 85345_PV was decoded at 39 bpm (116 true): its envelope
autocorrelation falls steadily (a slow loudness swell) with no peak near the beat, and the
decoding-score comparison let a subharmonic win.

Round 3 (the heart rate without decoding scores): both splits' tuning chose the harmonic
check (``select="harmonic"``: the strongest autocorrelation peak unless one at half its
period is nearly as strong) on the S1 posterior's autocorrelation (``rate_from``), ratio
0.7, no detrending, one refinement. The rates are now right on every held-out recording of
both splits (split A's 85345: 120 bpm for 114 and 116; median error 3.5 and 1.7 bpm), but
split A's frame accuracy fell: S1 and S2 are swapped on both 85345 recordings (0.268 and
0.000; at 115-120 bpm systole and diastole last nearly the same, 0.24 against 0.26 s, so
the states' identity rests on the emission model). Split A's tuning, started from the
posterior rate, took a different path through the features than round 2's (no octave
bands, 3 context frames, objective 0.900 against 0.903: a tie within the margin on its
tuning part), and that emission model takes 85345's S1 for S2 (with the octave bands
added, still 0.365 and 0.351); the same model loses PASCAL 201103151912's S2 (F 0.571 to
0.154). A diagnostic, not a reported figure (chosen knowing the report part): round 2's
split-A configuration with round 3's rate gives 0.167 (85345_AV at 75 bpm, PV at 120 with
S1/S2 swapped): where the emission model takes S2 for S1, its S1 posterior peaks at both
and no rate rule recovers the states. Split B's PASCAL figures moved with the rate choice on two recordings (one or two
sounds each at 68-70 bpm). What is left: S1/S2 identity near 120 bpm that transfers across
patients (S2 is typically the louder sound at the base, 85345's AV and PV sites), and a
tuning that does not hinge on ties between feature sets on one patient.
Whole-recording coverage 1.0 everywhere.

Round 4 (the S1/S2 identity): after decoding, the path is checked against its S1 <-> S2
swap by cues that hold across patients and sites (:mod:`audiopipe.stages.heart.identity`:
S1 lower-pitched than S2, systole shorter than diastole weighed by how different they
are) and decoded again with the two exchanged when the evidence is below
``-identity_margin``. Chosen on each tuning part only (``tune_heart.py``: a stress test
with the emission model's S1/S2 confused, plus the plain objective, which may not lose):
split A: on, margin 0.05, weight 1 (plain 0.900 either way; confused 0.031 -> 0.894);
split B: on, margin 0.2, weight 1 (every candidate tied: plain 0.873; confused 0.425 ->
0.872). The tuning's new pruning step (undo a change if undoing it alone costs at most
``MARGIN``) kept both splits' round-3 configurations, so the other parameters are round 3's.
Held out: split A 0.134 -> 0.547 (85345_PV 0.000 -> 0.826, swapped back: evidence -0.21;
85345_AV stays 0.268), PASCAL unchanged; split B unchanged (nothing swapped). A diagnosis
made after the report, not used for any choice: 85345_AV's decoded path is not a clean
swap but slips in phase across the recording (decoded at 120 bpm for 114: true S2 frames
mostly decoded S1, true S1 frames mostly diastole), so a whole-recording identity vote
sees a mixture (evidence +0.34) and leaves it; what is left there is the rate and the
duration model's rigidity, not the identity. Split A's CirCor goal (0.85) is not met.

Round 5 (a heart rate a few percent off): 85345_AV's slip in phase at 120 bpm for ~114
suggested a decoder too rigid for a rate slightly wrong. What was looked at: only the
tuning parts, through a stress test (``tune_heart.py --stress-rate``: each tuning recording
decoded with its heart period forced to the reference's times 0.92-1.08, by the
leave-one-recording-out model and by one trained without its patient), and generated
signals whose rate drifts 5-10 % over 20 s; 85345_AV was not examined again (its figure
above is from the same run as the others). The forced rate cost the tuning parts almost
nothing (split A 0.878 exact against 0.877 off; split B 0.874 against 0.873), and the
generated drifts were followed beat by beat (frame accuracy > 0.9 with the default
decoder). The remedies tried (``rate_sd``, a diastole spread widened by the period's as
Springer's heart-rate SD; ``rate_search``, nearby periods decoded by score; a second
refinement) did not gain on the stress test and ``rate_sd`` lost on the plain tuning score,
so none was taken (tune_heart's pruning rule) and the figures are round 4's, unchanged in
this run for both splits. The rate's rigidity is not what the tuning parts can show to
matter; split A's emission model on a new patient's aortic site (round 4's diagnosis)
stays the likelier cause, and split A's CirCor goal (0.85) is still not met.

Round 6 (where PASCAL F is lost): ``benchmarks/heart_points.py`` classifies, on the tuning
parts only (leave-one-recording-out, round 5's configurations), every PASCAL mark and
predicted sound as matched, mistimed, S1/S2 swapped, missed or extra. Timing is not the
loss: the decoded segment's centre sits +0.01 s from the mark (median; 10-90 % within
-0.011..+0.033 s; the segment's start or end score lower), so the reported point stays the
centre. The largest class was extras (15 of 31 errors), and every one was a heart sound
where the challenge file marks nothing: before the first mark or after the last (within
the 0.5 s margin) or in a beat the annotators skipped. The scoring therefore changed, for
both methods alike: estimates are scored within the reference's annotated stretches
(tuning parts: A 0.882/0.899 -> 0.925/0.925, B 0.830/0.869 -> 0.852/0.912; no other count
moved). Held out, the same configurations: split A 0.854/0.776 -> 0.871/0.815, split B
0.847/0.845 -> 0.903/0.869; CirCor unchanged (0.547, 0.858); the model's segments did not
change. What is left on the tuning parts is S1/S2 disagreement where the reference's
labels run reversed after a skipped sound (its wide-format file labels by column:
201102260502 after 4.09 s, 201105011626's last two marks, 201103151912's first and last
stretches); the references are not repaired. Held out, split A's 201103151912 (0.462 /
0.182) and split B's 201102260502 (0.625 / 0.625, every sound found: f_sounds 1.0) hold
most of what separates the figures from 0.90. ``tune_heart.py`` re-run under the new
scoring keeps round 5's configurations (split A's search from ``START`` ended elsewhere,
0.914 on its tuning part against round 5's 0.917: the incumbent rule of
``tune_heart.keep_incumbent``; split B's search chose round 5's again).

Round 7 (the S1/S2 identity when S2 is the louder sound): chosen on each tuning part
alone by ``benchmarks/heart_identity.py`` (an identity stress test: tuning recordings with
S2 made 6 dB louder than S1, with diastole cut to ~systole, and both; a remedy taken if it
gains more than ``MARGIN`` there and loses at most ``MARGIN`` on the unaltered tuning part;
candidates and numbers in ``tune_heart.py``'s round 7). Split A took octave-band envelopes
and emission weight 0.5 (tuning part: plain 0.917 -> 0.920, stress 0.629 -> 0.779, swaps
under stress 3-4 -> 1-2 of 9); split B kept its configuration (nothing swapped under stress,
no remedy qualified). Held out, the same run (LR-HSMM / periodic baseline):

=====  ====================  ====================  ====================
split  round 6               round 7               baseline (stretches)
=====  ====================  ====================  ====================
A      0.547 / 0.871, 0.815  0.207 / 0.840, 0.815  0.125 / 0.779, 0.785
B      0.858 / 0.903, 0.869  0.858 / 0.903, 0.869  0.734 / 0.664, 0.579
=====  ====================  ====================  ====================

Split A lost: 85345_AV 0.268 -> 0.414 but decoded at 45 bpm (114 true), 85345_PV 0.826 ->
0.000 (S1/S2 swapped at 120 bpm and not swapped back: the identity evidence of the
decoded path is +0.12, pitch +0.04, where round 6's path had -0.21 and was swapped back);
PASCAL 201103151912 F_S1 0.462 -> 0.308. (A diagnosis after the report, not used for any
choice.) What the stress test altered, the level of S2 against S1 and the durations, is
not what sets 85345 apart from split A's tuning recordings: its sounds differ little in
pitch (the pitch cue is near 0 whichever label they carry), so neither the emission
features nor the identity check have a cue that holds. Split B is unchanged. The goals
(CirCor >= 0.85 on split A, PASCAL >= 0.90) are still not met on split A. A caveat on
round 7's split A figure: every choice was made on the tuning part, but the stress test's
conditions (S2 louder than S1, diastole about as long as systole at 115-120 bpm) were
modelled on what rounds 3-6 reported of split A's held-out patient 85345, so that figure is
not, strictly, from data nothing was chosen on (it fell, so it flatters nothing).

Round 8 (identity cues that do not rest on the centroid, and a tuning rule that does not
hinge on one patient): chosen on each tuning part alone by ``heart_identity.py --round8``
(the same identity stress test; candidates and numbers in ``tune_heart.py``'s round 8).
The stage gained, as options off by default, two cues (:mod:`audiopipe.stages.heart.identity`:
``spread``, S2's larger share of energy above 150 Hz; ``width``, S1 lasting longer than S2)
and ``identity_compare`` (the path decoded with S1/S2 exchanged is judged by its own cues:
a decoding that is no clean swap has cues of its own). The rule, stated before the runs:
round 7's richer configuration stays only if it beats round 6's by more than ``MARGIN`` on
both the plain and the stress objective (it did not: plain 0.920 against 0.917), then a
cue is taken if the stress objective gains more than ``MARGIN``, its worst part (CirCor or
PASCAL, over the conditions) loses at most ``MARGIN`` and plain loses at most ``MARGIN``.
Split A: round 6's configuration with ``identity_compare`` and spread weight 1 (plain
0.917 either way; stress 0.629 -> 0.718, worst part 0.157 -> 0.331, swaps under stress 15
-> 9 of 54; round 4's confused-emission test 0.911 and round 5's rate stress 0.894, both as
round 6's, where round 7's configuration had 0.794 and 0.889). Split B: no candidate moved
any figure (its identity margin 0.2 is never crossed; no swaps under stress), so it
stays. Held out, the same run (LR-HSMM / periodic baseline):

=====  ====================  ====================  ====================  ====================
split  round 6               round 7               round 8               baseline (stretches)
=====  ====================  ====================  ====================  ====================
A      0.547 / 0.871, 0.815  0.207 / 0.840, 0.815  0.789 / 0.671, 0.615  0.125 / 0.779, 0.785
B      0.858 / 0.903, 0.869  0.858 / 0.903, 0.869  0.858 / 0.903, 0.869  0.734 / 0.664, 0.579
=====  ====================  ====================  ====================  ====================

Split A's CirCor rose (85345_AV 0.414 in round 7 / 0.268 in round 6 -> 0.753: decoded at 120
bpm for 114 as in round 6, not round 7's 45, and swapped by the comparison, the path decoded
the other way round having evidence +1.57 against +0.16; 85345_PV 0.000 -> 0.826, swapped
back as in round 6), but PASCAL A fell: 201103221214 went from F 1.000 / 1.000 (round 6's
configuration, rerun after the report: 0.547 / 0.871, 0.815 as in round 6) to 0 / 0 with
most sounds still found (f_sounds 1.000 -> 0.842), S1 and S2 swapped by the comparison
(evidence -0.38 against +0.11 for the other path; spread -0.47: in that recording S1 has the
larger high-band share). (A diagnosis after the report, not used for any choice.) The spread
cue held on every recording of split A's tuning part (reference labels: +0.04 to +1.93) but
not on split B's, looked at after split A's choice was made: 201103151912 and 201103221214,
both split A's held-out PASCAL recordings, have -0.25 and -0.42 with their reference labels
(pitch -0.07, -0.05). So no audio cue tried here holds on every recording; the goals (CirCor
>= 0.85 on split A, PASCAL >= 0.90) are still not met on split A. Caveat, as for round 7:
the rule that set round 7's remedies aside was proposed after round 7's held-out loss was
known (every number it compared is from the tuning part), so split A's round-8 figure is
not, strictly, from data nothing was chosen on.

Round 9 (beat-to-beat regularity as an identity cue: systole steady, diastole variable;
chosen on the tuning parts alone by ``heart_regularity.py``, numbers in ``tune_heart.py``'s
round 9): the estimator's identity check now lets the regularity cue decide alone where it
exceeds 0.5 (``identity_regularity_margin``, a default both splits' configurations take);
weighed into the evidence it gained more under stress (split A 0.628 -> 0.666 from round 6's
configuration, 0.718 -> 0.734 from round 8's) but lost round 4's confused-emission test
(0.911 -> 0.811). Held out, the same run (LR-HSMM / periodic baseline): split A 0.789 /
0.671, 0.615 (baseline 0.125 / 0.779, 0.785), split B 0.858 / 0.903, 0.869 (baseline 0.734
/ 0.664, 0.579): round 8's figures, no held-out decoding changed. With the reference labels
the cue is 0.00 on 85345_PV (systole and diastole vary alike, ~4 ms) and +0.58 on 85345_AV, so
the cue could not have decided 85345_PV whatever its margin. The goals (CirCor >= 0.85 on
split A, PASCAL A >= 0.90) are still not met on split A.

Prints a table and writes ``benchmarks/results/heart.json``.
Run: ``python benchmarks/heart.py`` from the repository root (about a minute; run
``tune_heart.py`` first, 3-5 minutes per split on one shared core, then
``heart_identity.py``, about 5 minutes per split, which writes round 7's choices into
``heart_tuning.json``, then ``heart_identity.py --round8``, 5-10 minutes per split, which
writes round 8's; round 9's ``heart_regularity.py``, a few minutes, writes no configuration:
its choice is an estimator default).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiopipe.stages.heart import (  # noqa: E402
    HeartSegmenter,
    frame_accuracy,
    hsmm_viterbi,
    plot_heart,
    points_to_intervals,
    read_interval_reference,
    read_point_references,
    sound_centres,
    sound_scores,
)
from audiopipe.stages.heart.features import resample  # noqa: E402
from audiopipe.stages.segment import PeriodicSegmenter  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"
if not CORPORA.is_dir():
    CORPORA = Path("/work/shared/corpora")
HEART = CORPORA / "heart"
SR = 4000
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Rec:
    """One recording with its references."""

    name: str
    corpus: str  # "circor" or "pascal"
    group: str  # patient (CirCor) or recording (PASCAL)
    y: np.ndarray
    sr: int
    intervals: list = field(default_factory=list)  # CirCor reference intervals
    points: dict = field(default_factory=dict)  # PASCAL reference S1/S2 centres

    @property
    def ref_bpm(self) -> float:
        if self.corpus == "circor":
            s1 = np.array([s for s, _, k in self.intervals if k == "S1"])
        else:
            s1 = self.points["S1"]
        d = np.diff(np.sort(s1))
        return float(60.0 / np.median(d)) if len(d) else float("nan")


def _read(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return resample(y.mean(axis=1), sr, SR), SR


def load_circor(root: Path = HEART / "circor") -> list[Rec]:
    out = []
    for wav in sorted(root.glob("*.wav")):
        y, sr = _read(wav)
        ref = read_interval_reference(wav.with_suffix(".tsv"))
        out.append(Rec(wav.stem, "circor", wav.stem.split("_")[0], y, sr, intervals=ref))
    return out


def load_pascal(root: Path = HEART / "pascal_a") -> list[Rec]:
    pts = read_point_references(root / "s1s2_locations.csv")
    out = []
    for f in sorted(pts):
        y, sr = _read(root / f)
        out.append(Rec(Path(f).stem, "pascal", Path(f).stem, y, sr, points=pts[f]))
    return out


def train_refs(recs: list[Rec], pascal_guard_s: float = 0.02) -> list[list]:
    """Training intervals: CirCor's references; PASCAL's points turned into intervals."""
    out = []
    for r in recs:
        if r.corpus == "pascal":
            p = r.points
            t = np.r_[p["S1"], p["S2"]]
            lab = ["S1"] * len(p["S1"]) + ["S2"] * len(p["S2"])
            out.append(points_to_intervals(t, lab, guard_s=pascal_guard_s))
        else:
            out.append(r.intervals)
    return out


def splits(circor: list[Rec], pascal: list[Rec]) -> dict[str, dict[str, list[Rec]]]:
    """{"A": {"tune": [...], "report": [...]}, "B": ...} (see module doc)."""
    a = [r for r in circor if r.group == "85343"] + pascal[:5]
    b = [r for r in circor if r.group == "85345"] + pascal[5:]
    return {"A": {"tune": a, "report": b}, "B": {"tune": b, "report": a}}


def pascal_scores(points: dict, est: dict) -> dict[str, float]:
    """S1/S2 F at +-0.1 s, estimates scored within the annotated stretches (round 6), and
    the same over the whole annotated span +-0.5 s (rounds 1-5) as ``*_span``."""
    out = sound_scores(points, est, window=0.1)
    span = sound_scores(points, est, window=0.1, margin=0.5, gaps=False)
    return {**out, **{f"{k}_span": v for k, v in span.items()}}


def score(rec: Rec, segs: list, seconds: float, bpm: float | None = None) -> dict:
    """The recording's scores for segments ``(start_s, end_s, state, ...)``."""
    dur = len(rec.y) / rec.sr
    covered = sum(e - s for s, e, *_ in segs)
    gaps = [b[0] - a[1] for a, b in zip(segs[:-1], segs[1:], strict=True)]
    whole = bool(
        segs
        and abs(segs[0][0]) < 1e-9
        and abs(segs[-1][1] - dur) < 1e-6
        and all(abs(g) < 1e-9 for g in gaps)
    )
    m: dict = {"coverage": covered / dur, "whole": whole, "seconds": seconds}
    if rec.corpus == "circor":
        m["frame_accuracy"] = frame_accuracy(rec.intervals, segs)
    else:
        m.update(pascal_scores(rec.points, sound_centres(segs)))
    m["ref_bpm"] = rec.ref_bpm
    if bpm is not None:
        m["bpm"] = bpm
    return m


def run_model(
    params: dict, train: list[Rec], test: list[Rec], pascal_guard_s: float = 0.02
) -> dict[str, dict]:
    refs = train_refs(train, pascal_guard_s)
    seg = HeartSegmenter(**params).fit([(r.y, r.sr) for r in train], refs)
    out = {}
    for r in test:
        t = time.perf_counter()
        a = seg.analyse(r.y, r.sr)
        out[r.name] = score(r, a["segments"], time.perf_counter() - t, a["heart_rate_bpm"])
        # the duration-dependent decoder alone, per 30 s of audio (one duration model)
        log_b = seg.log_emissions(a["features"])
        lp = seg.duration_model(60.0 / a["heart_rate_bpm"], a["systole_s"])
        t = time.perf_counter()
        hsmm_viterbi(log_b, lp, partial_edges=seg.partial_edges)
        out[r.name]["decoder_seconds_per_30s"] = (time.perf_counter() - t) * 30.0 * r.sr / len(r.y)
    return out


def run_baseline(test: list[Rec]) -> dict[str, dict]:
    base = PeriodicSegmenter()
    out = {}
    for r in test:
        t = time.perf_counter()
        segs = base.predict_segments(r.y, r.sr)
        dt = time.perf_counter() - t
        m = score(r, segs, dt, 60.0 / base.period(base.envelope(r.y, r.sr)))
        if r.corpus == "pascal":  # the stage scores the sound times it detects
            m.update(pascal_scores(r.points, base.sounds(r.y, r.sr)))
        out[r.name] = m
    return out


def summary(per: dict[str, dict]) -> dict[str, float]:
    rows = list(per.values())

    def mean(k: str, rs: list) -> float:
        v = [r[k] for r in rs if k in r and np.isfinite(r[k])]
        return float(np.mean(v)) if v else float("nan")

    cc = [r for r in rows if "frame_accuracy" in r]
    pa = [r for r in rows if "f_S1" in r]
    bpm_err = [abs(r["bpm"] - r["ref_bpm"]) for r in rows if "bpm" in r]
    return {
        "circor_frame_accuracy": mean("frame_accuracy", cc),
        "pascal_f_S1": mean("f_S1", pa),
        "pascal_f_S2": mean("f_S2", pa),
        "pascal_f_sounds": mean("f_sounds", pa),
        "pascal_f_S1_span": mean("f_S1_span", pa),
        "pascal_f_S2_span": mean("f_S2_span", pa),
        "whole_coverage": float(np.mean([r["whole"] for r in rows])),
        "median_bpm_error": float(np.median(bpm_err)) if bpm_err else float("nan"),
        "max_seconds": float(max(r["seconds"] for r in rows)),
        "max_decoder_seconds_per_30s": float(
            max((r.get("decoder_seconds_per_30s", np.nan) for r in rows), default=np.nan)
        ),
    }


def load_tuning(path: Path = RESULTS / "heart_tuning.json") -> dict:
    if not path.is_file():
        import tune_heart

        tune_heart.main()
    return json.loads(path.read_text())


def main() -> None:
    circor, pascal = load_circor(), load_pascal()
    tuned = load_tuning()
    res: dict = {"protocol": __doc__.split("Prints")[0].strip(), "splits": {}}
    print(f"{'split':6} {'method':24} {'CirCor acc':>10} {'PASCAL F_S1':>11} {'F_S2':>6} "
          f"{'F_snd':>6} {'span S1':>7} {'S2':>6} {'whole':>6} {'|dbpm|':>7} {'max s':>6} "
          f"{'dec s/30s':>9}")
    for name, sp in splits(circor, pascal).items():
        params, guard = tuned[name]["params"], tuned[name]["pascal_guard_s"]
        ours = run_model(params, sp["tune"], sp["report"], guard)
        base = run_baseline(sp["report"])
        res["splits"][name] = {
            "tuned_on": [r.name for r in sp["tune"]],
            "reported_on": [r.name for r in sp["report"]],
            "params": params,
            "pascal_guard_s": guard,
            "lr_hsmm": {"summary": summary(ours), "per_recording": ours},
            "periodic_baseline": {"summary": summary(base), "per_recording": base},
        }
        for method, per in (("LR-HSMM (tuned)", ours), ("periodic mode (baseline)", base)):
            s = summary(per)
            print(f"{name:6} {method:24} {s['circor_frame_accuracy']:10.3f} {s['pascal_f_S1']:11.3f} "
                  f"{s['pascal_f_S2']:6.3f} {s['pascal_f_sounds']:6.3f} "
                  f"{s['pascal_f_S1_span']:7.3f} {s['pascal_f_S2_span']:6.3f} "
                  f"{s['whole_coverage']:6.2f} "
                  f"{s['median_bpm_error']:7.1f} {s['max_seconds']:6.2f} "
                  f"{s['max_decoder_seconds_per_30s']:9.3f}")
        for r in sp["report"]:
            o, b = ours[r.name], base[r.name]
            keys = (["frame_accuracy"] if r.corpus == "circor"
                    else ["f_S1", "f_S2", "f_sounds", "f_S1_span", "f_S2_span"])
            got = ", ".join(f"{k} {o[k]:.3f} (baseline {b[k]:.3f})" for k in keys)
            print(f"    {r.name:14} {got}; bpm {o['bpm']:.0f} (ref {o['ref_bpm']:.0f}, "
                  f"baseline {b['bpm']:.0f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # a plot a person can read: the first held-out CirCor recording of split A
    sp = splits(circor, pascal)["A"]
    seg = HeartSegmenter(**tuned["A"]["params"]).fit(
        [(r.y, r.sr) for r in sp["tune"]], train_refs(sp["tune"], tuned["A"]["pascal_guard_s"])
    )
    r = next(x for x in sp["report"] if x.corpus == "circor")
    a = seg.analyse(r.y, r.sr)
    start = min(s for s, _, _ in r.intervals)
    acc = frame_accuracy(r.intervals, a["segments"])
    res["plot"] = plot_heart(
        str(RESULTS / "heart.png"), a["features"][:, 0], seg.feature_rate, a["segments"],
        reference=r.intervals, span=(start - 0.5, start + 4.5),
        title=f"{r.name} (patient held out, split A): {a['heart_rate_bpm']:.0f} bpm, "
        f"frame accuracy {acc:.3f}",
    )
    path = RESULTS / "heart.json"
    path.write_text(json.dumps(res, indent=1, default=float))
    print("wrote", path)


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    # one BLAS thread: the many small logistic-regression fits gain nothing from threads,
    # and on shared cores oversubscribed BLAS threads made them 20 times slower
    with threadpool_limits(limits=1):
        main()

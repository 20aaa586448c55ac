"""Benchmark: classify's chosen model vs a plain librosa + scikit-learn baseline, on parts
nothing was tuned on.

The stage (``fit_select``, exactly what ``audiopipe stage classify`` runs, with its
defaults) chooses among its candidates by inner grouped CV and is scored *nested*: in each
outer fold the choice is redone on that fold's training part only. The baseline is the
thirty lines a user would write: librosa MFCC (20) mean and std per clip, standardised,
``SVC(rbf, C=10)``, on the same outer folds (:mod:`classify_data`).

Fixed split (the same as ``benchmarks/tune_classify.py``, which chose the defaults):

- ESC-10, held-back classes ``HELD`` (rooster, sea_waves, crackling_fire, sneezing,
  chainsaw), grouped 5-fold by the corpus's ``fold`` column: nothing was tuned on these
  classes. Also all 10 classes (half of them were the tuning classes: marked).
- FSDD: the model is chosen (inner leave-one-speaker-out) and fitted on george, jackson
  and lucas (every take: 1,500 clips), and scored on nicolas (500 clips), whom no choice
  ever saw: in bulk; as his clips arrive in take order (the first 20 one at a time, then 20
  at a time, each batch predicted with his clips received so far, as ``--predict`` after
  each scheduled ingestion); and each clip alone (no other clip of his known: the
  per-clip fallback).

The FSDD fit takes about 5 min of one core (12 min on a busy shared machine); ``--takes N``
uses takes 0..N-1 only (say so). ``--all`` adds ESC-10 with all 10 classes and FSDD 4-speaker
LOSO, both nested, both partly tuned on (marked), and much slower; ``--no-esc`` /
``--no-fsdd`` skip ESC-10 / FSDD (partial runs write
``classify_benchmark_partial<flags>.json``). Prints a table and writes
``benchmarks/results/classify_benchmark.json``.
Run: ``python benchmarks/classify_benchmark.py`` from the repository root.

Figures (2026-12-02, round 22 of ``tune_classify.py``: a group-normalised model reads each
test group at the frequency warp, of 1 and ``test_warps`` 0.9 / 0.95 / 1.05 / 1.1, that its
clips are predicted most confidently at, classify version 9; ``--no-esc`` and ``--all
--no-fsdd``, run once for that choice, side by side on a busy 2-core machine; stage
nested, baseline on the same folds in the same run; before = the previous run, round 21):

=====================================================  ======  ======  ========  =====
part                                                   before  stage   baseline  goal
=====================================================  ======  ======  ========  =====
ESC-10 all 10 classes, grouped 5-fold (half tuned on)  0.897   0.897   0.790     0.88
ESC-10 5 held-back classes, grouped 5-fold             0.975   0.975   0.875
FSDD nicolas, trained on 3 speakers, in bulk           0.858   0.880   0.282     0.90
FSDD nicolas, as his clips arrive                      0.848   0.856
FSDD nicolas, each clip alone (per-clip fallback)      0.664   0.664
=====================================================  ======  ======  ========  =====

Test-time warping lifted the leave-one-tuning-speaker-out vote 0.895 -> 0.902 and the nested
CV on the three tuning speakers here 0.883 -> 0.902; on nicolas it carries over by 11 clips of
500 in bulk (0.858 -> 0.880) and 4 as his clips arrive (a batch's warp is chosen on his clips
so far); his clips read alone do not move (the per-clip fallback reads no warp). ESC-10 is
unchanged: per-clip variants are chosen (held-back ``ensemble-top2/clip``, all 10
``hgb/clip``), which are never warped. Chosen by the stage's inner CV: FSDD ``ensemble``
(inner CV 0.902, before 0.895; ``mlp`` 0.843 -> 0.880). Stage time (wall / process CPU,
nested choice included): ESC-10 held-back 173 s / 61 s, all 10 386 s / 180 s, FSDD fit
393 s / 129 s (the two runs shared the machine with other work; the same fit on the tuning
speakers with and without the warps, one after the other: 146 s / 105 s of CPU).

Figures of round 21 (``upper_warps``, the previous run; before = round ``--trim``): ESC-10 all
0.897 (0.902), held-back 0.975 (0.975), FSDD nicolas bulk 0.858 (0.848), arriving 0.848
(0.842), alone 0.664 (0.664); FSDD fit 195 s / 130 s.

Figures of the round ``--trim`` (``trim_db`` 30 -> 20, the previous run; before = the run
before it, at 30 dB): ESC-10 all 0.902 (0.902), held-back 0.975 (0.970), FSDD nicolas bulk
0.848 (0.862), arriving 0.842 (0.862), alone 0.664 (0.570).

The trim that lifted the leave-one-tuning-speaker-out vote from 0.835 to 0.884 (and the
nested CV on the three tuning speakers to 0.877 here) does not carry over to nicolas in bulk:
0.862 -> 0.848 (7 clips of 500), while his clips read alone gain 9 points (0.570 -> 0.664;
the fallback's CV 0.749). Chosen by the stage's inner CV: ESC-10 all ``hgb/clip`` (before
``ensemble-top2/clip``), held-back ``ensemble-top2/clip`` (vote of ``stats/clip`` and
``hgb/clip``; before ``hgb/clip``), FSDD ``ensemble`` (vote of all four; inner CV 0.884;
fallback ``ensemble-top2/clip``, the vote of ``mlp/clip`` and ``hgb/clip``). Stage time
(wall / process CPU, nested choice included): ESC-10 held-back 125 s / 47 s, all 10 153 s /
137 s, FSDD fit 186 s / 87 s; the trim adds no work (each candidate's CV took the same time
at 20 and 30 dB in the tuning sweep).

Previous figures (2026-12-02, ``sequence`` without the MFCC deltas): ESC-10 all 0.902 (before
that 0.902), held-back 0.970 (0.970), FSDD nicolas bulk 0.862 (0.858), arriving 0.862
(0.850), alone 0.570 (0.570); ESC-10 all ``ensemble-top2/clip``, held-back ``hgb/clip``, FSDD
``ensemble`` (inner CV 0.835); stage time ESC-10 held-back 136 s, all 10 463 s, FSDD fit
246 s; the demo dataset (``make run``: 300 clips, every candidate) 189 s.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import (  # noqa: E402
    ROOT,
    baseline_features,
    baseline_predict,
    clips_frame,
    load,
)
from tune_classify import ESC_HELD, FSDD_TAKES, FSDD_TUNE  # noqa: E402

from audiopipe.stages.classify import Classify  # noqa: E402
from audiopipe.stages.classify.model import cv_splits  # noqa: E402
from audiopipe.stages.classify.select import fit_select  # noqa: E402
from audiopipe.stages.params import resolve  # noqa: E402


def run(ds, part, target: str, groups: str, sr: int, label: str) -> dict:
    ids = part.clip_id.tolist()
    y = part[target].astype(str).to_numpy(dtype=object)
    g = part[groups].astype(str).to_numpy(dtype=object)
    p = resolve(Classify.params, {"target": target, "groups": groups})
    t, cpu = time.time(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = fit_select(ds, ids, y, g, p)
    t_stage, cpu_stage = time.time() - t, time.process_time() - cpu
    t = time.time()
    Xb = baseline_features(part.uri.tolist(), sr)
    splits, _ = cv_splits(y, g)
    base = np.empty(len(y), dtype=object)
    for tr, te in splits:
        base[te] = baseline_predict(Xb[tr], y[tr], Xb[te])
    t_base = time.time() - t
    out = {
        "clips": len(ids),
        "stage": sel.metrics["accuracy"],
        "baseline": float(np.mean(base == y)),
        "chosen": sel.bundle["candidate"],
        "why": sel.why,
        "stage_s": round(t_stage, 1),
        "stage_cpu_s": round(cpu_stage, 1),
        "baseline_s": round(t_base, 1),
    }
    for grp in sorted(set(g)):
        m = g == grp
        out[f"stage[{grp}]"] = sel.metrics[f"accuracy[{grp}]"]
        out[f"baseline[{grp}]"] = float(np.mean(base[m] == y[m]))
    print(f"{label}: stage {out['stage']:.3f} baseline {out['baseline']:.3f} ({out['why']}; "
          f"{t_stage:.0f} s + {t_base:.0f} s)", flush=True)
    return out


def arrival(bundle, ds, ids: list[str], group: str, first: int = 20, step: int = 20):
    """Predictions of a new group's clips as they arrive (scheduled ingestion): the first
    ``first`` clips one at a time, then ``step`` at a time, each batch predicted with every
    clip of the group received so far (what ``--predict`` after each ingestion does)."""
    from audiopipe.stages.classify.select import predict_bundle

    out = np.empty(len(ids), dtype=object)
    edges = list(range(1, min(first, len(ids)) + 1)) + list(range(first + step, len(ids), step))
    edges = sorted(set(edges + [len(ids)]))
    lo = 0
    for hi in edges:
        g = np.array([group] * hi, dtype=object)
        out[lo:hi] = predict_bundle(bundle, ds, ids[:hi], g, list(range(lo, hi)))[0]
        lo = hi
    return out


def new_speaker(ds, c, label: str) -> dict:
    """FSDD: choose and fit on the tuning speakers, score nicolas in bulk, each clip alone
    (no other clip of his known), and as his clips arrive (one at a time, then in batches)."""
    from audiopipe.stages.classify.select import predict_bundle

    c = c.assign(take=c.uri.str.extract(r"_(\d+)\.wav$")[0].astype(int))
    train = c[c.speaker.isin(FSDD_TUNE)]
    test = c[c.speaker == "nicolas"].sort_values(["take", "digit"])  # arrival order
    y, g = (train.digit.astype(str).to_numpy(dtype=object),
            train.speaker.astype(str).to_numpy(dtype=object))
    p = resolve(Classify.params, {"target": "digit", "groups": "speaker"})
    t, cpu = time.time(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = fit_select(ds, train.clip_id.tolist(), y, g, p)
        t_fit, cpu_fit = time.time() - t, time.process_time() - cpu
        bundle = {**sel.bundle, "groups": "speaker"}
        yt = test.digit.astype(str).to_numpy(dtype=object)
        gt = test.speaker.astype(str).to_numpy(dtype=object)
        ids = test.clip_id.tolist()
        bulk = predict_bundle(bundle, ds, ids, gt)[0]
        alone = predict_bundle(bundle, ds, ids,
                               np.array([f"c{k}" for k in range(len(ids))], dtype=object))[0]
        arrived = arrival(bundle, ds, ids, "nicolas")
    t_stage = time.time() - t
    t = time.time()
    Xtr = baseline_features(train.uri.tolist(), 8000)
    Xte = baseline_features(test.uri.tolist(), 8000)
    base = baseline_predict(Xtr, y, Xte)
    out = {
        "clips": [len(train), len(test)],
        "stage": float(np.mean(bulk == yt)),
        "stage_each_clip_alone": float(np.mean(alone == yt)),
        "stage_as_they_arrive": float(np.mean(arrived == yt)),
        "stage_nested_cv_tuning_speakers": sel.metrics["accuracy"],
        "fallback": (sel.bundle["fallback"] or {}).get("candidate"),
        "fallback_cv_accuracy": sel.metrics.get("fallback_cv_accuracy"),
        "baseline": float(np.mean(base == yt)),
        "chosen": sel.bundle["candidate"],
        "why": sel.why,
        "fit_s": round(t_fit, 1),
        "fit_cpu_s": round(cpu_fit, 1),
        "stage_s": round(t_stage, 1),
        "baseline_s": round(time.time() - t, 1),
    }
    print(f"{label}: stage {out['stage']:.3f} in bulk, {out['stage_as_they_arrive']:.3f} as they "
          f"arrive, {out['stage_each_clip_alone']:.3f} each clip alone; baseline "
          f"{out['baseline']:.3f} ({out['why']}; fit {t_fit:.0f} s)", flush=True)
    return out


def main() -> None:
    res = {}
    takes = FSDD_TAKES
    if "--takes" in sys.argv:  # a smaller FSDD subsample on a busy machine (say so)
        takes = int(sys.argv[sys.argv.index("--takes") + 1])
    esc = load("esc10")
    if "--no-esc" not in sys.argv:
        c = clips_frame(esc)
        res["esc10 held-back classes (5), grouped 5-fold"] = run(
            esc, c[c.category.isin(ESC_HELD)], "category", "fold", 22050, "esc10 held-back")
    fsdd = load("fsdd")
    c = clips_frame(fsdd)
    take = c.uri.str.extract(r"_(\d+)\.wav$")[0].astype(int)
    c = c[take < takes]
    if "--no-fsdd" not in sys.argv:
        res[f"fsdd new speaker nicolas (trained on 3 speakers, takes 0-{takes - 1})"] = (
            new_speaker(fsdd, c, "fsdd nicolas"))
    if "--all" in sys.argv:  # slower: every class / every speaker, partly tuned on
        esc_all = clips_frame(esc)
        res["esc10 all 10 classes, grouped 5-fold (half tuned on)"] = run(
            esc, esc_all, "category", "fold", 22050, "esc10 all")
        if "--no-fsdd" not in sys.argv:
            res["fsdd LOSO 4 speakers (3 looked at in tuning)"] = run(
                fsdd, c, "digit", "speaker", 8000, "fsdd LOSO")
    if not res:
        return
    print(f"\nFSDD takes 0-{takes - 1}")
    print(f"{'part':58s} {'stage':>7s} {'base':>7s} {'ratio':>6s}  chosen")
    for name, r in res.items():
        print(f"{name:58s} {r['stage']:7.3f} {r['baseline']:7.3f} "
              f"{r['stage'] / r['baseline']:6.2f}  {r['chosen']}")
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    name = "classify_benchmark.json" if len(sys.argv) == 1 else (
        "classify_benchmark_partial" + "".join(a.strip("-").replace("-", "_") for a in sys.argv[1:]
                                               if a.startswith("--")) + ".json")
    (dest / name).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

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
- FSDD, leave-one-speaker-out over the four speakers. The candidate set was looked at on
  george, jackson and lucas (``tune_classify.py``): only the fold that tests nicolas is
  clean; the 4-fold mean is printed too, marked.

FSDD is subsampled to takes 0-24 of every digit and speaker (1,000 clips; the full 2,000
with nested selection takes over 10 min on one busy core). Prints a table and writes
``benchmarks/results/classify_benchmark.json``.
Run: ``python benchmarks/classify_benchmark.py`` from the repository root.
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
from tune_classify import ESC_HELD, FSDD_TAKES  # noqa: E402

from audiopipe.stages.classify import Classify  # noqa: E402
from audiopipe.stages.classify.model import cv_splits  # noqa: E402
from audiopipe.stages.classify.select import fit_select  # noqa: E402
from audiopipe.stages.params import resolve  # noqa: E402


def run(ds, part, target: str, groups: str, sr: int, label: str) -> dict:
    ids = part.clip_id.tolist()
    y = part[target].astype(str).to_numpy(dtype=object)
    g = part[groups].astype(str).to_numpy(dtype=object)
    p = resolve(Classify.params, {"target": target, "groups": groups})
    t = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = fit_select(ds, ids, y, g, p)
    t_stage = time.time() - t
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
        "baseline_s": round(t_base, 1),
    }
    for grp in sorted(set(g)):
        m = g == grp
        out[f"stage[{grp}]"] = sel.metrics[f"accuracy[{grp}]"]
        out[f"baseline[{grp}]"] = float(np.mean(base[m] == y[m]))
    print(f"{label}: stage {out['stage']:.3f} baseline {out['baseline']:.3f} ({out['why']}; "
          f"{t_stage:.0f} s + {t_base:.0f} s)", flush=True)
    return out


def main() -> None:
    res = {}
    esc = load("esc10")
    c = clips_frame(esc)
    res["esc10 held-back classes (5), grouped 5-fold"] = run(
        esc, c[c.category.isin(ESC_HELD)], "category", "fold", 22050, "esc10 held-back")
    res["esc10 all 10 classes, grouped 5-fold (half tuned on)"] = run(
        esc, c, "category", "fold", 22050, "esc10 all")
    fsdd = load("fsdd")
    c = clips_frame(fsdd)
    take = c.uri.str.extract(r"_(\d+)\.wav$")[0].astype(int)
    res["fsdd LOSO (takes 0-24)"] = run(
        fsdd, c[take < FSDD_TAKES], "digit", "speaker", 8000, "fsdd LOSO")
    print(f"\n{'part':58s} {'stage':>7s} {'base':>7s} {'ratio':>6s}  chosen")
    for name, r in res.items():
        print(f"{name:58s} {r['stage']:7.3f} {r['baseline']:7.3f} "
              f"{r['stage'] / r['baseline']:6.2f}  {r['chosen']}")
    f = res["fsdd LOSO (takes 0-24)"]
    print(f"{'fsdd nicolas only (never looked at)':58s} {f['stage[nicolas]']:7.3f} "
          f"{f['baseline[nicolas]']:7.3f}")
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "classify_benchmark.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""Tuning: how classify's candidate set and defaults were chosen, on tuning parts only.

Fixed split (recorded here; ``benchmarks/classify_benchmark.py`` reports on the rest):

- ESC-10: tuning classes ``ESC_TUNE`` (dog, rain, crying_baby, clock_tick, helicopter),
  grouped 5-fold by ``fold``; the other five (``ESC_HELD``) are never looked at here.
- FSDD: speakers george, jackson, lucas (``FSDD_TUNE``), leave-one-speaker-out among them
  (1,500 clips); nicolas is never looked at here.

For each part it prints every candidate's grouped-CV accuracy (the stage's own features,
:func:`audiopipe.stages.classify.candidates.build`), every soft-vote combination of them,
and the SVM's ``C`` on a small grid. Decisions taken from its output (2026-12-01):

- ``stats`` (rich statistics + SVM) beats ``sequence`` on environmental sounds (0.915 vs
  0.845) and ties it on digits (0.77 vs 0.78): both stay; gradient boosting made cheap
  (60 rounds, 32 bins, 30 % of features per split: 0.935 on ESC tuning classes, 25 s
  instead of 127 s per CV; 0.715 on digits); the log-mel MLP (0.865 / 0.77) is kept
  because it helps the soft vote on digits (stats+sequence+mlp 0.807, +3 points over the
  best single candidate); ``ensemble`` = soft vote of every candidate tried (0.915 on
  ESC tuning classes), chosen per dataset like the others.
- ``C = 10`` kept (the grid moves accuracy by about a point either way).

Run: ``python benchmarks/tune_classify.py`` from the repository root (about 5-8 min on one
core); writes ``benchmarks/results/tune_classify.json``.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import ROOT, clips_frame, load  # noqa: E402

from audiopipe.stages.classify import Classify  # noqa: E402
from audiopipe.stages.classify.candidates import MODEL_OF, Frames, build  # noqa: E402
from audiopipe.stages.classify.model import ClipClassifier, cv_splits, oof_proba  # noqa: E402
from audiopipe.stages.classify.select import _augment  # noqa: E402
from audiopipe.stages.params import resolve  # noqa: E402

ESC_TUNE = ("dog", "rain", "crying_baby", "clock_tick", "helicopter")
ESC_HELD = ("rooster", "sea_waves", "crackling_fire", "sneezing", "chainsaw")
FSDD_TUNE = ("george", "jackson", "lucas")
FSDD_TAKES = 50  # every take of every digit and speaker (the benchmark's default)


def tune(ds, part, target: str, groups: str, label: str) -> dict:
    ids = part.clip_id.tolist()
    y = part[target].astype(str).to_numpy(dtype=object)
    g = part[groups].astype(str).to_numpy(dtype=object)
    p = resolve(Classify.params, {"target": target, "groups": groups})
    frames = Frames(ds, ids)
    splits, _ = cv_splits(y, g)
    classes = np.unique(y)
    P, out = {}, {}
    for cand in MODEL_OF:
        t = time.time()
        _, X, _ = build(cand, frames, g, p)
        aug = _augment(cand, frames, g, p, True)
        Cs = (3.0, 10.0, 30.0) if cand == "stats" else (10.0,)
        for C in Cs:
            pr = oof_proba(ClipClassifier(MODEL_OF[cand], C=C), X, y, splits, classes,
                           augment=aug)
            key = cand if C == 10.0 else f"{cand} C={C:g}"
            out[key] = float(np.mean(classes[pr.argmax(1)] == y))
            if C == 10.0:
                P[cand] = pr
        print(f"{label} {cand:9s} {out[cand]:.3f} ({time.time() - t:.0f} s)", flush=True)
    for k in range(2, len(P) + 1):
        for combo in itertools.combinations(P, k):
            s = np.mean([P[n] for n in combo], axis=0)
            out["+".join(combo)] = float(np.mean(classes[s.argmax(1)] == y))
    for k, v in sorted(out.items(), key=lambda kv: -kv[1]):
        print(f"{label:24s} {k:34s} {v:.3f}")
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    res = {}
    esc = load("esc10")
    c = clips_frame(esc)
    res["esc10 tuning classes"] = tune(esc, c[c.category.isin(ESC_TUNE)], "category", "fold",
                                       "esc10 tune")
    fsdd = load("fsdd")
    c = clips_frame(fsdd)
    part = c[c.speaker.isin(FSDD_TUNE)]
    res["fsdd tuning speakers"] = tune(fsdd, part, "digit", "speaker", "fsdd tune")
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tune_classify.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

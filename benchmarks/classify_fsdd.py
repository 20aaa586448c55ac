"""Benchmark: classify on ../shared/corpora/fsdd, leave-one-speaker-out, default vs anchor.

Ingests all 2000 clips (8 kHz, n_fft 512, hop 128, 20 MFCC + deltas from 40 mels) with the
real pipeline into a temporary folder, then runs the classify stage twice:

- default: the stage's defaults with ``groups=speaker``: leading/trailing silence trimmed
  (RMS, 30 dB), speaker-CMVN 13 MFCC + 13 delta frames resampled to 10 frames (+ their
  mean/std, log length), standardised within speaker, ``SVC(rbf, C=10)`` trained with
  VTLN-warped copies (0.9, 1.1) of the training speakers, one round of self-training on
  the held-out speaker's predicted labels;
- anchor: random forest on MFCC/delta mean/std clip statistics (the issue's anchor recipe,
  with audiopipe's MFCCs), no speaker normalisation, no time segments.

Every figure is an outer leave-one-speaker-out fold: the held-out speaker's labels were
used for no choice. The design choices (13 vs 20 MFCC, 8/10/12 frames, speaker vs
utterance CMVN, SVM C, logistic regression, warped copies, self-training, test-time
warps) were made by an inner leave-one-speaker-out CV inside each outer training fold
(scripts and scores in the stage engineer's report, not in this repo).
Measured (2026-11-25, 2 shared cores): default accuracy 0.857, macro-F1 0.854
(george 0.818, jackson 0.920, lucas 0.858, nicolas 0.830), 47-54 s; anchor 0.42.

Prints a table and writes ``benchmarks/results/classify_fsdd.json``.
Run: ``python benchmarks/classify_fsdd.py`` from the repository root.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "stages"))

from _ingest import FSDD_RECIPE, ingest  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from audiopipe.stages import run_stage  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"


def main() -> None:
    fsdd = CORPORA / "fsdd"
    if not fsdd.is_dir():
        fsdd = Path("/work/shared/corpora/fsdd")
    out = Path(tempfile.mkdtemp())
    t = time.time()
    ds = ingest(out, "fsdd", str(fsdd / "recordings"), fsdd / "labels.csv", 8000, FSDD_RECIPE)
    t_ingest = time.time() - t
    runs = {
        "default": {"target": "digit", "groups": "speaker"},
        "anchor": {
            "target": "digit",
            "groups": "speaker",
            "model": "rf",
            "frames": 0,
            "segments": 0,
            "features": ["mfcc", "mfcc_delta"],
            "group_norm": False,
        },
    }
    spk = ds.table("clips", ["clip_id", "speaker"]).to_pandas()
    res = {}
    for name, p in runs.items():
        t = time.time()
        r = run_stage(ds, "classify", p, force=True)
        res[name] = {**r["metrics"], "seconds": round(time.time() - t, 1)}
        pr = ds.table("predictions").to_pandas().merge(spk, on="clip_id")
        for s, part in pr.groupby("speaker"):
            res[name][f"macro_f1[{s}]"] = f1_score(part.truth, part.label, average="macro")
    print(
        f"fsdd: {ds.table('clips').num_rows} clips, ingest {t_ingest:.1f} s; "
        "leave-one-speaker-out, outer-fold figures (held-out speaker never used for any choice)"
    )
    keys = ["accuracy", "macro_f1"] + [k for k in res["default"] if k.startswith("accuracy[")]
    keys += [k for k in res["default"] if k.startswith("macro_f1[")] + ["seconds"]
    print(f"{'metric':22s} {'default':>10s} {'anchor':>10s}")
    for k in keys:
        print(f"{k:22s} " + " ".join(f"{res[n].get(k, float('nan')):10.3f}" for n in runs))
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "classify_fsdd.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

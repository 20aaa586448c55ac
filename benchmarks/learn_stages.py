"""Benchmark: tag, segment and recommend on material built from ../shared/corpora.

- tag: 200 mixtures (3 s, 16 kHz) of 2-3 real clips of 8 classes (fsdd speech, six ESC-10
  categories, music excerpts), grouped 5-fold CV: ROC-AUC macro, mAP, F1 macro.
- segment: 10 long recordings (40 s) concatenating fsdd digit runs, music excerpts and
  silences: supervised (3-fold over recordings) and novelty F@0.5 s, F@3 s, frame accuracy;
  periodic S1/S2 on heart/pascal_a (F-measure, +-0.1 s, annotated spans).
- recommend: all 400 ESC-10 clips, SIMULATED listening histories (tastes depend on the
  category), cold-start recall@10 / NDCG@10 vs popularity and random.

Prints a table and writes ``benchmarks/results/learn_stages.json``.
Run: ``python benchmarks/learn_stages.py`` from the repository root.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiopipe.stages import run_stage  # noqa: E402
from tests.stages._ingest import ESC_RECIPE, MIX_RECIPE, ingest  # noqa: E402
from tests.stages._longrec import make_long_recordings  # noqa: E402
from tests.stages._mixtures import make_mixtures  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"
if not CORPORA.is_dir():
    CORPORA = Path("/work/shared/corpora")


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    res: dict[str, dict] = {}
    t = time.time()
    src = make_mixtures(CORPORA, tmp / "mix", n=200, seed=1)
    ds = ingest(tmp / "o1", "mix", str(src), src / "labels.csv", 16000, MIX_RECIPE)
    res["tag: 200 real mixtures, 8 tags"] = run_stage(ds, "tag", {"groups": "group"})["metrics"]
    res["tag: 200 real mixtures, 8 tags"]["seconds"] = round(time.time() - t, 1)

    t = time.time()
    src = make_long_recordings(CORPORA, tmp / "long", n=10, duration=40.0, seed=1)
    ds = ingest(tmp / "o2", "long", str(src / "*.flac"), None, 16000, ESC_RECIPE)
    ev = str(src / "events.csv")
    res["segment supervised: 10 x 40 s"] = run_stage(
        ds, "segment", {"mode": "supervised", "events": ev, "background": "silence"}
    )["metrics"]
    res["segment novelty: 10 x 40 s"] = run_stage(
        ds, "segment", {"mode": "novelty", "events": ev, "kernel_s": 2.0}
    )["metrics"]
    heart = CORPORA / "heart" / "pascal_a"
    ds = ingest(tmp / "o3", "heart", str(heart / "audio"), None, 4000, ESC_RECIPE)
    res["segment periodic: pascal_a S1/S2"] = run_stage(
        ds, "segment", {"mode": "periodic", "reference": str(heart / "s1s2_locations.csv")}
    )["metrics"]
    res["segment periodic: pascal_a S1/S2"]["seconds"] = round(time.time() - t, 1)

    t = time.time()
    esc = CORPORA / "esc10"
    ds = ingest(
        tmp / "o4",
        "esc",
        str(esc / "audio"),
        esc / "esc10.csv",
        16000,
        ESC_RECIPE,
        on="filename",
        root=esc / "audio",
    )
    r = run_stage(ds, "recommend", {"simulate": "category"})["evaluation"]
    for name, m in r.items():
        res[f"recommend ESC-10 (simulated listens): {name}"] = m
    res[f"recommend ESC-10 (simulated listens): {name}"]["seconds"] = round(time.time() - t, 1)

    for name, m in res.items():
        print(name)
        print("   " + ", ".join(f"{k}={v:.3f}" for k, v in m.items()))
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "learn_stages.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

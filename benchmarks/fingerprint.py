"""Fingerprint identification and retrieval benchmark (issue 5, parts 1 and 4).

Fingerprinting: the music corpus (11 OGG files) is ingested into a temporary dataset
(sample_rate 22050), fingerprinted with the ``fingerprint`` stage, and queried with
``--n-excerpts`` random 5-second excerpts per clip (whole clip when shorter) under each
condition: clean; white noise and babble (sum of 6 fsdd speech clips) at 10, 5 and 0 dB
SNR (over the excerpt, at 22050 Hz); MP3 recompression (soundfile, 22050 Hz, default
bitrate) and re-read; resampled 22050 -> 8000 -> 22050 Hz with soxr (band limit to 4 kHz).
False positives: 400 fsdd clips, 100 ESC-10 clips and 5 s of silence as queries.

Retrieval: precision@10 and mAP (class labels as relevance, query excluded) on fsdd (digit)
and the demo corpus (label), timbre and tonal views, plus exact-search latency vs N.

Run from the repository root::

    python benchmarks/fingerprint.py [--n-excerpts 20] [--skip-retrieval]

Prints tables and writes ``benchmarks/results/fingerprint.json``.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import audiopipe  # noqa: E402
from audiopipe.audio import load, resample  # noqa: E402
from audiopipe.config import parse_config  # noqa: E402
from audiopipe.ingest import extract_shard, plan_ingest, publish  # noqa: E402
from audiopipe.stages import fingerprint as fp  # noqa: E402
from audiopipe.stages import run_stage  # noqa: E402

CORPORA = Path(os.environ.get("AUDIOPIPE_CORPORA", ROOT.parent.parent / "shared" / "corpora"))
if not CORPORA.exists():
    CORPORA = Path("/work/shared/corpora")
SR = 22050
EXCERPT_S = 5.0


def ingest(folder: Path, out: Path, name: str, labels: Path | None = None) -> audiopipe.Dataset:
    d: dict = {"source": str(folder), "sample_rate": SR}
    if labels is not None:
        d["labels"] = {"path": str(labels), "on": "path"}
    cfg = parse_config({"storage": str(out), "datasets": {name: d}})
    plan = plan_ingest(cfg, name)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(out), name)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    px = float(np.mean(x**2)) + 1e-12
    pn = float(np.mean(noise**2)) + 1e-12
    return (x + noise * np.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def babble(
    rng: np.random.Generator, n: int, speech: list[np.ndarray], talkers: int = 6
) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for _ in range(talkers):
        pos = 0
        while pos < n:  # each talker: speech clips back to back
            s = speech[int(rng.integers(len(speech)))]
            s = s / (np.sqrt(np.mean(s**2)) + 1e-9)
            m = min(n - pos, s.size)
            out[pos : pos + m] += s[:m]
            pos += m
    return out


def mp3(x: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="MP3")
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    return y


CONDITIONS = [
    "clean",
    "white10",
    "white5",
    "white0",
    "babble10",
    "babble5",
    "babble0",
    "mp3",
    "resampled",
]


def degrade(
    cond: str, x: np.ndarray, rng: np.random.Generator, speech: list[np.ndarray]
) -> np.ndarray:
    if cond == "clean":
        return x
    if cond.startswith("white"):
        return add_noise(x, rng.standard_normal(x.size).astype(np.float32), float(cond[5:]))
    if cond.startswith("babble"):
        return add_noise(x, babble(rng, x.size, speech), float(cond[6:]))
    if cond == "mp3":
        return mp3(x)
    if cond == "resampled":
        return resample(resample(x, SR, 8000), 8000, SR)[: x.size]
    raise ValueError(cond)


def bench_fingerprint(tmp: Path, n_excerpts: int, seed: int = 0) -> dict:
    ds = ingest(CORPORA / "music", tmp / "out", "music")
    t0 = time.perf_counter()
    rep = run_stage(ds, "fingerprint", force=True)
    build_s = time.perf_counter() - t0
    table = ds.table("fingerprints")
    files = glob.glob(str(tmp / "out" / "music" / "tables" / "fingerprints" / "*.parquet"))
    nbytes = sum(os.path.getsize(f) for f in files)
    clips = ds.table("clips", ["clip_id", "uri", "duration_s"]).to_pylist()
    audio_s = sum(c["duration_s"] for c in clips)
    idx = fp.load_index(ds)
    rng = np.random.default_rng(seed)
    fsdd = sorted(glob.glob(str(CORPORA / "fsdd" / "recordings" / "*.wav")))
    speech = [load(f, SR)[0] for f in rng.choice(fsdd, 60, replace=False)]
    res: dict[str, dict] = {
        c: {"n": 0, "correct": 0, "offset_ok": 0, "wrong": 0} for c in CONDITIONS
    }
    lat = []
    n_ex = int(EXCERPT_S * SR)
    for c in clips:
        y, _ = ds.load_audio(c["clip_id"], sr=SR)
        for _ in range(n_excerpts):
            start = int(rng.integers(0, max(1, y.size - n_ex)))
            x = y[start : start + n_ex]
            for cond in CONDITIONS:
                q = degrade(cond, x, rng, speech)
                t1 = time.perf_counter()
                m = idx.match(*fp.landmarks(q, SR, density=fp.QUERY_DENSITY))
                lat.append(time.perf_counter() - t1)
                r = res[cond]
                r["n"] += 1
                if m["clip_id"] == c["clip_id"]:
                    r["correct"] += 1
                    r["offset_ok"] += abs(m["offset_s"] - start / SR) < 0.1
                elif m["clip_id"] is not None:
                    r["wrong"] += 1
    # false positives: queries not in the index
    fp_queries = [load(f, SR)[0] for f in rng.choice(fsdd, 400, replace=False)]
    esc = sorted(glob.glob(str(CORPORA / "esc10" / "audio" / "*.ogg")))
    fp_queries += [load(f, SR)[0] for f in rng.choice(esc, 100, replace=False)]
    fp_queries += [np.zeros(n_ex, np.float32)]
    fps = [idx.match(*fp.landmarks(q, SR, density=fp.QUERY_DENSITY)) for q in fp_queries]
    n_fp = sum(m["clip_id"] is not None for m in fps)
    # end-to-end identify() on files (decode + landmarks + lookup)
    qfile = tmp / "q.wav"
    y, _ = ds.load_audio(clips[3]["clip_id"], sr=44100)
    sf.write(qfile, y[44100 * 10 : 44100 * 15], 44100)
    fp.identify(ds, qfile)
    t1 = time.perf_counter()
    for _ in range(10):
        m = fp.identify(ds, qfile)
    ident_ms = (time.perf_counter() - t1) / 10 * 1000
    out = {
        "conditions": {
            k: {
                "accuracy": v["correct"] / v["n"],
                "offset_within_0.1s": v["offset_ok"] / max(v["correct"], 1),
                "wrong_clip": v["wrong"] / v["n"],
                "n": v["n"],
            }
            for k, v in res.items()
        },
        "false_positive_rate": n_fp / len(fp_queries),
        "false_positive_queries": len(fp_queries),
        "false_positive_max_confidence": max(m["confidence"] for m in fps),
        "index_rows": table.num_rows,
        "index_bytes": nbytes,
        "audio_seconds": audio_s,
        "build_seconds": build_s,
        "build_x_realtime": audio_s / build_s,
        "match_ms_median": 1000 * float(np.median(lat)),
        "identify_file_ms": ident_ms,
        "identify_example": {k: m[k] for k in ("clip_id", "offset_s", "confidence", "votes")},
        "run_report": rep,
    }
    print(f"\nfingerprint: {len(clips)} clips, {audio_s:.1f} s, {n_excerpts} excerpts/clip")
    print(f"{'condition':<11} {'acc':>6} {'offset<0.1s':>11} {'wrong':>6} {'n':>5}")
    for k, v in out["conditions"].items():
        print(
            f"{k:<11} {v['accuracy']:6.3f} {v['offset_within_0.1s']:11.3f} {v['wrong_clip']:6.3f} {v['n']:5d}"
        )
    print(
        f"false positives {n_fp}/{len(fp_queries)} = {out['false_positive_rate']:.3f}  "
        f"(max confidence {out['false_positive_max_confidence']:.2f})"
    )
    print(
        f"index {table.num_rows} rows, {nbytes} bytes; build {build_s:.2f} s "
        f"({out['build_x_realtime']:.0f}x realtime); match {out['match_ms_median']:.1f} ms median; "
        f"identify(file) {ident_ms:.1f} ms"
    )
    return out


def bench_retrieval(tmp: Path) -> dict:
    from audiopipe.demo import make_demo_corpus
    from audiopipe.stages import retrieve as rt

    out: dict = {}
    demo = make_demo_corpus(tmp / "demo_src", n_per_class=30, seed=0)
    sets = {
        "fsdd": (CORPORA / "fsdd", CORPORA / "fsdd" / "labels.csv", "digit"),
        "demo": (demo, demo / "labels.csv", "label"),
    }
    print(
        f"\nretrieval (query excluded) {'dataset':<6} {'view':<7} {'P@10':>6} {'mAP':>6} {'build s':>8}"
    )
    for name, (folder, labels, col) in sets.items():
        t0 = time.perf_counter()
        ds = ingest(folder, tmp / "out", name, labels)
        ingest_s = time.perf_counter() - t0
        for view in ("timbre", "tonal"):
            t0 = time.perf_counter()
            run_stage(ds, "retrieve", {"views": [view]}, force=True)
            build_s = time.perf_counter() - t0
            m = rt.evaluate(ds, col, view=view, k=10)
            out[f"{name}/{view}"] = {**m, "build_seconds": build_s, "ingest_seconds": ingest_s}
            print(
                f"{'':<26} {name:<6} {view:<7} {m['precision_at_10']:6.3f} {m['map']:6.3f} {build_s:8.1f}"
            )
    out["exact_search_scaling"] = rt.scaling_benchmark()
    print("\nexact search (cosine, d=96, float32, one query, top-10)")
    for r in out["exact_search_scaling"]:
        print(f"N={r['n']:>9,}  {r['ms_per_query']:8.2f} ms/query  {r['index_mb']:8.1f} MB")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-excerpts", type=int, default=20)
    ap.add_argument("--skip-retrieval", action="store_true")
    ap.add_argument("--skip-fingerprint", action="store_true")
    args = ap.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_fingerprint:
            results["fingerprint"] = bench_fingerprint(tmp, args.n_excerpts)
        if not args.skip_retrieval:
            results["retrieval"] = bench_retrieval(tmp)
    os.makedirs(ROOT / "benchmarks" / "results", exist_ok=True)
    path = ROOT / "benchmarks" / "results" / "fingerprint.json"
    path.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

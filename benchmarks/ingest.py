"""Ingestion throughput: audio hours per wall second, 1 and 2 Dask workers, next to decode only.

Generates (once, cached under ``data/bench/ingest_corpus``) a corpus of FLAC files,
44.1 kHz stereo, at least ``--hours`` of audio, then on the same files:

* decode only: soundfile read of every file on one core (no resampling, no features);
* decode + resample to 22.05 kHz mono (what a worker does before features);
* the real ``ingest`` Prefect flow on a Dask LocalCluster of 1 and of 2 worker processes,
  default recipe, fresh output folder each time.

Prints a table and writes ``benchmarks/results/ingest.json``. Run::

    .venv/bin/python benchmarks/ingest.py --hours 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_corpus(
    folder: Path, hours: float, file_seconds: float = 120.0, sr: int = 44100
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = int(np.ceil(hours * 3600 / file_seconds))
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        p = folder / f"track_{i:04d}.flac"
        files.append(p)
        if p.exists():
            continue
        t = np.arange(int(file_seconds * sr)) / sr
        f0 = 110 * 2 ** rng.uniform(0, 3)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
        y *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t) ** 2
        stereo = np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32)
        with sf.SoundFile(p, "w", sr, 2, format="FLAC", subtype="PCM_16") as f:
            for s in range(0, stereo.shape[0], sr * 10):  # blocks: bounded memory
                f.write(stereo[s : s + sr * 10])
    return files


def decode_only(files: list[Path]) -> tuple[float, float]:
    t0 = time.perf_counter()
    secs = 0.0
    for p in files:
        with sf.SoundFile(p) as f:
            for block in f.blocks(blocksize=f.samplerate * 60, dtype="float32"):
                secs += block.shape[0] / f.samplerate
    return secs, time.perf_counter() - t0


def decode_resample(files: list[Path]) -> tuple[float, float]:
    from audiopipe.audio import stream

    t0 = time.perf_counter()
    secs = 0.0
    for p in files:
        for b in stream(str(p), 22050):
            secs += b.shape[0] / 22050
    return secs, time.perf_counter() - t0


def ingest_with(n_workers: int, corpus: Path, work: Path) -> dict:
    import yaml
    from distributed import LocalCluster

    from flows.ingest import ingest

    out = work / f"out_{n_workers}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = {
        "storage": str(out),
        "datasets": {
            "bench": {"source": str(corpus), "sample_rate": 22050, "shard": {"max_files": 4}}
        },
    }
    cfg_path = work / f"bench_{n_workers}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="4GiB",
    ) as cluster:
        t0 = time.perf_counter()
        row = ingest(
            dataset="bench",
            config_path=str(cfg_path),
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = ingest(
            dataset="bench",
            config_path=str(cfg_path),
            scheduler=cluster.scheduler_address,
            progress=False,
        )
        rerun = time.perf_counter() - t1
    return {
        "workers": n_workers,
        "files": row["files_processed"],
        "failed": row["files_failed"],
        "audio_hours": row["audio_seconds"] / 3600,
        "wall_s": wall,
        "hours_per_wall_s": row["audio_seconds"] / 3600 / wall,
        "x_realtime": row["audio_seconds"] / wall,
        "rerun_unchanged_s": rerun,
        "rerun_processed": again["files_processed"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    work = ROOT / "data" / "bench"
    corpus = work / "ingest_corpus"
    t0 = time.perf_counter()
    files = make_corpus(corpus, args.hours)
    print(
        f"corpus: {len(files)} FLAC files, 44.1 kHz stereo, {args.hours} h "
        f"(ready in {time.perf_counter() - t0:.0f} s)"
    )
    rows = []
    secs, wall = decode_only(files)
    rows.append(
        {
            "what": "decode only (1 core)",
            "audio_hours": secs / 3600,
            "wall_s": wall,
            "x_realtime": secs / wall,
            "hours_per_wall_s": secs / 3600 / wall,
        }
    )
    secs, wall = decode_resample(files)
    rows.append(
        {
            "what": "decode + resample 22.05k mono (1 core)",
            "audio_hours": secs / 3600,
            "wall_s": wall,
            "x_realtime": secs / wall,
            "hours_per_wall_s": secs / 3600 / wall,
        }
    )
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        for n in args.workers:
            r = ingest_with(n, corpus, work)
            rows.append({"what": f"ingest flow, {n} worker(s), default recipe", **r})
    print(f"\n{'what':<45} {'audio h':>8} {'wall s':>8} {'x realtime':>11} {'h / wall s':>11}")
    for r in rows:
        print(
            f"{r['what']:<45} {r['audio_hours']:>8.2f} {r['wall_s']:>8.1f} {r['x_realtime']:>11.1f} "
            f"{r['hours_per_wall_s']:>11.4f}"
        )
    for r in rows:
        if "rerun_unchanged_s" in r:
            print(
                f"re-run on the unchanged corpus, {r['workers']} worker(s): {r['rerun_unchanged_s']:.1f} s, "
                f"{r['rerun_processed']} files processed"
            )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "files": len(files),
        "hours": args.hours,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "ingest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out / 'ingest.json'}")


if __name__ == "__main__":
    main()

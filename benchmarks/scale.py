"""Scale benchmark: throughput on 1 and 2 local workers and through an external scheduler,
incremental re-run time, peak RSS per worker, Prefect + Dask overhead, and an estimate for
1 million hours on 100 workers.

Phases (each on a fresh output folder unless said otherwise):

1. ``inproc``: the plain pipeline functions in this process, no Prefect, no Dask: the
   pure cost of the work (per-shard seconds), the baseline for overhead.
2. ``local1`` / ``local2``: the real ``ingest`` flow; the DaskTaskRunner starts a
   LocalCluster of 1 / 2 worker processes (cluster start-up included, as a user sees it).
3. ``external``: the flow on an external ``dask scheduler`` + 2 ``dask worker`` processes
   started here (``--scheduler tcp://...``); peak RSS of each worker read from the worker.
   ``dask``: the same work as ``client.map(extract_shard)`` on that cluster, no Prefect
   (the difference to ``external`` is Prefect's share).
4. ``rerun``: the flow again on the unchanged corpus (external path): the incremental cost.
5. ``incr``: incremental re-run on ``--incr-files`` short files (default 10,000) after a
   first ingestion with a one-feature recipe (re-run cost depends on files, not hours).

Corpus: generated once under ``data/bench/`` — ``--files`` mono 16 kHz FLAC files of
``--seconds`` each (default 1,000 × 7.2 s = 2 h; ``--full`` = 10,000 files = 20 h).
Prints a table and writes ``benchmarks/results/scale.json``::

    .venv/bin/python benchmarks/scale.py            # 2 h corpus, ~5 min on 2 cores
    .venv/bin/python benchmarks/scale.py --full     # 10,000 files / 20 h
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

RECIPE = {
    "n_fft": 512,
    "hop_length": 256,
    "compute": {"mfcc": {"n_mfcc": 20, "deltas": 1}, "spectral_centroid": {}, "rms": {}},
}
SR = 16000


def make_corpus(folder: Path, n: int, seconds: float, sr: int = SR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / ".complete"
    if done.exists() and done.read_text() == f"{n} {seconds}":
        return folder
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        f0 = 110 * 2 ** rng.uniform(0, 4)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(sub / f"clip_{i:05d}.flac", y.astype(np.float32), sr, subtype="PCM_16")
    done.write_text(f"{n} {seconds}")
    return folder


def write_cfg(
    folder: Path, corpus: Path, recipe: dict, shard: dict | None = None, **cluster: object
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "storage": str(folder / "out"),
        "cluster": {"threads_per_worker": 1, "memory_limit": "3GiB", **cluster},
        "datasets": {
            "b": {
                "source": str(corpus),
                "sample_rate": SR,
                "features": recipe,
                **({"shard": shard} if shard else {}),
            }
        },
    }
    p = folder / "datasets.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_external(n_workers: int) -> tuple[str, list[subprocess.Popen]]:
    from distributed import Client

    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    py = sys.executable
    procs = [
        subprocess.Popen(
            [py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            + ["--port", str(port), "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for _ in range(n_workers):
        procs.append(
            subprocess.Popen(
                [py, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1"]
                + ["--memory-limit", "3GiB", "--no-dashboard", "--host", "127.0.0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            with Client(addr, timeout=5) as c:
                c.wait_for_workers(n_workers, timeout=120)
            return addr, procs
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def worker_peak_rss_mb(addr: str) -> list[float]:
    from distributed import Client

    def peak() -> float:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    with Client(addr, timeout=10) as c:
        return sorted(c.run(peak).values())


def flow(cfg: Path, scheduler: str | None = None) -> tuple[dict, float]:
    from flows.ingest import ingest
    from flows.runtime import flow_run_settings

    t0 = time.perf_counter()
    with flow_run_settings():  # as the CLI runs it
        row = ingest(dataset="b", config_path=str(cfg), scheduler=scheduler, progress=False)
    return row, time.perf_counter() - t0


def inproc(cfg: Path) -> dict:
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    t0 = time.perf_counter()
    plan = plan_ingest(load_config(cfg), "b")
    t1 = time.perf_counter()
    res = [extract_shard(s, plan.context) for s in plan.shards]
    t2 = time.perf_counter()
    row = publish(plan, res)
    t3 = time.perf_counter()
    shard_s = [r.seconds for r in res]
    return {
        "plan_s": t1 - t0,
        "extract_s": t2 - t1,
        "publish_s": t3 - t2,
        "wall_s": t3 - t0,
        "shards": len(res),
        "shard_s_mean": float(np.mean(shard_s)),
        "shard_s_p95": float(np.percentile(shard_s, 95)),
        "files": row["files_processed"],
        "audio_h": row["audio_seconds"] / 3600,
    }


def dask_only(cfg: Path, addr: str) -> dict:
    """The same work through Dask without Prefect: ``client.map(extract_shard)`` + publish."""
    from distributed import Client

    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    t0 = time.perf_counter()
    plan = plan_ingest(load_config(cfg), "b")
    with Client(addr, timeout=10) as c:
        futs = c.map(extract_shard, plan.shards, ctx=plan.context, pure=False)
        res = c.gather(futs)
    row = publish(plan, res)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "files": row["files_processed"],
        "x_realtime": row["audio_seconds"] / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=7.2)
    ap.add_argument("--full", action="store_true", help="10,000 files, 20 h of audio")
    ap.add_argument("--incr-files", type=int, default=10000)
    ap.add_argument("--skip", default="", help="comma-separated phases to skip")
    ap.add_argument("--work", default=str(ROOT / "data" / "bench"))
    args = ap.parse_args()
    if args.full:
        args.files, args.seconds = 10000, 7.2
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    corpus = make_corpus(work / f"scale_{args.files}x{args.seconds:g}", args.files, args.seconds)
    hours = args.files * args.seconds / 3600
    runs = work / "scale_runs"
    shutil.rmtree(runs, ignore_errors=True)
    out: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "corpus": {"files": args.files, "seconds_each": args.seconds, "hours": hours},
        "recipe": RECIPE,
    }

    def report(name: str, row: dict, wall: float) -> None:
        out[name] = {
            "wall_s": wall,
            "files": row["files_processed"],
            "audio_h_per_wall_s": row["audio_seconds"] / 3600 / wall if wall else None,
            "x_realtime": row["audio_seconds"] / wall if wall else None,
            "publish_s": row.get("publish_seconds"),
            "shards": row.get("shards"),
            "run_wall_s": row.get("wall_seconds"),  # plan -> published, without flow start-up
        }
        print(
            f"{name:>9}: {wall:8.1f} s  {out[name]['x_realtime'] or 0:8.0f}x realtime "
            f"({row.get('shards')} shards)",
            flush=True,
        )

    if "inproc" not in skip:
        r = inproc(write_cfg(runs / "inproc", corpus, RECIPE))
        out["inproc"] = r
        print(
            f"   inproc: {r['wall_s']:8.1f} s  {r['audio_h'] * 3600 / r['wall_s']:8.0f}x realtime "
            f"(plan {r['plan_s']:.1f}, extract {r['extract_s']:.1f}, publish {r['publish_s']:.1f}; "
            f"{r['shards']} shards, {r['shard_s_mean']:.2f} s mean)",
            flush=True,
        )
    for n in (1, 2):
        if f"local{n}" in skip:
            continue
        row, wall = flow(write_cfg(runs / f"local{n}", corpus, RECIPE, n_workers=n))
        report(f"local{n}", row, wall)
    if "local2_64" not in skip:
        # the first release's fixed 64-file shards, for the per-task overhead comparison
        row, wall = flow(
            write_cfg(
                runs / "local2_64", corpus, RECIPE, {"max_files": 64, "min_shards": 1}, n_workers=2
            )
        )
        report("local2_64", row, wall)
    addr, procs = start_external(2)
    try:
        if "dask" not in skip:
            out["dask"] = dask_only(write_cfg(runs / "dask", corpus, RECIPE), addr)
            print(
                f"     dask: {out['dask']['wall_s']:8.1f} s  {out['dask']['x_realtime']:8.0f}x "
                "realtime (no Prefect)",
                flush=True,
            )
        if "external" not in skip:
            cfg = write_cfg(runs / "external", corpus, RECIPE)
            row, wall = flow(cfg, addr)
            report("external", row, wall)
            out["external"]["worker_peak_rss_mb"] = worker_peak_rss_mb(addr)
            row, wall = flow(cfg, addr)
            out["rerun"] = {"wall_s": wall, "files_processed": row["files_processed"]}
            print(f"    rerun: {wall:8.1f} s  ({args.files} unchanged files)", flush=True)
        if "incr" not in skip:
            small = make_corpus(work / f"incr_{args.incr_files}x0.1", args.incr_files, 0.1)
            cheap = {"n_fft": 256, "hop_length": 128, "compute": {"rms": {}}}
            cfg = write_cfg(runs / "incr", small, cheap)
            row, wall = flow(cfg, addr)
            print(f"incr-init: {wall:8.1f} s  ({row['files_processed']} files)", flush=True)
            row2, wall2 = flow(cfg, addr)
            from audiopipe.config import load_config
            from audiopipe.ingest import plan_ingest

            t0 = time.perf_counter()
            plan_ingest(load_config(cfg), "b")
            plan_s = time.perf_counter() - t0
            out["incr"] = {
                "files": args.incr_files,
                "first_s": wall,
                "rerun_s": wall2,
                "rerun_plan_only_s": plan_s,
                "rerun_processed": row2["files_processed"],
            }
            print(
                f"    incr: {wall2:8.1f} s re-run of {args.incr_files} unchanged files "
                f"(plan alone {plan_s:.2f} s)",
                flush=True,
            )
    finally:
        stop(procs)

    # overhead and the 1M-hour estimate, from the measured figures
    if "inproc" in out and "local1" in out:
        out["overhead_share_local1"] = 1 - out["inproc"]["wall_s"] / out["local1"]["wall_s"]
    if "dask" in out and "external" in out:
        # same warm 2-worker cluster: the difference is Prefect's (API, task runs, states)
        out["prefect_share_external"] = 1 - out["dask"]["wall_s"] / out["external"]["wall_s"]
    if "local2" in out and "local2_64" in out:
        extra = out["local2_64"]["wall_s"] - out["local2"]["wall_s"]
        more = out["local2_64"]["shards"] - out["local2"]["shards"]
        # two workers run tasks side by side: each extra task costs ~2x this in worker time
        out["wall_s_per_extra_shard_2_workers"] = extra / more if more else None
    if "inproc" in out and "dask" in out:
        # ideal 2-worker time is half the in-process extraction; the rest is Dask + publish
        ideal = out["inproc"]["extract_s"] / 2 + out["inproc"]["publish_s"]
        out["dask_share_2_workers"] = 1 - ideal / out["dask"]["wall_s"]
    if "inproc" in out:
        ip = out["inproc"]
        worker_s_per_h = ip["extract_s"] / ip["audio_h"]
        total_h = 1_000_000
        wall_h = total_h * worker_s_per_h / 100 / 3600
        files = total_h * 3600 / args.seconds
        out["estimate_1M_hours_100_workers"] = {
            "worker_seconds_per_audio_hour": worker_s_per_h,
            "wall_hours_ideal": wall_h,
            "worker_hours": wall_h * 100,
            "usd_at_0.04_per_worker_hour": wall_h * 100 * 0.04,
            "files_at_this_length": files,
            "shards_of_512": files / 512,
        }
        e = out["estimate_1M_hours_100_workers"]
        print(
            f"estimate: {worker_s_per_h:.1f} worker-s per audio hour -> 1M h on 100 workers "
            f"~ {wall_h:.0f} h wall, {wall_h * 100:.0f} worker-h, ${e['usd_at_0.04_per_worker_hour']:.0f}"
            f" at $0.04/worker-h; {files / 512:.2e} shards of 512 files",
            flush=True,
        )
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "scale.json").write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps({k: v for k, v in out.items() if k not in ("recipe",)}, indent=1, default=str))


if __name__ == "__main__":
    main()

"""Stages at scale: clip stages on 1 and 2 Dask workers, sparse recommend, approximate retrieve.

Parts (each in its own child process, so each has its own peak RSS):

1. ``clips``: FSDD (``../shared/corpora/fsdd``, 2,000 spoken digits, 941 s at 8 kHz) ingested
   once in-process into ``data/bench/stages_scale/``; then ``beats`` + ``fingerprint`` (all
   clips, ``force``) in this process, on a LocalCluster of 1 worker and of 2 workers (one
   thread each, as ingest's). Each cluster is warmed up first (a run of both stages on
   100 clips: worker imports) and kept for ``--rounds`` rounds. Wall time, and CPU
   seconds of the runner and the workers (``getrusage`` read on each process).
2. ``recommend``: SIMULATED listens, ``--users`` × ``--items`` (default 100k × 100k) with
   ``--listens`` (default 10M) distinct (user, item) pairs drawn from taste groups, audio
   features (n_items × 40) that depend on the item's group; the stage's method: fit
   (sparse implicit ALS, 15 sweeps, 16 factors + ridge to factors) and the top 10 unplayed
   items of every user; time per phase, peak RSS.
3. ``retrieve``: ``--vectors`` (default 1M) SIMULATED embeddings of the timbre view's
   dimension (MFCC mean + std of the default recipe: 2 × 60 = 120), drawn around 2,000
   centres (clips of a few thousand kinds of sound; ``--spread`` scales the centres against
   unit noise: smaller is harder), L2-normalised; the HNSW graph
   (FAISS, M 32, efConstruction 80) against exact search (matrix product) on 1,000 held-out
   queries: recall@10, ms per query (one query at a time, one thread) at efSearch 32-256.

Prints a table and writes ``benchmarks/results/stages_scale.json``::

    .venv/bin/python benchmarks/stages_scale.py                 # everything (~20 min)
    .venv/bin/python benchmarks/stages_scale.py --parts clips --rounds 2
    .venv/bin/python benchmarks/stages_scale.py --parts retrieve --vectors 200000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "stages_scale.json"
DATA = ROOT / "data" / "bench" / "stages_scale"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------- clips


def _fsdd_dataset(corpora: Path) -> Any:
    import audiopipe
    from audiopipe.config import parse_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    out = DATA / "out"
    cfg = parse_config(
        {
            "storage": str(out),
            "datasets": {
                "fsdd": {
                    "source": str(corpora / "fsdd" / "recordings"),
                    "sample_rate": 8000,
                    "features": {
                        "n_fft": 256,
                        "hop_length": 128,
                        "compute": {"mfcc": {"n_mfcc": 13}, "rms": {}},
                    },
                }
            },
        }
    )
    plan = plan_ingest(cfg, "fsdd")
    if plan.shards:
        t0 = time.perf_counter()
        publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
        print(f"ingested FSDD in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return audiopipe.open_dataset(str(out), "fsdd")


def _worker_cpu(client: Any) -> float:
    return sum(client.run(_cpu).values())


def _stages(ds: Any, client: Any, clips: list[str] | None = None) -> dict[str, Any]:
    """Both stages (``force``): wall, and with a cluster, per stage the runner's serial
    seconds (its phases outside ``process``), runner and worker CPU seconds, and each
    worker's idle gaps between its shards (Dask's task stream)."""
    from audiopipe.stages import run_stage
    from audiopipe.store.runs import last_stage_run

    out: dict[str, Any] = {}
    for name in ("beats", "fingerprint"):
        params = {"clips": clips} if clips and name == "beats" else {}
        if name == "fingerprint" and clips:
            continue  # fingerprint takes no clip list: beats alone warms the workers up
        c0, w0 = _cpu(), (_worker_cpu(client) if client else 0.0)
        ts0 = time.time()
        t0 = time.perf_counter()
        rep = run_stage(ds, name, params, force=True, client=client)
        out[name] = time.perf_counter() - t0
        out[f"{name}_clips"] = rep["clips_processed"]
        out[f"{name}_failed"] = rep["clips_failed"]
        phases = json.loads(last_stage_run(ds.location, name).timings)
        out[f"{name}_serial_s"] = round(sum(v for k, v in phases.items() if k != "process"), 3)
        out[f"{name}_runner_cpu_s"] = round(_cpu() - c0, 3)
        if client is not None:
            out[f"{name}_worker_cpu_s"] = round(_worker_cpu(client) - w0, 3)
            out[f"{name}_worker_gaps_s"] = _gaps(client.get_task_stream(start=ts0))
    return out


def _gaps(stream: list[dict[str, Any]]) -> list[float]:
    """Per worker, seconds idle between its first and last shard of a run."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for t in stream:
        for s in t.get("startstops", ()):
            if s["action"] == "compute":
                spans.setdefault(t["worker"], []).append((s["start"], s["stop"]))
    return [
        round(sum(b[0] - a[1] for a, b in zip(sp, sp[1:], strict=False)), 3)
        for sp in (sorted(v) for v in spans.values())
    ]


def amdahl(r1: dict[str, Any], r2: dict[str, Any], cores: int = 2) -> float:
    """The 2-worker speed-up the CPU seconds allow on ``cores`` cores: one worker takes
    the runner's serial seconds plus its worker's CPU seconds plus its idle gaps; two take
    the serial seconds plus, shared over the cores, their CPU seconds and the runner's
    during processing, plus their mean gaps (``r1``, ``r2``: rows of :func:`_stages`)."""
    t1 = t2 = 0.0
    for name in ("beats", "fingerprint"):
        s1, s2 = r1[f"{name}_serial_s"], r2[f"{name}_serial_s"]
        t1 += s1 + r1[f"{name}_worker_cpu_s"] + max(r1[f"{name}_worker_gaps_s"] or [0.0])
        par = r2[f"{name}_worker_cpu_s"] + max(0.0, r2[f"{name}_runner_cpu_s"] - s2)
        gaps = r2[f"{name}_worker_gaps_s"] or [0.0]
        t2 += s2 + par / min(cores, 2) + sum(gaps) / len(gaps)
    return t1 / t2


def part_clips(args: argparse.Namespace) -> dict[str, Any]:
    import dask
    from distributed import Client, LocalCluster

    from audiopipe.stages.base import ClipStage
    from audiopipe.stages.cluster import QUIET_CLUSTER

    ds = _fsdd_dataset(Path(args.corpora))
    ids = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    ClipStage.min_cluster_clips = 1  # every configuration below goes to its cluster
    rows: list[dict[str, Any]] = []
    configs: list[tuple[str, int]] = [("in-process", 0), ("1 worker", 1), ("2 workers", 2)]
    for label, n in configs:
        cluster = client = None
        if n:
            t0 = time.perf_counter()
            with dask.config.set(QUIET_CLUSTER):  # as LazyClient starts its clusters
                cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    memory_limit="3GiB",
                )
                client = Client(cluster)
            start = time.perf_counter() - t0
            t0 = time.perf_counter()
            _stages(ds, client, ids[:100])  # warm-up: imports on the workers
            warm = time.perf_counter() - t0
        for r in range(args.rounds):
            c0, w0 = _cpu(), _worker_cpu(client) if client else 0.0
            t0 = time.perf_counter()
            res = _stages(ds, client)
            wall = time.perf_counter() - t0
            cpu = _cpu() - c0 + ((_worker_cpu(client) - w0) if client else 0.0)
            rows.append(
                {
                    "config": label, "workers": n, "round": r + 1, "wall_s": wall,
                    "cpu_s": cpu, **res,
                    **({"cluster_start_s": start, "warmup_s": warm} if n else {}),
                }
            )
            print(f"  {label} round {r + 1}: {wall:.1f} s wall, {cpu:.1f} CPU-s {res}",
                  file=sys.stderr)
        if client is not None:
            client.close()
            cluster.close()
    best = {c: min(r["wall_s"] for r in rows if r["config"] == c) for c, _ in configs}
    pairs = [
        (a, b)
        for a in rows if a["workers"] == 1
        for b in rows if b["workers"] == 2 and b["round"] == a["round"]
    ]
    per_round = [a["wall_s"] / b["wall_s"] for a, b in pairs]
    return {
        "n_clips": len(ids),
        "audio_s": float(sum(ds.table("clips", ["duration_s"]).column("duration_s").to_pylist())),
        "rows": rows,
        "speedup_2_over_1_best": best["1 worker"] / best["2 workers"],
        "speedup_2_over_1_per_round": per_round,
        "amdahl_bound_per_round": [amdahl(a, b) for a, b in pairs],
        "load_average": os.getloadavg(),
    }


def part_music(args: argparse.Namespace) -> dict[str, Any]:
    """CPU cost per audio hour of beats + fingerprint on long clips (the music corpus:
    tracks of 30-60 s at 44.1 kHz), in-process: the per-hour basis of the 1M-hour estimate
    (FSDD's 0.47 s clips measure the per-clip overheads instead)."""
    import audiopipe
    from audiopipe.config import parse_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from audiopipe.stages import run_stage

    out = DATA / "music_out"
    cfg = parse_config(
        {
            "storage": str(out),
            "datasets": {
                "music": {
                    "source": str(Path(args.corpora) / "music" / "*.ogg"),
                    "sample_rate": 22050,
                    "features": {"n_fft": 2048, "hop_length": 512, "compute": {"rms": {}}},
                }
            },
        }
    )
    plan = plan_ingest(cfg, "music")
    if plan.shards:
        publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    ds = audiopipe.open_dataset(str(out), "music")
    hours = sum(ds.table("clips", ["duration_s"]).column("duration_s").to_pylist()) / 3600
    res: dict[str, Any] = {"n_clips": ds.table("clips").num_rows, "audio_h": hours}
    for name in ("beats", "fingerprint"):
        best = None
        for _ in range(2):
            c0, t0 = _cpu(), time.perf_counter()
            rep = run_stage(ds, name, force=True)
            cpu, wall = _cpu() - c0, time.perf_counter() - t0
            best = min(best or (cpu, wall), (cpu, wall))
        res[name] = {"cpu_s": best[0], "wall_s": best[1], "failed": rep["clips_failed"],
                     "cpu_s_per_audio_h": best[0] / hours}
    return res


# ------------------------------------------------------------------------ recommend


def simulate_sparse_listens(
    n_users: int, n_items: int, n_listens: int, n_groups: int = 50, seed: int = 0
) -> tuple[Any, np.ndarray]:
    """SIMULATED: users and items in taste groups; 80% of a user's listens in their group.

    Returns the CSR plays matrix (``n_listens`` distinct pairs or slightly fewer) and the
    item groups.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    ug = rng.integers(0, n_groups, n_users)
    ig = rng.integers(0, n_groups, n_items)
    by_group = [np.flatnonzero(ig == g) for g in range(n_groups)]
    m = int(n_listens * 1.02)  # duplicates are merged below
    users = rng.integers(0, n_users, m)
    same = rng.random(m) < 0.8
    items = rng.integers(0, n_items, m)
    pick = np.flatnonzero(same)
    for g in range(n_groups):
        sel = pick[ug[users[pick]] == g]
        items[sel] = by_group[g][rng.integers(0, by_group[g].size, sel.size)]
    plays = rng.geometric(0.4, m).astype(np.float64)
    R = sp.csr_array(sp.coo_array((plays, (users, items)), shape=(n_users, n_items)))
    R.sum_duplicates()
    return R, ig


def part_recommend(args: argparse.Namespace) -> dict[str, Any]:
    from audiopipe.stages.recommend.model import ContentRecommender, top_k_unplayed

    t = {}
    t0 = time.perf_counter()
    R, groups = simulate_sparse_listens(args.users, args.items, args.listens)
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((groups.max() + 1, 40))
    X = centres[groups] + rng.standard_normal((args.items, 40))
    t["simulate_s"] = time.perf_counter() - t0
    rss0 = _rss_mb()
    c0 = _cpu()
    t0 = time.perf_counter()
    m = ContentRecommender(n_factors=16, iterations=args.iterations).fit(R, X)
    t["fit_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    u, i, s, r = top_k_unplayed(m.user_factors_, m.item_factors_, R, 10)
    t["top10_all_users_s"] = time.perf_counter() - t0
    t["cpu_s"] = _cpu() - c0
    # quality on the simulation: a user's top 10 in their own group (chance: 1/50)
    ug = np.asarray(R.argmax(axis=1)).ravel()  # a played item, mostly of the user's group
    same = float(np.mean(groups[i] == groups[ug[u]]))
    dense_gb = args.users * args.items * 8 / 1e9
    return {
        "users": args.users, "items": args.items, "listens": int(R.nnz),
        "iterations": args.iterations, **t, "rss_before_fit_mb": rss0,
        "peak_rss_mb": _rss_mb(), "dense_matrix_would_be_gb": dense_gb,
        "top10_in_taste_group": same, "n_recommendations": int(u.size),
    }


# ------------------------------------------------------------------------- retrieve


def part_retrieve(args: argparse.Namespace) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from audiopipe.stages._ann import HNSWIndex, exact_top_k, recall_at_k

    rng = np.random.default_rng(2)
    n, d, nq = args.vectors, 120, 1000
    centres = rng.standard_normal((2000, d)).astype(np.float32) * args.spread
    E = np.empty((n + nq, d), np.float32)
    for a in range(0, n + nq, 100_000):
        b = min(n + nq, a + 100_000)
        E[a:b] = centres[rng.integers(0, 2000, b - a)] + rng.standard_normal((b - a, d), np.float32)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    Q, E = E[n:].copy(), E[:n]
    out: dict[str, Any] = {"vectors": n, "dims": d, "queries": nq, "spread": args.spread}
    t0 = time.perf_counter()
    _, exact = exact_top_k(E, Q, k=10)
    out["exact_batch_ms_per_query"] = (time.perf_counter() - t0) / nq * 1000
    with threadpool_limits(1):
        t0 = time.perf_counter()
        for q in Q[:50]:
            s = E @ q
            top = np.argpartition(-s, 10)[:10]
            top[np.argsort(-s[top])]
        out["exact_ms_per_query_1_thread"] = (time.perf_counter() - t0) / 50 * 1000
    import faiss

    t0 = time.perf_counter()
    ann = HNSWIndex(M=32, ef_construction=80).fit(E)
    out["hnsw_build_s"] = time.perf_counter() - t0
    out["hnsw_build_threads"] = faiss.omp_get_max_threads()
    out["hnsw_mb"] = len(ann.to_bytes()) / 2**20
    out["exact_index_mb"] = E.nbytes / 2**20
    faiss.omp_set_num_threads(1)
    sweep = []
    for ef in (32, 64, 128, 256):
        ann.ef_search = ef
        t0 = time.perf_counter()
        approx = np.vstack([ann.search(q, k=10)[1] for q in Q])
        ms = (time.perf_counter() - t0) / nq * 1000
        sweep.append({"ef_search": ef, "recall_at_10": recall_at_k(approx, exact),
                      "ms_per_query": ms})
    out["hnsw"] = sweep
    out["peak_rss_mb"] = _rss_mb()
    return out


# ----------------------------------------------------------------------------- main

PARTS = {
    "clips": part_clips,
    "music": part_music,
    "recommend": part_recommend,
    "retrieve": part_retrieve,
}


def _split(r: dict[str, Any]) -> str:
    """Serial s / runner CPU s / worker CPU s / worker gaps s, both stages summed."""
    st = ("beats", "fingerprint")
    serial = sum(r[f"{n}_serial_s"] for n in st)
    runner = sum(r[f"{n}_runner_cpu_s"] for n in st)
    if "beats_worker_cpu_s" not in r:
        return f"runner serial {serial:.2f} s, CPU {runner:.1f} s"
    worker = sum(r[f"{n}_worker_cpu_s"] for n in st)
    gaps = sum(max(r[f"{n}_worker_gaps_s"] or [0.0]) for n in st)
    return (f"runner serial {serial:.2f} s, runner CPU {runner:.1f} s, workers CPU "
            f"{worker:.1f} s, worker idle between shards {gaps:.2f} s")


def _table(res: dict[str, Any]) -> str:
    lines = ["| part | configuration | wall s | CPU s | notes |", "| --- | --- | --- | --- | --- |"]
    c = res.get("clips")
    if c:
        for r in c["rows"]:
            lines.append(
                f"| beats + fingerprint, {c['n_clips']} clips | {r['config']} (round {r['round']}) "
                f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | beats {r['beats']:.1f} s, "
                f"fingerprint {r['fingerprint']:.1f} s; {_split(r)} |"
            )
        lines.append(
            f"| | 2 workers / 1 worker | {c['speedup_2_over_1_best']:.2f}× (best rounds) | | "
            f"per round: {', '.join(f'{x:.2f}' for x in c['speedup_2_over_1_per_round'])}; "
            f"bound from the CPU seconds (2 cores): "
            f"{', '.join(f'{x:.2f}' for x in c.get('amdahl_bound_per_round', []))} |"
        )
    m = res.get("music")
    if m:
        for name in ("beats", "fingerprint"):
            lines.append(
                f"| {name}, music ({m['n_clips']} tracks, {m['audio_h'] * 60:.1f} min) | "
                f"in-process | {m[name]['wall_s']:.1f} | {m[name]['cpu_s']:.1f} | "
                f"{m[name]['cpu_s_per_audio_h']:.0f} CPU-s per audio hour |"
            )
    r = res.get("recommend")
    if r:
        lines.append(
            f"| recommend {r['users']:,} users × {r['items']:,} clips, {r['listens']:,} listens "
            f"| fit ({r['iterations']} sweeps) + top 10 for all users | "
            f"{r['fit_s'] + r['top10_all_users_s']:.1f} | {r['cpu_s']:.1f} | fit {r['fit_s']:.1f} s, "
            f"top-10 {r['top10_all_users_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(dense: {r['dense_matrix_would_be_gb']:.0f} GB) |"
        )
    for key in sorted(k for k in res if k.startswith("retrieve")):
        t = res[key]
        lines.append(
            f"| retrieve {t['vectors']:,} × {t['dims']}, spread {t.get('spread', 1.5)} "
            f"| exact | | | "
            f"{t['exact_ms_per_query_1_thread']:.1f} ms/query (1 thread), "
            f"{t['exact_index_mb']:.0f} MB |"
        )
        lines.append(
            f"| | HNSW build ({t['hnsw_build_threads']} threads) | {t['hnsw_build_s']:.1f} | | "
            f"{t['hnsw_mb']:.0f} MB |"
        )
        for s in t["hnsw"]:
            lines.append(
                f"| | HNSW efSearch {s['ef_search']} | | | recall@10 {s['recall_at_10']:.3f}, "
                f"{s['ms_per_query']:.2f} ms/query (1 thread) |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="clips,music,recommend,retrieve")
    ap.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--listens", type=int, default=10_000_000)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--vectors", type=int, default=1_000_000)
    ap.add_argument(
        "--spread", type=float, default=1.5,
        help="scale of the 2,000 centres against unit noise (smaller: harder neighbours)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(PARTS[args.child](args), default=float))
        return
    res: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()},
    }
    if OUT.exists():  # parts not rerun keep their last results
        res = {**json.loads(OUT.read_text()), **res}
    for part in args.parts.split(","):
        cmd = [sys.executable, __file__, "--child", part] + [
            a for a in sys.argv[1:] if not a.startswith("--parts")
        ]
        if "--parts" in sys.argv:
            i = sys.argv.index("--parts")
            cmd = [sys.executable, __file__, "--child", part] + sys.argv[1:i] + sys.argv[i + 2 :]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        sys.stderr.write(p.stderr[-4000:])
        if p.returncode:
            raise SystemExit(f"part {part} failed ({p.returncode})")
        res[part] = json.loads(p.stdout.strip().splitlines()[-1])
        res[part]["part_wall_s"] = time.perf_counter() - t0
        res[part]["load_avg_after"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2, default=float))
    print(_table(res))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

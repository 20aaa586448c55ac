"""Wall time of the ``audiopipe`` commands a user types, on the demo dataset.

Each command runs as its own process (``python -m flows.cli ...``), as a user would, and is
timed ``--repeat`` times; the table shows the median (and min-max) wall seconds and the JSON
goes to ``benchmarks/results/commands[-LABEL].json``. Nothing is asserted: the goals of
issue 11 (status <= 1 s, identify <= 1.5 s, stage retrieve <= 3 s, unchanged ingest <= 3 s,
``make run`` with nothing changed < 15 s) are read off the table.

The benchmark works on its own copy of the demo: a temporary folder with a generated demo
corpus, a copy of ``datasets.yaml`` pointing at it, and its own ``PREFECT_HOME``. It first
runs ``audiopipe run`` once (ingest + declared stages; timed as ``run (first)``), then times
the commands on the unchanged dataset.

``--repo PATH`` times the CLI of another checkout (e.g. the commit before a change) with the
same Python environment: the "before" column of a before/after comparison::

    git worktree add /tmp/before 1619c1e
    python benchmarks/commands.py --repo /tmp/before --label before --repeat 3
    python benchmarks/commands.py --label after

``--server`` first starts a persistent local Prefect API (``audiopipe server start``) so the
commands that run flows use it (measures that option); it is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _env(repo: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        PYTHONPATH=str(repo),
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    return env


def _cli(repo: Path, cfg: Path, env: dict[str, str], *args: str) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the command's processes, exit code, output tail)."""
    cmd = [sys.executable, "-m", "flows.cli", "--config", str(cfg), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cfg.parent, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu, p.returncode, (p.stdout + p.stderr)[-2000:]


def _setup(work: Path, repo: Path, env: dict[str, str], n_per_class: int) -> Path:
    demo = work / "demo"
    subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo-corpus", str(demo),
         "--n-per-class", str(n_per_class)],
        cwd=work, env=env, check=True, capture_output=True,
    )
    cfg = yaml.safe_load((repo / "datasets.yaml").read_text())
    cfg["storage"] = str(work / "out")
    ds = cfg["datasets"]["demo"]
    ds["source"] = str(demo)
    ds["labels"]["path"] = str(demo / "labels.csv")
    ds["demo_corpus"] = False
    seg = ds.get("stages", {}).get("segment")
    if seg and seg.get("events"):
        seg["events"] = str(demo / "events.csv")
    cfg.pop("default_dataset", None)
    cfg["default_dataset"] = "demo"
    path = work / "datasets.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _excerpts(work: Path, demo: Path, n: int) -> list[Path]:
    """Excerpts (2 s from 0.5 s) of ``n`` demo clips, as query files."""
    import soundfile as sf

    out = work / "queries"
    out.mkdir(exist_ok=True)
    files = sorted(
        p for d in ("tone", "mix") for p in (demo / d).iterdir() if p.suffix in (".wav", ".flac")
    )
    made = []
    for i, f in enumerate(files[:n]):
        y, sr = sf.read(f)
        q = out / f"q{i:03d}.wav"
        sf.write(q, y[int(0.5 * sr) : int(2.5 * sr)], sr)
        made.append(q)
    return made


def _new_clip(folder: Path, tag: str) -> None:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    seed = int.from_bytes(tag.encode(), "little") % 2**32 + time.time_ns() % 1000
    y = np.random.default_rng(seed).standard_normal(22050).astype(np.float32) * 0.1
    sf.write(folder / f"{tag}-{seed}.wav", y, 22050)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose CLI is timed")
    ap.add_argument("--label", default="", help="suffix of the JSON file, e.g. before / after")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n-per-class", type=int, default=50, help="demo size (50: 300 clips)")
    ap.add_argument("--server", action="store_true", help="use a persistent local Prefect API")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    repo = args.repo.resolve()
    work = Path(tempfile.mkdtemp(prefix="audiopipe-bench-"))
    home = work / "prefect-home"
    home.mkdir()
    env = _env(repo, home)
    new_cli = (repo / "flows" / "server.py").exists()
    try:
        cfg = _setup(work, repo, env, args.n_per_class)
        if args.server:
            if not new_cli:
                raise SystemExit(f"{repo} has no `audiopipe server`")
            dt, _, rc, out = _cli(repo, cfg, env, "server", "start")
            print(f"server start: {dt:.1f} s", out.strip().splitlines()[-1], file=sys.stderr)
        first, first_cpu, rc, out = _cli(repo, cfg, env, "run")
        if rc:
            raise SystemExit(f"`audiopipe run` failed:\n{out}")
        queries = _excerpts(work, work / "demo", 20)
        one = str(queries[0])
        cases: list[tuple[str, list[str]]] = [
            ("validate", ["validate"]),
            ("status", ["status", "demo"]),
            ("ingest (unchanged)", ["ingest", "demo", "-q"]),
            ("stage retrieve", ["stage", "retrieve", "demo"]),
            ("identify FILE", ["identify", one, "--dataset", "demo"]),
            ("similar FILE", ["similar", one, "--dataset", "demo"]),
        ]
        if new_cli:
            cases += [
                ("stage retrieve --force", ["stage", "retrieve", "demo", "--force"]),
                ("identify 20 files --out", ["identify", str(work / "queries"), "--dataset", "demo",
                                             "--out", str(work / "answers.csv")]),
            ]
        cases.append(("run (unchanged)", ["run"]))
        cases.append(("ingest (1 new file)", ["ingest", "demo", "-q"]))  # last: it changes data
        rows = [{"command": "run (first)", "median_s": first, "min_s": first, "max_s": first,
                 "cpu_s": first_cpu, "n": 1, "exit": rc}]
        for name, cmd in cases:
            times, cpus, codes = [], [], set()
            for i in range(args.repeat):
                if name == "ingest (1 new file)":  # a file never seen: the flow has work
                    _new_clip(work / "demo" / "new", f"{name[:6]}{i}")
                dt, cpu, rc, out = _cli(repo, cfg, env, *cmd)
                times.append(dt)
                cpus.append(cpu)
                codes.add(rc)
            if codes - {0}:
                print(f"{name}: exit {sorted(codes)}\n{out}", file=sys.stderr)
            rows.append({"command": name, "median_s": statistics.median(times),
                         "min_s": min(times), "max_s": max(times),
                         "cpu_s": statistics.median(cpus), "n": len(times), "exit": max(codes)})
            print(f"  {name:<26} {statistics.median(times):7.2f} s", file=sys.stderr)
    finally:
        if args.server and new_cli:
            _cli(repo, work / "datasets.yaml", env, "server", "stop")
        print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\naudiopipe commands on the demo ({args.n_per_class * 6} clips), {repo.name}"
          f"{' (persistent Prefect API)' if args.server else ''}, wall seconds:")
    print(f"| {'command':<26} | median | min-max | CPU s | exit |")
    print(f"| {'-' * 26} | ---: | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['command']:<26} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} "
              f"| {r['cpu_s']:.2f} | {r['exit']} |")
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    name = "commands" + (f"-{args.label}" if args.label else "") + ".json"
    load = os.getloadavg()
    (res / name).write_text(json.dumps({
        "repo": str(repo), "server": args.server, "n_clips": args.n_per_class * 6,
        "repeat": args.repeat, "load_avg_1min_at_end": load[0], "rows": rows,
    }, indent=2))
    print(f"wrote {res / name} (1-min load average at the end: {load[0]:.1f})")


if __name__ == "__main__":
    main()

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

``--against /tmp/before`` does both in one run, alternating the two checkouts run by run (the
load of a shared machine changes by the minute), and prints the ratios.

``--server`` first starts a persistent local Prefect API (``audiopipe server start``) so the
commands that run flows use it (measures that option); it is stopped at the end.

``--config datasets.yaml`` times the commands on an already ingested dataset instead (e.g.
the repository's demo after ``make run``; ~10 min less setup), without the commands that
change its data (``ingest (1 new file)``). Paths in a config resolve against its folder, and
commands run from a temporary folder, so ``--repo`` still picks which code runs.

Besides wall time (median, min-max of ``--repeat`` runs) each row gives the median CPU
seconds of the command's processes (the machine is shared: CPU time is what a busy machine
disturbs least) and the import time of one extra ``python -X importtime`` run (the sum of
the top-level imports), with the slowest top-level imports in the JSON. The recipe check's
verdict cache (:mod:`audiopipe.recipe_cache`) lives in the run's temporary folder: warm after
the first command, as for a user; ``validate (cold cache)`` empties it before each run.
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


#: issue 11's goals, wall seconds on an idle machine
GOALS = {"status": 1.0, "identify FILE": 1.5, "stage retrieve": 3.0, "ingest (unchanged)": 3.0,
         "run (unchanged)": 15.0}


def _env(repo: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        PYTHONPATH=str(repo),
        PREFECT_HOME=str(home),
        AUDIOPIPE_CACHE_DIR=str(home.parent / "cache"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    return env


def _cli(
    repo: Path, cfg: Path, env: dict[str, str], *args: str, cwd: Path | None = None
) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the command's processes, exit code, output tail)."""
    cmd = [sys.executable, "-m", "flows.cli", "--config", str(cfg), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd or cfg.parent, env=env, capture_output=True, text=True)
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


def _imports(cfg: Path, env: dict[str, str], cwd: Path, *args: str) -> tuple[float, list]:
    """Seconds of top-level imports of one run of the command, and the slowest five."""
    cmd = [sys.executable, "-X", "importtime", "-m", "flows.cli", "--config", str(cfg), *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    top = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # top level: " name" (one space after the bar)
                top.append((name.strip(), int(parts[1]) / 1e6))
    top.sort(key=lambda x: -x[1])
    return sum(s for _, s in top), [[n, round(s, 3)] for n, s in top[:5]]


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
    ap.add_argument("--config", type=Path, default=None,
                    help="time an already ingested dataset of this datasets.yaml (no setup)")
    ap.add_argument("--dataset", default="demo", help="with --config: the dataset to time")
    ap.add_argument("--against", type=Path, default=None,
                    help="another checkout (e.g. the commit before a change) timed in the same "
                    "run, its runs interleaved with --repo's so both see the same machine load")
    ap.add_argument("--skip", action="append", default=[], metavar="COMMAND",
                    help="leave out a command of the table (repeatable), e.g. 'stage retrieve --force'")
    args = ap.parse_args()
    repo = args.repo.resolve()
    work = Path(tempfile.mkdtemp(prefix="audiopipe-bench-"))
    home = work / "prefect-home"
    home.mkdir()
    env = _env(repo, home)
    against = args.against.resolve() if args.against else None
    env_against = _env(against, home) if against else None
    new_cli = (repo / "flows" / "server.py").exists()
    name = args.dataset if args.config else "demo"
    rows = []
    cfg = args.config.resolve() if args.config else work / "datasets.yaml"
    try:
        if args.config:
            srcs = yaml.safe_load(cfg.read_text())["datasets"][name]["source"]
            src = Path(srcs if isinstance(srcs, str) else srcs[0])
            demo = src if src.is_absolute() else cfg.parent / src
            _cli(repo, cfg, env, "validate", cwd=work)  # warms the recipe cache, as a user's
        else:
            cfg = _setup(work, repo, env, args.n_per_class)
            demo = work / "demo"
        if args.server:
            if not new_cli:
                raise SystemExit(f"{repo} has no `audiopipe server`")
            dt, _, rc, out = _cli(repo, cfg, env, "server", "start", cwd=work)
            print(f"server start: {dt:.1f} s", out.strip().splitlines()[-1], file=sys.stderr)
        if not args.config:
            first, first_cpu, rc, out = _cli(repo, cfg, env, "run", cwd=work)
            if rc:
                raise SystemExit(f"`audiopipe run` failed:\n{out}")
            rows.append({"command": "run (first)", "median_s": first, "min_s": first,
                         "max_s": first, "cpu_s": first_cpu, "n": 1, "exit": rc})
        queries = _excerpts(work, demo, 20)
        one = str(queries[0])
        cases: list[tuple[str, list[str]]] = [
            ("validate", ["validate"]),
            ("validate (cold cache)", ["validate"]),
            ("status", ["status", name]),
            ("ingest (unchanged)", ["ingest", name, "-q"]),
            ("stage retrieve", ["stage", "retrieve", name]),
            ("identify FILE", ["identify", one, "--dataset", name]),
            ("similar FILE", ["similar", one, "--dataset", name]),
        ]
        if new_cli:
            cases += [
                ("stage retrieve --force", ["stage", "retrieve", name, "--force"]),
                ("identify 20 files --out", ["identify", str(work / "queries"), "--dataset", name,
                                             "--out", str(work / "answers.csv")]),
            ]
        cases.append(("run (unchanged)", ["run", name]))
        if not args.config:  # last: it changes the data
            cases.append(("ingest (1 new file)", ["ingest", name, "-q"]))
        for label, cmd in [c for c in cases if c[0] not in args.skip]:
            runs: dict[str, dict[str, list]] = {"": {"t": [], "cpu": [], "rc": []}}
            if against:
                runs["before_"] = {"t": [], "cpu": [], "rc": []}
            out = ""
            for i in range(args.repeat):
                if label == "ingest (1 new file)":  # a file never seen: the flow has work
                    _new_clip(demo / "new", f"{label[:6]}{i}")
                for tag in (("before_", "") if i % 2 else ("", "before_")):  # alternate first
                    if tag not in runs:
                        continue
                    if label == "validate (cold cache)":
                        shutil.rmtree(work / "cache", ignore_errors=True)
                    r_env = env_against if tag else env
                    dt, cpu, rc, o = _cli(against if tag else repo, cfg, r_env, *cmd, cwd=work)
                    runs[tag]["t"].append(dt)
                    runs[tag]["cpu"].append(cpu)
                    runs[tag]["rc"].append(rc)
                    out = o if rc else out
            row: dict = {"command": label, "goal_s": GOALS.get(label), "n": args.repeat}
            for tag, m in runs.items():
                if set(m["rc"]) - {0}:
                    print(f"{tag}{label}: exit {sorted(set(m['rc']))}\n{out}", file=sys.stderr)
                imp_s, slowest = (None, [])
                if label not in ("ingest (1 new file)", "validate (cold cache)"):
                    imp_s, slowest = _imports(cfg, env_against if tag else env, work, *cmd)
                row.update({f"{tag}median_s": statistics.median(m["t"]), f"{tag}min_s": min(m["t"]),
                            f"{tag}max_s": max(m["t"]), f"{tag}cpu_s": statistics.median(m["cpu"]),
                            f"{tag}cpu_min_s": min(m["cpu"]), f"{tag}import_s": imp_s,
                            f"{tag}slowest_imports": slowest, f"{tag}exit": max(m["rc"])})
            rows.append(row)
            print(f"  {label:<26} {row['median_s']:7.2f} s", file=sys.stderr)
    finally:
        if args.server and new_cli:
            _cli(repo, cfg, env, "server", "stop", cwd=work)
        print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    what = f"{cfg} ({name})" if args.config else f"the demo ({args.n_per_class * 6} clips)"
    print(f"\naudiopipe commands on {what}, {repo.name}"
          f"{' (persistent Prefect API)' if args.server else ''}, seconds (median of {args.repeat}):")
    print(f"| {'command':<26} | wall | min-max | CPU s | imports s | goal | exit |"
          + (" before: wall | CPU s | imports s | wall ratio | CPU ratio |" if against else ""))
    print(f"| {'-' * 26} | ---: | --- | ---: | ---: | ---: | ---: |"
          + (" ---: | ---: | ---: | ---: | ---: |" if against else ""))

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for r in rows:
        goal = f"{r['goal_s']:g}" if r.get("goal_s") else "-"
        line = (f"| {r['command']:<26} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} "
                f"| {r['cpu_s']:.2f} | {num(r.get('import_s'))} | {goal} | {r['exit']} |")
        if against and "before_median_s" in r:
            line += (f" {r['before_median_s']:.2f} | {r['before_cpu_s']:.2f} "
                     f"| {num(r.get('before_import_s'))} "
                     f"| {r['median_s'] / r['before_median_s']:.2f} "
                     f"| {r['cpu_s'] / max(r['before_cpu_s'], 1e-9):.2f} |")
        print(line)
    if against:
        print(f"before: {against}; ratios are after / before (below 1: faster)")
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    out_name = "commands" + (f"-{args.label}" if args.label else "") + ".json"
    load = os.getloadavg()
    (res / out_name).write_text(json.dumps({
        "repo": str(repo), "against": str(against) if against else None, "server": args.server,
        "config": str(args.config) if args.config else None,
        "n_clips": None if args.config else args.n_per_class * 6,
        "repeat": args.repeat, "load_avg_1min_at_end": load[0], "rows": rows,
    }, indent=2))
    print(f"wrote {res / out_name} (1-min load average at the end: {load[0]:.1f})")


if __name__ == "__main__":
    main()

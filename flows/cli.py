"""audiopipe: audio corpora to analysis-ready datasets (features, tables, stages).

The ``audiopipe`` console script.
``audiopipe run`` (what ``make run`` calls) generates the demo corpus when the
default dataset asks for it and is missing, ingests the default dataset and
prints its status. The command lives in ``flows/`` because it drives the flows;
the library ``audiopipe/`` never imports it, Prefect or the ``flows`` package.
Prefect is imported only by the commands that run a flow, so ``validate``,
``status``, ``identify`` and ``similar`` start without it.

Examples
--------
::

    audiopipe validate                 # check datasets.yaml, do nothing else
    audiopipe ingest demo              # ingest new/changed files of 'demo'
    audiopipe rebuild demo             # recompute every clip into a new version
    audiopipe status                   # versions, clips, hours, errors, last runs
    audiopipe serve                    # scheduled deployments on the configured Prefect API
    audiopipe demo-corpus data/demo    # write the demo corpus
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from audiopipe.config import Config, ConfigError, load_config

__all__ = ["main"]


def _env_defaults() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # the local ephemeral API takes ~10-20 s to start, more on a loaded machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    for name, ds in cfg.datasets.items():
        recipe = ds.recipe()
        n = len(recipe.get("compute", {}))
        print(
            f"ok  {name}: {len(ds.source)} source(s), {ds.sample_rate} Hz, {n} features"
            + (f", schedule {ds.schedule!r}" if ds.schedule else "")
        )
    print(f"storage: {cfg.storage_root}")
    return 0


def cmd_demo_corpus(args: argparse.Namespace) -> int:
    from audiopipe.demo import make_demo_corpus

    out = make_demo_corpus(args.path, n_per_class=args.n_per_class, seed=args.seed)
    n = sum(1 for _ in out.rglob("*") if _.suffix in (".wav", ".flac", ".mp3"))
    print(f"wrote {n} clips with labels.csv, beats.csv, events.csv to {out}")
    return 0


def _ingest(args: argparse.Namespace, kind: str) -> int:
    _env_defaults()
    cfg = _load(args)
    from audiopipe.demo import ensure_demo_corpus

    ensure_demo_corpus(cfg, args.dataset)
    from flows.ingest import ingest
    from flows.rebuild import rebuild

    fn = ingest if kind == "ingest" else rebuild
    row = fn(
        dataset=args.dataset,
        config_path=str(args.config),
        scheduler=args.scheduler,
        progress=not args.quiet,
    )
    from audiopipe.store.runs import summarize

    print(summarize(row))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    return _ingest(args, "ingest")


def cmd_rebuild(args: argparse.Namespace) -> int:
    return _ingest(args, "rebuild")


def _numbers(d: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of a nested report, as (dotted key, value)."""
    out: list[tuple[str, float]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += (
                _numbers(v, f"{prefix}{k}.") if isinstance(v, dict) else _numbers(v, f"{prefix}{k}")
            )
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out.append((prefix.rstrip("."), float(d)))
    return out


def _stage_summary(name: str, report: dict[str, Any]) -> str:
    """One line per stage: its first few numbers (metrics first) and its plot."""
    nums = _numbers(report.get("metrics")) or _numbers(
        {k: v for k, v in report.items() if k not in ("seconds", "version")}
    )
    shown = ", ".join(f"{k} {int(v)}" if v.is_integer() else f"{k} {v:.3g}" for k, v in nums[:5])
    where = report.get("plots") or report.get("plot") or ""
    if isinstance(where, list):
        where = where[0] if where else ""
    return f"  {name:<12} {shown}" + (f"  [{where}]" if where else "")


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest the dataset, run its declared stages, print its status."""
    rc = _ingest(args, "ingest")
    if rc != 0:
        return rc
    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    if ds.stages and not args.no_stages:
        from flows.stages import stages

        print(f"running stages of {ds.name}: {', '.join(ds.stages)}", file=sys.stderr)
        reports = stages(dataset=ds.name, config_path=str(args.config))
        print(f"{ds.name}: stages")
        for name, rep in reports.items():
            print(_stage_summary(name, rep))
    cmd_status(args)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _env_defaults()
    cfg = _load(args)
    from flows.deployments import build_deployments, serve

    deps = build_deployments(cfg, str(args.config), interval_s=args.interval)
    for d in deps:
        when = d.schedules[0].schedule if d.schedules else "on demand"
        print(f"deployment {d.flow_name}/{d.name}: {when}", file=sys.stderr)
    serve(cfg, str(args.config), interval_s=args.interval)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from audiopipe.store.status import status_rows

    names = [cfg.dataset(args.dataset).name] if args.dataset else list(cfg.datasets)
    rows = status_rows(cfg.storage_root, names)
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for r in rows:
        if not r["published"]:
            print(f"{r['dataset']}: not ingested yet (audiopipe ingest {r['dataset']})")
            continue
        print(
            f"{r['dataset']}: {r['clips']} clips, {r['hours']:.3f} h, {r['errors']} error rows "
            f"({r['errors_last_run']} in the last run); tables {r['versions']}"
        )
        for run in r["last_runs"]:
            wall = f"{run['wall_seconds']:.1f} s" if run["wall_seconds"] is not None else "-"
            print(
                f"  {run['run_id']}  {run['kind']:<7} {run['status']:<6} processed {run['files_processed']}, "
                f"failed {run['files_failed']}, {wall}  {run['message']}"
            )
    print(
        f"read them: audiopipe.open_dataset({cfg.storage_root!r}, NAME).table('clips').to_pandas()"
    )
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from audiopipe.store.location import Location
    from audiopipe.store.vacuum import vacuum

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    report = vacuum(
        Location(cfg.storage_root, ds.name), retain_hours=args.retain_hours, dry_run=args.dry_run
    )
    print(report.summary())
    return 0


def _parse_sets(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--set takes key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def cmd_stage(args: argparse.Namespace) -> int:
    _env_defaults()
    from flows.stages import stages

    overrides = _parse_sets(args.set)
    if args.predict:
        overrides["predict"] = True
    reports = stages(
        dataset=args.dataset, names=[args.name], config_path=str(args.config), overrides=overrides
    )
    print(json.dumps(reports, indent=2, default=str))
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from audiopipe.stages.fingerprint import identify
    from audiopipe.store import open_dataset

    ds = open_dataset(cfg.storage_root, cfg.dataset(args.dataset).name)
    match = identify(ds, args.file)
    if not match or match.get("clip_id") is None:
        print(f"no match for {args.file} in {ds.name}")
        return 3
    print(
        f"{match['uri']}  offset {match['offset_s']:.2f} s  confidence {match['confidence']:.2f}"
        f"  ({match.get('votes', '?')} matching hashes)"
    )
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    cfg = _load(args)
    from audiopipe.stages.retrieve import similar
    from audiopipe.store import open_dataset

    ds = open_dataset(cfg.storage_root, cfg.dataset(args.dataset).name)
    for r in similar(ds, args.query, k=args.k, view=args.view):
        print(f"{r['rank']:>3}  {r['score']:.3f}  {r['uri']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiopipe", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("AUDIOPIPE_CONFIG", "datasets.yaml"),
        help="datasets.yaml to use (default: ./datasets.yaml)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def with_ds(sp: argparse.ArgumentParser, flows: bool = True) -> argparse.ArgumentParser:
        sp.add_argument(
            "dataset", nargs="?", default=None, help="dataset name (default: default_dataset)"
        )
        if flows:
            sp.add_argument(
                "--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786"
            )
            sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        return sp

    rp = with_ds(
        sub.add_parser("run", help="demo corpus if needed, ingest, declared stages, status")
    )
    rp.add_argument("--no-stages", action="store_true", help="ingest only")
    rp.set_defaults(fn=cmd_run)
    with_ds(sub.add_parser("ingest", help="ingest new and changed files")).set_defaults(
        fn=cmd_ingest
    )
    with_ds(
        sub.add_parser("rebuild", help="recompute a whole dataset into a new version")
    ).set_defaults(fn=cmd_rebuild)
    st = with_ds(
        sub.add_parser("status", help="versions, clips, hours, errors, last runs"), flows=False
    )
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    sub.add_parser("validate", help="check datasets.yaml and exit").set_defaults(fn=cmd_validate)
    vc = with_ds(
        sub.add_parser("vacuum", help="delete table files and frames no recent run can read"),
        flows=False,
    )
    vc.add_argument(
        "--retain-hours",
        type=float,
        default=168.0,
        help="runs finished within this many hours stay readable (default 168 = 7 days; "
        "the latest run always does)",
    )
    vc.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    vc.set_defaults(fn=cmd_vacuum)
    sv = sub.add_parser(
        "serve",
        help="register scheduled ingestion + on-demand rebuild deployments and run them",
    )
    sv.add_argument(
        "--interval", type=float, default=None, help="seconds; replaces every cron (demos)"
    )
    sv.set_defaults(fn=cmd_serve)
    sg = sub.add_parser(
        "stage", help="run a stage (classify, tag, segment, beats, ...) on a dataset"
    )
    sg.add_argument("name")
    sg.add_argument("dataset", nargs="?", default=None)
    sg.add_argument("--predict", action="store_true", help="score clips with the saved model")
    sg.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a stage parameter (repeatable)",
    )
    sg.set_defaults(fn=cmd_stage)
    idf = sub.add_parser("identify", help="identify an audio excerpt by its fingerprint")
    idf.add_argument("file")
    idf.add_argument("--dataset", "-d", default=None)
    idf.set_defaults(fn=cmd_identify)
    sim = sub.add_parser("similar", help="nearest clips to a file or clip id")
    sim.add_argument("query", help="audio file path or clip id")
    sim.add_argument("--dataset", "-d", default=None)
    sim.add_argument("-k", type=int, default=10)
    sim.add_argument(
        "--view", default="timbre", help="timbre (MFCC stats) or tonal (chroma + tempo)"
    )
    sim.set_defaults(fn=cmd_similar)
    dc = sub.add_parser("demo-corpus", help="write the deterministic demo corpus")
    dc.add_argument("path")
    dc.add_argument("--n-per-class", type=int, default=50)
    dc.add_argument("--seed", type=int, default=0)
    dc.set_defaults(fn=cmd_demo_corpus)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as err:
        print(f"audiopipe: invalid configuration:\n{err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, LookupError, RuntimeError, ValueError) as err:
        print(f"audiopipe: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

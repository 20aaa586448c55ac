"""audiopipe: audio corpora to analysis-ready datasets (features, tables, stages).

The ``audiopipe`` console script.
``audiopipe run`` (what ``make run`` calls) generates the demo corpus when the
default dataset asks for it and is missing, ingests the default dataset and
prints its status. The command lives in ``flows/`` because it drives the flows;
the library ``audiopipe/`` never imports it, Prefect or the ``flows`` package.
Prefect is imported only by the commands that run a flow, so ``validate``,
``status``, ``identify`` and ``similar`` start without it, and:

- ``ingest`` plans first (a directory listing and the stored clips): with nothing to
  extract it publishes the run in-process and never starts a Prefect server;
- ``stage`` runs in-process (recorded in the dataset's ``runs`` table) unless a Prefect API
  is configured (``PREFECT_API_URL``, a profile, or ``audiopipe server start``), in which
  case it runs as the ``stages`` flow and shows in the UI;
- ``audiopipe server start`` keeps one local Prefect API for every later command (see
  :mod:`flows.server`), instead of an ephemeral one per process (~10-20 s each).

Examples
--------
::

    audiopipe validate                 # check datasets.yaml, do nothing else
    audiopipe ingest demo              # ingest new/changed files of 'demo'
    audiopipe rebuild demo             # recompute every clip into a new version
    audiopipe status                   # versions, clips, hours, errors, last runs
    audiopipe stage segment demo --set mode=novelty   # one stage, one override
    audiopipe stage segment --help     # its parameters
    audiopipe identify clips/ --out answers.csv       # many excerpts, one process
    audiopipe server start             # a persistent local Prefect API (UI on its port)
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
from flows.cli_lookup import cmd_identify, cmd_similar
from flows.cli_stages import add_stage_parsers, run_stages_checked, stage_summary
from flows.server import prefect_env_defaults

__all__ = ["main"]


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the config; files it names that are missing now are warnings: a run that reads
    one refuses to start (:func:`audiopipe.config_files.check_files`), the others go on."""
    from audiopipe.config_files import missing_files

    cfg = _load(args)
    for name, ds in cfg.datasets.items():
        recipe = ds.recipe()
        n = len(recipe.get("compute", {}))
        print(
            f"ok  {name}: {len(ds.source)} source(s), {ds.sample_rate} Hz, {n} features"
            + (f", schedule {ds.schedule!r}" if ds.schedule else "")
        )
        for line in missing_files(cfg, name, labels=True, stages=list(ds.stages)):
            print(f"warning: {line}", file=sys.stderr)
    print(f"storage: {cfg.storage_root}")
    return 0


def cmd_demo_corpus(args: argparse.Namespace) -> int:
    from audiopipe.demo import make_demo_corpus

    out = make_demo_corpus(args.path, n_per_class=args.n_per_class, seed=args.seed)
    n = sum(1 for _ in out.rglob("*") if _.suffix in (".wav", ".flac", ".mp3"))
    print(f"wrote {n} clips with labels.csv, beats.csv, events.csv to {out}")
    return 0


def _ingest(args: argparse.Namespace, kind: str) -> int:
    """Ingest or rebuild; Ctrl-C stops it promptly, publishing nothing (:mod:`flows.interrupt`)."""
    prefect_env_defaults()
    cfg = _load(args)
    from audiopipe.demo import ensure_demo_corpus

    ensure_demo_corpus(cfg, args.dataset)
    from audiopipe.config_files import check_files

    check_files(cfg, args.dataset, labels=True)  # its labels file: named before any work
    from audiopipe.store.runs import summarize
    from flows.interrupt import interruptible

    opts = {
        "allow_removals": getattr(args, "allow_removals", False),
        "retry_failed": getattr(args, "retry_failed", False),
    }
    with interruptible():
        row = _ingest_without_work(cfg, args.dataset, kind, args.scheduler, **opts)
        if row is None:
            from flows.server import use_api

            use_api()
            from flows.ingest import ingest
            from flows.rebuild import rebuild
            from flows.runtime import flow_run_settings

            fn = ingest if kind == "ingest" else rebuild
            with flow_run_settings():
                row = fn(
                    dataset=args.dataset,
                    config_path=str(args.config),
                    scheduler=args.scheduler,
                    progress=not args.quiet,
                    **(opts if kind == "ingest" else {"allow_removals": opts["allow_removals"]}),
                )
        print(summarize(row))
    return 0


def _ingest_without_work(
    cfg: Config, dataset: str | None, kind: str, scheduler: str | None, **opts: bool
) -> dict[str, Any] | None:
    """Plan before starting any server: an ingest with no file to extract is published here.

    The plan (a listing of the sources diffed against the stored clips) decides whether
    there is work; when there is none (nothing new or changed; removed files are dropped
    by the publish step itself) the run is published in-process and recorded in ``runs``,
    without Prefect or Dask. Otherwise None: the flow plans again and does the work. Only
    without a configured Prefect API, where the flow would first start an ephemeral server.
    """
    if kind != "ingest":
        return None
    from flows.server import api_url

    if api_url() is not None:
        return None
    from audiopipe.ingest import publish
    from audiopipe.ingest.turn import ingest_turn
    from audiopipe.store.lock import STAGES_WAIT_S

    ds = cfg.dataset(dataset)
    # (no data published under a running stage, as the flow: see flows.ingest.run_ingest)
    with ingest_turn(cfg, ds.name, kind, stages_wait_s=STAGES_WAIT_S, **opts) as plan:
        if plan.shards:
            return None
        from flows.interrupt import publishing

        with publishing():
            return publish(plan, [])


def cmd_ingest(args: argparse.Namespace) -> int:
    return _ingest(args, "ingest")


def cmd_rebuild(args: argparse.Namespace) -> int:
    return _ingest(args, "rebuild")


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest the dataset, run its declared stages, print its status."""
    from audiopipe.config_files import check_files

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    # every file the run will read, named before the ingest starts
    check_files(cfg, ds.name, labels=True, stages=[] if args.no_stages else list(ds.stages))
    rc = _ingest(args, "ingest")
    if rc != 0:
        return rc
    if ds.stages and not args.no_stages:
        print(f"running stages of {ds.name}: {', '.join(ds.stages)}", file=sys.stderr)
        reports = run_stages_checked(cfg, str(args.config), ds.name, scheduler=args.scheduler)
        print(f"{ds.name}: stages")
        for name, rep in reports.items():
            print(stage_summary(name, rep))
    cmd_status(args)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    prefect_env_defaults()
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
    rc = 1 if any(not r.get("healthy", True) for r in rows) else 0  # broken: exit 1
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2, default=str))
        return rc
    for r in rows:
        if not r["published"]:
            print(f"{r['dataset']}: not ingested yet (audiopipe ingest {r['dataset']})")
            continue
        print(
            f"{r['dataset']}: {r['clips']} clips, {r['hours']:.3f} h, {r['errors']} error rows "
            f"({r['errors_last_run']} in the last run); tables {r['versions']}"
        )
        if not r["healthy"]:
            gone = ", ".join(f"{t} (version {v})" for t, v in r["missing_tables"].items())
            print(f"  BROKEN: tables the last run recorded are missing on storage: {gone} "
                  f"(restore them from a copy, or `audiopipe rebuild {r['dataset']}`)")
        for run in r["last_runs"]:
            wall = f"{run['wall_seconds']:.1f} s" if run["wall_seconds"] is not None else "-"
            if run["kind"] == "stage":
                what = f"stage {run['stage']}"
                print(f"  {run['run_id']}  {what:<18} {run['status']:<6} {wall}  {run['message']}")
                continue
            print(
                f"  {run['run_id']}  {run['kind']:<18} {run['status']:<6} processed "
                f"{run['files_processed']}, failed {run['files_failed']}, {wall}  {run['message']}"
            )
    print(
        f"read them: audiopipe.open_dataset({cfg.storage_root!r}, NAME).table('clips').to_pandas()"
    )
    return rc


def cmd_vacuum(args: argparse.Namespace) -> int:
    from audiopipe.store.location import Location
    from audiopipe.store.vacuum import vacuum

    cfg = _load(args)
    ds = cfg.dataset(args.dataset)
    report = vacuum(
        Location(cfg.storage_root, ds.name), retain_hours=args.retain_hours, dry_run=args.dry_run,
        sources=[cfg.resolve(s) for s in ds.source],
    )
    print(report.summary())
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from flows import server

    if args.action == "start":
        st = server.start()
        ui = st["url"].removesuffix("/api")
        print(f"prefect server {st['url']} (pid {st['pid']}); UI at {ui}; "
              f"commands in PREFECT_HOME={server.prefect_home()} use it")
    elif args.action == "stop":
        print("stopped" if server.stop() else "no server was running")
    else:
        st = server.status()
        if st is None:
            print("no audiopipe-started prefect server in "
                  f"PREFECT_HOME={server.prefect_home()}; API used: {server.api_url() or 'none'}")
            return 1
        print(f"prefect server {st['url']} (pid {st['pid']}), "
              f"{'healthy' if st['healthy'] else 'not answering'}")
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
    ip = with_ds(sub.add_parser("ingest", help="ingest new and changed files"))
    ip.add_argument(
        "--allow-removals",
        action="store_true",
        help="let this run remove more than the dataset's max_removed_share of its clips "
        "(refused by default: an empty or unmounted source would empty the dataset)",
    )
    ip.add_argument(
        "--retry-failed",
        action="store_true",
        help="retry files that failed before and have not changed since",
    )
    ip.set_defaults(fn=cmd_ingest)
    rb = with_ds(sub.add_parser("rebuild", help="recompute a whole dataset into a new version"))
    rb.add_argument(
        "--allow-removals",
        action="store_true",
        help="let the rebuild drop more than the dataset's max_removed_share of its clips",
    )
    rb.set_defaults(fn=cmd_rebuild)
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
        "stage",
        help="run a stage (classify, tag, segment, beats, ...) on a dataset",
        description="Run one stage; `audiopipe stage NAME --help` lists its parameters.",
    )
    stage_sub = sg.add_subparsers(dest="name", required=True, metavar="NAME")
    add_stage_parsers(stage_sub)
    idf = sub.add_parser(
        "identify", help="identify audio excerpts by their fingerprints (files, folders, globs)"
    )
    idf.add_argument("files", nargs="+", help="audio files, folders or globs")
    idf.add_argument("--dataset", "-d", default=None)
    idf.add_argument("--out", default=None, help="write the answers as a .csv or .parquet table")
    idf.set_defaults(fn=cmd_identify)
    sim = sub.add_parser("similar", help="nearest clips to files or clip ids")
    sim.add_argument("queries", nargs="+", help="audio files, folders, globs or clip ids")
    sim.add_argument("--dataset", "-d", default=None)
    sim.add_argument("-k", type=_positive_int, default=10, help="how many clips (default 10)")
    sim.add_argument(
        "--view", default="timbre", help="timbre (MFCC stats) or tonal (chroma + tempo)"
    )
    sim.add_argument("--out", default=None, help="write the answers as a .csv or .parquet table")
    sim.set_defaults(fn=cmd_similar)
    srv = sub.add_parser(
        "server", help="a persistent local Prefect API reused by every command (and its UI)"
    )
    srv.add_argument("action", choices=("start", "stop", "status"))
    srv.set_defaults(fn=cmd_server)
    dc = sub.add_parser("demo-corpus", help="write the deterministic demo corpus")
    dc.add_argument("path")
    dc.add_argument("--n-per-class", type=int, default=50)
    dc.add_argument("--seed", type=int, default=0)
    dc.set_defaults(fn=cmd_demo_corpus)
    return p


def _positive_int(text: str) -> int:
    """An argument that counts something: a whole number >= 1 (``-k 0`` answered nothing)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return n


def main(argv: list[str] | None = None) -> int:
    """Run one command; the console script (``argv`` None) exits the process itself."""
    args = build_parser().parse_args(argv)
    _reap_orphans()
    try:
        rc = int(args.fn(args) or 0)
    except ConfigError as err:
        print(f"audiopipe: invalid configuration:\n{err}", file=sys.stderr)
        rc = 2
    except (FileNotFoundError, LookupError, RuntimeError, ValueError) as err:
        print(f"audiopipe: {type(err).__name__}: {err}", file=sys.stderr)
        rc = 1
    except Exception as err:
        if not _storage_error(err):
            raise
        # a damaged table (a torn or edited Delta log) or unreadable storage: one line naming
        # the table (open_table notes it), not delta-rs's message with its Rust backtrace
        where = "; ".join(getattr(err, "__notes__", ()))
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"audiopipe: {where + ': ' if where else type(err).__name__ + ': '}{first}",
              file=sys.stderr)
        rc = 1
    if argv is None and "prefect" not in sys.modules:
        _exit(rc)
    return rc


def _storage_error(err: BaseException) -> bool:
    """An error of the storage: an OSError, or delta-rs's (checked without importing it)."""
    delta = sys.modules.get("deltalake.exceptions")
    return isinstance(err, OSError) or (
        delta is not None and isinstance(err, getattr(delta, "DeltaError", ()))
    )


def _reap_orphans() -> None:
    """Stop what a killed command left running (its Prefect server, Dask workers)."""
    from flows.interrupt import reap_orphans

    try:
        n = reap_orphans()
    except OSError:
        return
    if n:
        print(f"audiopipe: stopped {n} process(es) left running by a killed command",
              file=sys.stderr)


def _exit(rc: int) -> None:
    """End a command that ran in-process (no Prefect) without the interpreter's teardown.

    On a loaded machine the teardown sometimes aborts ("terminate called without an active
    exception", exit -6) after all the work and output are done: a native Arrow/Delta
    worker thread is still being destroyed (apache/arrow#34314, delta-rs#2184). Nothing of
    ours runs at exit, so flushing and leaving is safe. Commands that ran Prefect keep the
    normal exit: Prefect flushes its logs to the API then.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())

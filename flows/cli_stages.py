"""Stage runs of the ``audiopipe`` script: ``--set`` values, every named stage validated
(parameters, then the files they read) and run in-process or through the ``stages`` flow,
and the one-line summary of each stage's report.

Examples
--------
::

    audiopipe stage segment demo --set mode=novelty   # one stage, one override
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from audiopipe.config import Config, ConfigError, load_config

__all__ = [
    "add_stage_parsers", "cmd_stage", "parse_sets", "run_stages_checked", "stage_summary",
]


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


def stage_summary(name: str, report: dict[str, Any]) -> str:
    """One line per stage: skipped (and why), or its first few numbers and its plot."""
    if report.get("skipped"):
        return f"  {name:<12} skipped: {report['skipped']}"
    nums = _numbers(report.get("metrics")) or _numbers(
        {k: v for k, v in report.items() if k not in ("seconds", "tables", "run_id")}
    )
    shown = ", ".join(f"{k} {int(v)}" if v.is_integer() else f"{k} {v:.3g}" for k, v in nums[:5])
    where = report.get("plots") or report.get("plot") or ""
    if isinstance(where, list):
        where = where[0] if where else ""
    secs = f" ({report['seconds']:.1f} s)" if report.get("seconds") is not None else ""
    line = f"  {name:<12} {shown}{secs}" + (f"  [{where}]" if where else "")
    warns = report.get("warnings") or []
    for w in warns[:3]:  # what a run warned about stays in its summary (all of it in --json)
        line += f"\n  {'':<12} warning: {w if len(w) <= 160 else w[:157] + '...'}"
    if len(warns) > 3:
        line += f"\n  {'':<12} ... {len(warns) - 3} more warning(s) (--json lists them)"
    return line


def run_stages_checked(
    cfg: Config,
    config_path: str,
    dataset: str | None,
    names: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Every named stage, validated first; through the ``stages`` flow when an API is set.

    Clip stages with many new clips run in shards on Dask: ``scheduler`` (or the config's
    ``cluster``), else a LocalCluster started only when a stage needs it."""
    from audiopipe.stages.checks import check_request

    # parameters, then the files they read: refused before Prefect or Dask starts
    name, todo = check_request(cfg, dataset, names, overrides)
    from flows.server import use_api

    if use_api():
        from flows.runtime import flow_run_settings
        from flows.stages import stages

        with flow_run_settings():
            return stages(
                dataset=name,
                names=todo,
                config_path=config_path,
                overrides=overrides,
                force=force,
                scheduler=scheduler,
            )
    from audiopipe.stages.runner import run_stages
    from flows.runtime import lazy_client

    with lazy_client(cfg, scheduler) as client:
        return run_stages(cfg, name, todo, overrides, force=force, client=client)


def parse_sets(name: str, items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs (YAML values); paths are relative to the current folder."""
    import yaml

    from audiopipe.stages import stage_class
    from audiopipe.stages.params import resolve_path

    kinds = {p.name: p.type for p in stage_class(name).params}
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"--set takes key=value, got {it!r}")
        k, v = it.split("=", 1)
        val = yaml.safe_load(v)
        if kinds.get(k) == "path" and isinstance(val, str):
            val = resolve_path(val, os.getcwd())
        out[k.strip()] = val
    return out


def cmd_stage(args: argparse.Namespace) -> int:
    from flows.server import prefect_env_defaults

    prefect_env_defaults()
    cfg = load_config(args.config)
    overrides = parse_sets(args.name, args.set)
    if args.predict:
        overrides["predict"] = True
    reports = run_stages_checked(
        cfg,
        str(args.config),
        args.dataset,
        [args.name],
        overrides,
        force=args.force,
        scheduler=args.scheduler,
    )
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
    else:
        for name, rep in reports.items():
            print(stage_summary(name, rep))
    return 0


def add_stage_parsers(sub: Any) -> None:
    """One sub-command per stage, its ``--help`` rendered from the stage's declaration."""
    from audiopipe.stages import STAGES, stage_class
    from audiopipe.stages.base import ClipStage
    from audiopipe.stages.params import help_text

    for name in STAGES:
        st = stage_class(name)
        sp = sub.add_parser(
            name,
            help=st.summary.split(";")[0],
            description=st.summary,
            epilog=help_text(st.params),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument(
            "dataset", nargs="?", default=None, help="dataset name (default: default_dataset)"
        )
        if any(p.name == "predict" for p in st.params):
            sp.add_argument("--predict", action="store_true", help="score clips with the saved model")
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a parameter for this run (repeatable; checked before any work)",
        )
        sp.add_argument(
            "--force", action="store_true", help="rerun even if inputs, parameters and code are unchanged"
        )
        sp.add_argument("--json", action="store_true", help="print the full report as JSON")
        if issubclass(st, ClipStage):
            sp.add_argument(
                "--scheduler",
                default=None,
                help="Dask scheduler address for many clips (default: the config's, else a "
                "LocalCluster started when there are enough new clips)",
            )
        sp.set_defaults(fn=cmd_stage, predict=False, scheduler=None)

"""A stage request checked completely before any work: its parameters and the files they name.

A request is a dataset's declared stages (or the named ones) with overrides (``--set``)
applied to each, as :func:`audiopipe.stages.runner.run_stages` runs it. :func:`check_request`
is the one check of it, for every caller: ``audiopipe stage`` / ``audiopipe run`` call it
before Prefect starts, ``run_stages`` (the in-process CLI, the ``stages`` flow, a notebook)
before the first stage runs; ``run_stage`` (one stage, on an open dataset) checks its own
parameters and, with :func:`missing_param_files`, the same way, the files they name, before
it takes any lock. It refuses

1. a dataset that declares no stages when none is named;
2. each stage's parameters that do not fit its declaration or its cross-parameter rules
   (:func:`check_params`): a :class:`~audiopipe.errors.ConfigError`, one
   ``datasets.D.stages.S.key: reason`` line each;
3. then the local files its file parameters name that are not there
   (:func:`missing_stage_files`): a :class:`FileNotFoundError`, one
   ``datasets.D.stages.S.key: reason`` line each (URLs are not checked; nor files of a demo
   corpus not yet written, which its first ingest writes).

Nothing is read, locked or written by then. An ingest's labels file is checked by
:mod:`audiopipe.config_files` (which uses :func:`stage_file_keys` and
:func:`missing_stage_files` for the stages' part).

Examples
--------
>>> from audiopipe.config import parse_config
>>> cfg = parse_config({"datasets": {"d": {"source": "x",
...                                        "stages": {"segment": {"events": "/no/e.csv"}}}}})
>>> check_params("segment", {"mdoe": "novelty"}, where="s", require=False)
['s.mdoe: unknown parameter (did you mean mode?)']
>>> missing_stage_files(cfg, "d", ["segment"])
['datasets.d.stages.segment.events: no such file or folder: /no/e.csv']
>>> check_request(cfg, "d", ["segment"], {"events": "s3://bucket/e.csv"})
('d', ['segment'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from audiopipe.errors import ConfigError
from audiopipe.stages import STAGES, stage_class
from audiopipe.stages.params import check, resolve

__all__ = [
    "check_params",
    "check_request",
    "missing_param_files",
    "missing_stage_files",
    "stage_file_keys",
]


def check_params(
    name: str, raw: Mapping[str, Any] | None, *, where: str, require: bool = True
) -> list[str]:
    """Problems of ``raw`` parameters of stage ``name`` (declaration and cross-parameter rules)."""
    stage = stage_class(name)()
    problems = check(stage.params, raw, where=where, require=require)
    if not problems and require:
        problems = [f"{where}: {p}" for p in stage.check(resolve(stage.params, raw))]
    return problems


def stage_file_keys(
    declared: Mapping[str, Any], stages: Iterable[str] | None = None
) -> list[tuple[str, Any, bool]]:
    """``(key, value, file_only)`` of the file (``path``) parameters of ``stages`` (default:
    every declared one) in ``declared`` (a dataset's ``stages:`` mapping): keys
    ``stages.S.param``; a folder will do (``file_only`` False). Unknown stages are left out
    (the config's validation names them)."""
    out: list[tuple[str, Any, bool]] = []
    for stage in declared if stages is None else stages:
        raw = declared.get(stage) or {}
        if stage in STAGES and isinstance(raw, Mapping):
            out += [(f"stages.{stage}.{p.name}", raw.get(p.name), False)
                    for p in stage_class(stage).params if p.type == "path"]
    return out


def missing_stage_files(
    cfg: Any,
    dataset: str | None = None,
    stages: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[str]:
    """``datasets.D.stages.S.key: reason`` for each local file the ``stages`` would read and
    cannot; ``overrides`` (this run's parameters, absolute paths) over the config's.
    ``cfg``: an :class:`audiopipe.config.Config` (not imported here: it imports the stages)."""
    from audiopipe.config_text import demo_folder, path_problems

    ds, stages = cfg.dataset(dataset), list(stages)
    declared = {n: {**ds.stages.get(n, {}), **(overrides or {})} for n in stages}
    written = demo_folder(ds.source, ds.demo_corpus, cfg.base_dir)
    return path_problems(ds.name, stage_file_keys(declared, stages), cfg.base_dir, written)


def missing_param_files(
    dataset: str, stage: str, params: Mapping[str, Any], base_dir: str | None = None
) -> list[str]:
    """``datasets.D.stages.S.key: reason`` for each local file the ``params`` of one run of
    ``stage`` name and that is not there (relative paths: against ``base_dir``, default the
    working directory), as :func:`missing_stage_files` words them. An empty value is the
    parameter left unset, as a call may pass it (``datasets.yaml`` is told to leave the key
    out instead, by :func:`check_request`)."""
    import os

    from audiopipe.config_text import path_problems

    keys = stage_file_keys({stage: {k: v for k, v in params.items() if v != ""}}, [stage])
    return path_problems(dataset, keys, base_dir or os.getcwd())


def check_request(
    cfg: Any,
    dataset: str | None = None,
    names: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """The dataset's name and the stages to run (``names``, default every declared one), once
    the request is checked completely (see the module docstring); else
    :class:`~audiopipe.errors.ConfigError` (no stages, bad parameters) or
    :class:`FileNotFoundError` (missing files), every problem named by its key."""
    ds = cfg.dataset(dataset)
    todo = list(names or ds.stages)
    if not todo:
        raise ConfigError(
            f"datasets.{ds.name}.stages: declares no stages; add some, or name one "
            f"(`audiopipe stage NAME {ds.name}`)"
        )
    problems = []
    for n in todo:
        where = f"datasets.{ds.name}.stages.{n}"
        problems += check_params(n, {**ds.stages.get(n, {}), **(overrides or {})}, where=where)
    if problems:
        raise ConfigError("\n".join(problems))
    missing = missing_stage_files(cfg, ds.name, todo, overrides)
    if missing:
        raise FileNotFoundError("\n".join(missing))
    return ds.name, todo

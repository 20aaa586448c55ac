"""The local files a ``datasets.yaml`` names: checked for the run that reads them.

A labels file (``labels.path``) and the stages' file parameters (``events``, ``reference``,
``listens``, ``model_path``...) are read by one dataset's ingest or one stage. Whether they
are there is a condition of that run, not of the configuration: a share that is not mounted
for dataset ``b`` must not stop a command about dataset ``a``. So loading the config checks
only their shape (a path that is not blank, :func:`path_keys`); a run checks the files it is
about to read, before any work, naming each key (:func:`check_files`): an ingest or rebuild
of a dataset its labels file, ``audiopipe stage NAME X`` that stage's files, ``audiopipe run X``
both. ``audiopipe validate`` lists every dataset's missing files as warnings.

URLs are not checked (no network before a run), nor the files a demo corpus not yet written
will hold (its first ingest writes them).

Examples
--------
>>> from audiopipe.config import parse_config
>>> cfg = parse_config({"datasets": {"d": {"source": "x", "labels": {"path": "/no/l.csv"}}}})
>>> missing_files(cfg, "d", labels=True)
['datasets.d.labels.path: no such file: /no/l.csv']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audiopipe.config_text import path_problem

__all__ = ["check_files", "missing_files", "path_keys"]


def path_keys(
    ds: Mapping[str, Any], *, labels: bool = True, stages: Iterable[str] | None = None
) -> list[tuple[str, Any, bool]]:
    """``(key, value, file_only)`` of each local-file key of a dataset (its raw YAML mapping):
    ``labels.path`` when ``labels``, then the ``path`` parameters of ``stages`` (default: every
    declared stage). ``file_only``: a folder will not do (a labels table)."""
    from audiopipe.stages import STAGES, stage_class

    raw_labels, declared = ds.get("labels"), ds.get("stages")
    declared = declared if isinstance(declared, Mapping) else {}
    out = [("labels.path", raw_labels.get("path"), True)] if (
        labels and isinstance(raw_labels, Mapping)) else []
    for stage in declared if stages is None else stages:
        raw = declared.get(stage) or {}
        if stage in STAGES and isinstance(raw, Mapping):
            out += [(f"stages.{stage}.{p.name}", raw.get(p.name), False)
                    for p in stage_class(stage).params if p.type == "path"]
    return out


def _demo_folder(ds: Mapping[str, Any], base_dir: str) -> str | None:
    """The folder a demo corpus not yet written will fill (its files are not missing)."""
    src = ds.get("source")
    first = src[0] if isinstance(src, list) and src else src
    if ds.get("demo_corpus") is not True or not isinstance(first, str) or not first.strip():
        return None
    folder = str((Path(base_dir) / first.split("*")[0].rstrip("/")).resolve())
    return None if next(Path(folder).rglob("*.wav"), None) else folder


def missing_files(
    cfg: Any,
    dataset: str | None = None,
    *,
    labels: bool = False,
    stages: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[str]:
    """``datasets.X.key: reason`` for each local file a run would read and cannot.

    Parameters
    ----------
    cfg : the loaded :class:`audiopipe.config.Config` (not imported here: config imports
        :func:`path_keys`)
    dataset : the dataset's name (default: the config's default dataset)
    labels : check ``labels.path`` (an ingest or rebuild reads it)
    stages : the stages about to run: their file parameters are checked
    overrides : parameters given for this run (``--set``, absolute paths), over the config's
    """
    ds, stages = cfg.dataset(dataset), list(stages)
    raw = {
        "source": ds.source,
        "demo_corpus": ds.demo_corpus,
        "labels": ds.labels.model_dump() if ds.labels is not None else None,
        "stages": {n: {**ds.stages.get(n, {}), **(overrides or {})} for n in stages},
    }
    demo = _demo_folder(raw, cfg.base_dir)
    return [f"datasets.{ds.name}.{key}: {why}"
            for key, v, file_only in path_keys(raw, labels=labels, stages=stages)
            if (why := path_problem(v, cfg.base_dir, file_only=file_only, written_under=demo))]


def check_files(
    cfg: Any,
    dataset: str | None = None,
    *,
    labels: bool = False,
    stages: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`FileNotFoundError` naming each key of :func:`missing_files`, one a line;
    call it before a run's work (nothing is read, locked or written by then)."""
    problems = missing_files(cfg, dataset, labels=labels, stages=stages, overrides=overrides)
    if problems:
        raise FileNotFoundError("\n".join(problems))

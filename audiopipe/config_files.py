"""The local files a ``datasets.yaml`` names: checked for the run that reads them.

A labels file (``labels.path``) and the stages' file parameters (``events``, ``reference``,
``listens``, ``model_path``...) are read by one dataset's ingest or one stage. Whether they
are there is a condition of that run, not of the configuration: a share that is not mounted
for dataset ``b`` must not stop a command about dataset ``a``. So loading the config checks
only their shape (a path that is not blank, :func:`path_keys`); a run checks the files it is
about to read, before any work, naming each key (:func:`check_files`): an ingest or rebuild
of a dataset its labels file, ``audiopipe run X`` its labels and its stages' files, and
``validate`` lists every dataset's missing files as warnings. A stage run checks its own files
with its parameters (:func:`audiopipe.stages.checks.check_request`, the stages' part of
:func:`missing_files`), however it is started.

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
from typing import Any

from audiopipe.config_text import demo_folder, path_problems

__all__ = ["check_files", "missing_files", "path_keys"]


def path_keys(
    ds: Mapping[str, Any], *, labels: bool = True, stages: Iterable[str] | None = None
) -> list[tuple[str, Any, bool]]:
    """``(key, value, file_only)`` of each local-file key of a dataset (its raw YAML mapping):
    ``labels.path`` when ``labels``, then the ``path`` parameters of ``stages`` (default: every
    declared stage; :func:`audiopipe.stages.checks.stage_file_keys`). ``file_only``: a folder
    will not do (a labels table)."""
    from audiopipe.stages.checks import stage_file_keys

    raw_labels, declared = ds.get("labels"), ds.get("stages")
    declared = declared if isinstance(declared, Mapping) else {}
    out = [("labels.path", raw_labels.get("path"), True)] if (
        labels and isinstance(raw_labels, Mapping)) else []
    return out + stage_file_keys(declared, stages)


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
        (:func:`audiopipe.stages.checks.missing_stage_files`, which a stage run checks itself)
    overrides : parameters given for this run (``--set``, absolute paths), over the config's
    """
    from audiopipe.stages.checks import missing_stage_files

    ds = cfg.dataset(dataset)
    out: list[str] = []
    if labels and ds.labels is not None:
        written = demo_folder(ds.source, ds.demo_corpus, cfg.base_dir)
        out = path_problems(ds.name, [("labels.path", ds.labels.path, True)], cfg.base_dir, written)
    return out + missing_stage_files(cfg, ds.name, stages, overrides)


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

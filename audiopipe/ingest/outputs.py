"""Where datasets keep their outputs, which discovery never takes for sources.

Examples
--------
>>> outputs_excluded(3, ["out/demo"]).split(" (a dataset")[0]
"3 audio files under the datasets' outputs ('out/demo') not ingested"
"""

from __future__ import annotations

import os
from collections.abc import Callable

from audiopipe.config import Config
from audiopipe.store.location import Location

__all__ = ["datasets_outputs", "outputs_excluded"]


#: what marks a folder as a dataset's (its ``runs`` table), declared in this config or not
RUNS_LOG = os.path.join("tables", "runs", "_delta_log")


def datasets_outputs(cfg: Config) -> tuple[Callable[[str], bool], list[str]]:
    """Whether a listed uri is under a dataset's outputs, and those folders (the list grows
    as local ones are found): ``<storage>/<dataset>/`` for every dataset of the config and,
    for local files, any folder holding a dataset's ``runs`` table (:data:`RUNS_LOG`: a
    dataset renamed, stored under another root, or of another config): tables, frames and
    stage outputs, separated stems being audio. Those are never clips,
    even when a source folder holds the storage (``source: .`` next to ``storage: out``);
    anything else under the storage root (raw audio kept in ``data/raw`` next to
    ``storage: data``) is a source like any other."""
    bases = [Location(cfg.storage_root, name).base for name in sorted(cfg.datasets)]
    if "://" in cfg.storage_root and not cfg.storage_root.startswith("file://"):
        prefixes = tuple(b.rstrip("/") + "/" for b in bases)
        return (lambda uri: uri.startswith(prefixes)), bases
    local = [b.removeprefix("file://") for b in bases]
    prefixes = tuple({os.path.join(f(b), "") for b in local for f in (os.path.abspath, os.path.realpath)})
    real: dict[str, str] = {}  # folder -> its real path (a source reached through a link)
    marked: dict[str, str | None] = {}  # folder -> the dataset folder holding it, or None

    def dataset_folder(folder: str) -> str | None:
        if folder not in marked:
            parent = os.path.dirname(folder)
            here = os.path.isdir(os.path.join(folder, RUNS_LOG))
            marked[folder] = folder if here else (None if parent == folder else dataset_folder(parent))
            if here:
                bases.append(folder)
        return marked[folder]

    def inside(uri: str) -> bool:
        if "://" in uri and not uri.startswith("file://"):
            return False
        path = uri.removeprefix("file://")
        if path.startswith(prefixes):
            return True
        folder = os.path.dirname(path)
        if folder not in real:
            real[folder] = os.path.join(os.path.realpath(folder), "")
        return real[folder].startswith(prefixes) or dataset_folder(os.path.abspath(folder)) is not None

    return inside, bases


def outputs_excluded(n: int, bases: list[str]) -> str:
    where = ", ".join(repr(b) for b in bases[:3]) + (", ..." if len(bases) > 3 else "")
    return (
        f"{n} audio file{'' if n == 1 else 's'} under the datasets' outputs ({where}) not ingested "
        "(a dataset's tables, frames and stage outputs are never clips)"
    )

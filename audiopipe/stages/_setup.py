"""What a stage run is keyed on and reads (:func:`audiopipe.stages.runner.run_stage`): the
dataset opened as of its last ingest, the defaults it gives, the run's inputs, the feature
recipe a run computed on, and whether a previous run's outputs are still as it left them."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from audiopipe.stages.base import Stage
    from audiopipe.store.dataset import Dataset
    from audiopipe.store.records import RunRow

__all__ = ["INPUT_TABLES", "SHARED_TABLES", "latest", "recipe_of", "dataset_defaults", "inputs",
           "outputs_intact", "current_version", "file_hash"]

#: the data tables whose pinned versions are every stage's inputs
INPUT_TABLES = ("clips", "features", "frames_index")
#: tables every stage appends to: not part of a stage's "outputs unchanged" check
SHARED_TABLES = ("metrics", "errors")
#: the data tables a stage reads (an ingest that leaves them as they were changes nothing)
STAGE_DATA_TABLES = ("clips", "features", "frames_index")


def latest(ds: Dataset) -> Dataset:
    """``ds``, brought up to date in place when it is a default open (not pinned to a run id)
    and an ingest or rebuild has published other data tables (clips, features, frames) since
    it was opened: a stage run holding its lock then runs on the clips of now, not on those of
    before that ingest (the ingest cannot publish while the stage holds its lock, so what this
    sees stays true for the run). In place, so that the caller's ``ds`` reads what the stage
    wrote; a turn that published nothing new (the same data versions) changes nothing."""
    from audiopipe.store.dataset import Dataset
    from audiopipe.store.runs import last_run

    if getattr(ds, "_pin", None) is not None:  # opened as of a run id: left as asked
        return ds
    now = last_run(ds.location)
    if now is None or now.run_id == (ds.run or {}).get("run_id"):
        return ds
    if all(now.versions().get(t) == ds.versions.get(t) for t in STAGE_DATA_TABLES):
        return ds
    fresh = Dataset(ds.location)
    fresh.decoder_hook = ds.decoder_hook
    state = vars(ds)
    stale = set(state) - set(vars(fresh))  # (caches of the old open: cached properties)
    state.update(vars(fresh))
    for key in stale:
        state.pop(key, None)
    return ds


def recipe_of(run: RunRow, runs: list[RunRow]) -> str | None:
    """The hash of the feature recipe stage run ``run`` computed on: the one it recorded or,
    a row that records none, the one of the ingest or rebuild that wrote the ``frames_index``
    version it read (the newest such run finished before it started); None when unknown."""
    if run.recipe_hash is not None:
        return run.recipe_hash
    fi = json.loads(run.input_versions or "{}").get("frames_index")
    when = run.started or run.finished
    if fi is None or when is None:
        return None
    ingests = sorted(
        (r for r in runs if r.kind in ("ingest", "rebuild") and r.status == "ok"
         and r.finished is not None and r.finished <= when
         and r.versions().get("frames_index") == fi),
        key=lambda r: (r.finished, r.run_id),
    )
    return ingests[-1].recipe_hash if ingests else None


def dataset_defaults(ds: Dataset, stage: Stage, given: Mapping[str, Any]) -> dict[str, Any]:
    """Values the dataset gives to parameters declared ``from_dataset`` (only those needed)."""
    need = {p.from_dataset for p in stage.params if p.from_dataset and given.get(p.name) is None}
    out: dict[str, Any] = {}
    if not need:
        return out
    fi = ds.table("frames_index", ["sr", "hop_length", "part"])
    if fi.num_rows:
        out["sample_rate"] = int(fi.column("sr")[0].as_py())
        out["hop_length"] = int(fi.column("hop_length")[0].as_py())
        if "n_fft" in need:
            from audiopipe.store.frames import open_part

            part = fi.column("part")[0].as_py()
            attrs = open_part(ds.location.frames_uri(part), ds.location.fsspec_options).attrs
            n_fft = (attrs.get("recipe") or {}).get("n_fft")
            if n_fft is not None:
                out["n_fft"] = int(n_fft)
    else:
        clips = ds.table("clips", ["sr"])
        if clips.num_rows:
            out["sample_rate"] = int(clips.column("sr")[0].as_py())
    return out


def file_hash(ds: Dataset, uri: str) -> str:
    """Hash of a file's bytes; of a local folder (e.g. per-recording references): of its
    files' names and bytes."""
    from audiopipe.stages._common import read_bytes

    if "://" not in uri and os.path.isdir(uri):
        h = hashlib.blake2b(digest_size=8)
        for root, dirs, files in os.walk(uri):
            dirs.sort()
            for f in sorted(files):
                path = os.path.join(root, f)
                h.update(os.path.relpath(path, uri).encode() + b"\0")
                with open(path, "rb") as fh:
                    h.update(hashlib.blake2b(fh.read(), digest_size=8).digest())
        return h.hexdigest()
    return hashlib.blake2b(read_bytes(ds, uri), digest_size=8).hexdigest()


def inputs(ds: Dataset, stage: Stage, params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {t: ds.versions.get(t) for t in INPUT_TABLES}
    for p in stage.params:
        if p.type == "path" and params.get(p.name):
            out[f"file:{params[p.name]}"] = file_hash(ds, params[p.name])
    return out


def current_version(ds: Dataset, name: str) -> int | None:
    from audiopipe.store.tables import table_version

    return table_version(ds.location, name)


def outputs_intact(ds: Dataset, prev: RunRow) -> bool:
    """Whether the tables ``prev`` wrote are still at the versions it left them (a vacuum's
    commits, which change no row, do not count) and are the tables it wrote (not made anew)."""
    from audiopipe.store.anew import outputs_made_anew
    from audiopipe.store.tables import rows_changed_since

    if outputs_made_anew(ds.location, prev, skip=SHARED_TABLES):
        return False
    for name, v in prev.versions().items():
        if name in SHARED_TABLES or current_version(ds, name) == v:
            continue
        if v is None or rows_changed_since(ds.location, name, v):
            return False
    return True



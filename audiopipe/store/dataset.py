"""Read a dataset as an analyst: tables at a consistent snapshot, frames as numpy or dask.

Examples
--------
>>> import audiopipe
>>> ds = audiopipe.open_dataset("data/out", "demo")        # doctest: +SKIP
>>> ds.table("clips").to_pandas().head()                   # doctest: +SKIP
>>> ds.frames(clip_id, "mfcc").shape                       # doctest: +SKIP
(431, 20)
>>> ds.frames_dask("mfcc")                                 # doctest: +SKIP
dask.array<concatenate, shape=(861234, 20), dtype=float32, ...>
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake.exceptions import DeltaError

from audiopipe.store._reading import (
    SCHEMAS,
    check_columns,
    empty_table,
    in_content_order,
    select_columns,
)
from audiopipe.store.anew import made_anew, recorded, recording_runs
from audiopipe.store.errors import TableMissing
from audiopipe.store.location import Location
from audiopipe.store.records import RunRow
from audiopipe.store.runs import (
    APPENDED_TABLES,
    INGEST_STEPS,  # (the ingest's ``errors`` steps: a pinned dataset hides those of later runs)
    legacy_cutoff,
    newest_run,
    read_versions,
    run_tables,
    table_writers,
    written_versions,
)
from audiopipe.store.tables import (
    append,
    open_table,
    replace_where,
    scan_delta,
    scan_table,
    table_as_of,
    table_exists,
)
from audiopipe.store.vacuum import vacuumed_before

__all__ = ["Dataset", "open_dataset", "DatasetNotFound", "TableMissing"]


class DatasetNotFound(LookupError):
    """No published run for this dataset under this root."""


class Dataset:
    """A published dataset, pinned to the table versions of its last successful runs.

    The ingest tables (``clips``, ``features``, ``frames_index``) are read at the versions
    of the last successful ingest or rebuild (:attr:`run`), each stage's tables at the
    versions its last successful run recorded: commits of a run still in progress, or
    killed, are not seen. ``run_id`` pins to an older run instead: the tables that run read
    and wrote at its versions, the others as the runs finished by then left them (a table
    first written after it is not there).

    A table no successful run the open sees recorded was written before runs recorded stage
    outputs (datasets of stage code older than the stage runner), by a run that did not
    finish, or (pinned) by a run that finished later: it is read as its last commit before
    the dataset's first recorded stage run (and before the pinned run's end) left it, and is
    not there when it had none. (A first ever stage run killed before any stage run was
    recorded looks like stage code older than the runner.)
    A table written through :meth:`write_table` is read at the version written (a stage
    reads its own outputs back).
    """

    def __init__(self, loc: Location, run_id: str | None = None) -> None:
        self.location = loc
        #: called with each source uri before :meth:`load_audio` decodes it (fault tests,
        #: users' checks; see :func:`audiopipe.audio.load_decoder_hook`)
        self.decoder_hook: Any = None
        runs = scan_table(loc, "runs")
        if runs is None:
            raise DatasetNotFound(
                f"dataset {loc.dataset!r} has no published run under {loc.root}; "
                f"run `audiopipe ingest {loc.dataset}` first"
            )
        #: the ``runs`` rows when the dataset was opened (read once)
        self._runs_at_open = RunRow.rows(runs)
        if run_id is None:
            row = newest_run(self._runs_at_open)
        else:
            row = next((r for r in self._runs_at_open if r.run_id == run_id), None)
        if row is None:
            raise DatasetNotFound(
                f"dataset {loc.dataset!r}: no successful run {run_id or ''}".strip()
            )
        #: the ``runs`` row this dataset is pinned to, as a dict
        self.run: dict[str, Any] = row.to_dict()
        if run_id is not None:
            gone = vacuumed_before(loc, self.run)
            if gone:
                raise DatasetNotFound(gone)
        own = run_tables(row)
        done = [r for r in self._runs_at_open if r.status == "ok" and r.finished is not None]
        #: every table a successful run recorded (one not among them may be older than runs)
        self._recorded = set(written_versions(done))
        #: (end, run id) of a run the open is pinned to by ``run_id`` (None: a default open)
        self._pin: tuple[Any, str] | None = None
        if run_id is not None:
            end = row.finished or row.started  # (a failed run's row may lack an end)
            self._pin = (end, run_id)
            done = [r for r in done if end is not None and (r.finished, r.run_id) <= self._pin]
        #: ``{table: version}`` read (None: a table not written yet, read as no rows)
        self.versions: dict[str, int | None] = read_versions(
            self._runs_at_open, None if run_id is None else row
        )
        #: a table no run this open sees recorded reads as committed by then (None: latest)
        self._legacy_until = legacy_cutoff(self._runs_at_open, None if run_id is None else row)
        self._legacy: dict[str, Any] = {}
        #: the runs whose records tell whether a table read was made anew since they recorded
        #: it, and ``{table: whether}`` (:mod:`audiopipe.store.anew`; once per open, on demand)
        self._seen = recording_runs(self._runs_at_open, None if run_id is None else row)
        self._anew: dict[str, bool] = {}
        #: ``{table: why}``: tables whose writer by the pinned run a vacuum did not keep (one
        #: keeps what the runs it kept read, an older one did not: told by the files on reading)
        self._gone: dict[str, str] = {}
        if run_id is not None:  # (a vacuum keeps every version a default open reads)
            for name, w in table_writers(done).items():
                gone = None if name in own or name in APPENDED_TABLES else (
                    vacuumed_before(loc, w.to_dict()))
                if gone:
                    self._gone[name] = f"table {name!r} as of run {run_id} is gone: {gone}"

    @property
    def name(self) -> str:
        return self.location.dataset

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, run={self.run['run_id']}, versions={self.versions})"

    def table_names(self) -> list[str]:
        """The tables this pinned dataset has (a stage table written later is not among them)."""
        names = set(self.versions) | {"runs"}
        fs = self.location.fs
        base = self.location.join("tables")
        if fs.exists(base):
            stored = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)}
            names |= {n for n in stored - names if self._older_than_runs(n) is not None}
        return sorted(names)

    def _older_than_runs(self, name: str) -> Any:
        """The ``DeltaTable`` of ``name``, a table no run this open sees recorded, at its last
        commit made before runs recorded stage outputs (see the class docstring), or None."""
        if name in SCHEMAS:
            return None
        if name not in self._legacy:
            self._legacy[name] = table_as_of(self.location, name, self._legacy_until)
        return self._legacy[name]

    def missing_tables(self) -> dict[str, int]:
        """``{table: version}`` of the tables the pinned run recorded that are not on storage,
        or whose data files at that version are not, or that were made anew since (another
        table, :mod:`audiopipe.store.anew`); reading one raises :class:`TableMissing`
        (``audiopipe status`` lists them)."""
        return {
            n: v
            for n, v in sorted(self.versions.items())
            if v is not None and (not table_exists(self.location, n) or self._files_gone(n, v))
        }

    def _files_gone(self, name: str, version: int) -> bool:
        """Whether a data file of table ``name`` at ``version`` is not on storage (its log is:
        deleted by a vacuum that did not keep the version, or lost in a copy)."""
        try:
            dt = open_table(self.location, name, version)
        except DeltaError:
            if self._made_anew(name, version):
                return True
            raise  # (a damaged log: the error names the table)
        if dt is not None and self._rewritten(name, dt):
            return True
        fs = None if dt is None else dt._native_fs  # (None: a store checked on reading only)
        if fs is None:
            return dt is None
        from urllib.parse import unquote

        from pyarrow.fs import FileType

        # (delta-rs percent-encodes the URIs: a root with a space reads "with%20space")
        paths = [unquote(u.partition("://")[2] if "://" in u else u) for u in dt.file_uris()]
        return any(i.type == FileType.NotFound for i in fs.base_fs.get_file_info(paths))

    def _made_anew(self, name: str, version: int) -> bool:
        """Whether table ``name``'s log ends before ``version`` (made anew since it was
        recorded: the folder lost, a killed run wrote it again)."""
        dt = open_table(self.location, name)
        return dt is None or dt.version() < version

    def _rewritten(self, name: str, dt: Any) -> bool:
        """Whether ``dt``, table ``name`` at its pinned version, is another table than the one
        the runs recorded (made anew since, its new log as long); told once per open."""
        if name not in self._anew:
            rec = recorded(self._seen, name, dt.version())
            self._anew[name] = made_anew(self.location, name, dt.version(), rec, dt)
        return self._anew[name]

    def _missing(self, name: str, files: bool = False, version: int | None = None) -> TableMissing:
        fix = (
            f"`audiopipe rebuild {self.name}` recomputes it"
            if name in ("clips", "features", "frames_index")
            else "rerun what wrote it"
        )
        what, version = ("has data files" if files else "is"), self.versions.get(name, version)
        return TableMissing(
            f"dataset {self.name!r} is broken: table {name!r} version {version}, "
            f"recorded by run {self.run['run_id']}, {what} missing on storage"
            f"{' (the table there was written anew since)' if self._anew.get(name) else ''} "
            f"({self.location.table_uri(name)}); restore it from a copy of the dataset, or {fix}"
        )

    def delta(self, name: str) -> Any:
        """The ``deltalake.DeltaTable`` of ``name`` at the pinned version (None for a table not
        written yet); :class:`TableMissing` when the pinned version is not on storage."""
        if name not in self.versions:
            return self._older_than_runs(name)
        version = self.versions[name]
        if name in self._gone and version is not None and self._files_gone(name, version):
            raise TableMissing(f"dataset {self.name!r}: {self._gone[name]}; open the dataset "
                               "without run_id to read its current version")
        if version is None:
            return None
        try:
            dt = open_table(self.location, name, version)
        except DeltaError as err:
            if self._made_anew(name, version):
                raise self._missing(name) from err
            raise
        if dt is None or self._rewritten(name, dt):
            raise self._missing(name)
        return dt

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """A table as pyarrow (``.to_pandas()`` for pandas): ``columns`` (all when None) in
        the order asked.

        An ingest table not written yet (every file failed so far) has 0 rows and its
        schema's columns; a column the table does not have raises ``KeyError`` naming the
        table's columns; a table the pinned run recorded but missing on storage raises
        :class:`TableMissing`.

        ``clips`` comes in content order (content hash, then clip id), whatever order its
        rows were published in, so "``clips`` order" means the same recordings in the same
        order wherever the dataset lives and however it grew. Rows without a content hash
        (none are written today) come last, by clip id; a table without the column keeps its
        published order.
        """
        if name == "errors":
            return self._errors(columns)
        if name == "runs":  # rows in no particular order (sort by ``started``)
            t = scan_table(self.location, "runs")  # a few rows per run: read whole, select
            return empty_table(name, columns) if t is None else select_columns(name, t, columns)
        dt = self.delta(name)
        if dt is None:
            if name in SCHEMAS or name in self.versions:
                return empty_table(name, columns)
            when = f" at run {self.run['run_id']}" if name in self._recorded else ""
            raise KeyError(
                f"dataset {self.name!r} has no table {name!r}{when} "
                f"(has: {', '.join(self.table_names())})"
            )
        check_columns(name, [f.name for f in dt.schema().fields], columns)
        try:
            if name != "clips":
                return dt.to_pyarrow_table(columns=columns)
            return in_content_order(dt, columns)
        except OSError as err:  # (FileNotFoundError locally) a data file of the version gone
            if self._files_gone(name, dt.version()):
                raise self._missing(name, files=True, version=dt.version()) from err
            raise

    def _errors(self, columns: list[str] | None) -> pa.Table:
        """``errors`` at its latest version, less the rows of ingestion runs that did not finish
        (or finished after the pinned run): stages append their own rows after ingestion.
        Opened at a ``run_id``, less those of stage runs that finished after it, too."""
        t = scan_table(self.location, "errors")
        if t is None and self.versions.get("errors") is not None:
            raise self._missing("errors")
        if t is None:
            return empty_table("errors", columns)
        if t.num_rows == 0:  # nothing to filter (and no pyarrow.compute import, ~0.1 s)
            return select_columns("errors", t, columns)
        import pyarrow.compute as pc

        runs = self._runs_at_open  # runs appended later finished after the pinned run
        ok = [
            r.run_id
            for r in runs
            if r.status == "ok" and r.finished <= self.run["finished"]
        ]
        ingest_steps = pa.array(sorted(INGEST_STEPS))
        keep = pc.or_(
            pc.invert(pc.is_in(t["step"], ingest_steps)),
            pc.is_in(t["run_id"], pa.array(ok, pa.string())),
        )
        if self._pin is not None:
            later = [r.run_id for r in runs if r.kind == "stage" and r.finished is not None
                     and self._pin[0] is not None and (r.finished, r.run_id) > self._pin]
            keep = pc.and_(keep, pc.invert(pc.is_in(t["run_id"], pa.array(later, pa.string()))))
        return select_columns("errors", t.filter(keep), columns)

    def to_pandas(self, name: str, columns: list[str] | None = None) -> Any:
        return self.table(name, columns).to_pandas()

    @cached_property
    def _index(self) -> dict[str, tuple[str, int, int]]:
        t = self.table("frames_index", ["clip_id", "part", "start", "stop"])
        if t.num_rows == 0:
            return {}
        d = t.to_pydict()
        return {
            c: (p, s, e)
            for c, p, s, e in zip(d["clip_id"], d["part"], d["start"], d["stop"], strict=True)
        }

    def features_available(self) -> list[str]:
        if not self._index:
            return []
        from audiopipe.store.frames import open_part

        part = next(iter(self._index.values()))[0]
        return sorted(
            open_part(self.location.frames_uri(part), self.location.fsspec_options).array_keys()
        )

    def frames(self, clip_id: str, feature: str) -> np.ndarray:
        """Frame-level ``feature`` of one clip as ``(n_frames, n_dims)`` float32."""
        if clip_id not in self._index:
            raise KeyError(f"clip {clip_id!r} is not in dataset {self.name!r}")
        from audiopipe.store.frames import read_frames

        part, start, stop = self._index[clip_id]
        return read_frames(
            self.location.frames_uri(part), feature, start, stop, self.location.fsspec_options
        )

    def frames_dask(self, feature: str) -> Any:
        """All clips' frames of ``feature`` as one lazy dask array, the clips in the row order
        of ``table("frames_index")`` (its ``n_frames`` give each clip's rows).

        Clips stored one after another in a part are one slice of it, so the array has about
        one piece per part, not one per clip.
        """
        import dask.array as da

        from audiopipe.store.frames import open_part

        runs: list[list[Any]] = []  # [part, start, stop] of consecutive stored clips
        for part, start, stop in self._index.values():  # (frames_index row order)
            if runs and runs[-1][0] == part and runs[-1][2] == start:
                runs[-1][2] = stop
            else:
                runs.append([part, start, stop])
        if not runs:
            raise KeyError(f"dataset {self.name!r} has no frames")
        arrays: dict[str, Any] = {}
        for part, _, _ in runs:
            if part not in arrays:
                group = open_part(self.location.frames_uri(part), self.location.fsspec_options)
                if feature not in group.array_keys():
                    raise KeyError(
                        f"dataset {self.name!r} has no frame feature {feature!r} "
                        f"(has: {', '.join(sorted(group.array_keys()))})"
                    )
                arrays[part] = da.from_zarr(group[feature])
        pieces = [arrays[part][start:stop] for part, start, stop in runs]
        return pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=0)

    @cached_property
    def _sources(self) -> dict[str, tuple[str, int]]:
        """``clip_id -> (uri, sr)`` from ``clips``, read once (``load_audio`` is O(1) per clip):
        the pinned version, checked as every table read is (:meth:`delta`: missing on storage,
        or written anew since the run recorded it, raises :class:`TableMissing`)."""
        dt = self.delta("clips")
        if dt is None:
            return {}
        t = scan_delta(dt, ["clip_id", "uri", "sr"])
        if t.num_rows == 0:
            return {}
        d = t.to_pydict()
        return {c: (u, int(r)) for c, u, r in zip(d["clip_id"], d["uri"], d["sr"], strict=True)}

    def clip_uri(self, clip_id: str) -> str | None:
        """The source uri of a clip (None if the clip is not in the dataset)."""
        hit = self._sources.get(clip_id)
        return hit[0] if hit else None

    def load_audio(self, clip_id: str, sr: int | None = None) -> tuple[np.ndarray, int]:
        """Decode a clip's source file (mono, at the dataset's feature rate unless ``sr``)."""
        from audiopipe.audio import load
        from audiopipe.uri import open_uri

        if clip_id not in self._sources:
            raise KeyError(f"clip {clip_id!r} is not in dataset {self.name!r}")
        uri, rate = self._sources[clip_id]
        if self.decoder_hook is not None:
            self.decoder_hook(uri)
        opts = self.location.fsspec_options if "://" in uri else {}
        with open_uri(uri, opts) as f:  # a local name with "::" is a file name, not a chain
            return load(f, sr or rate)

    # ---- stage outputs -----------------------------------------------------------------
    def write_table(
        self,
        name: str,
        data: pa.Table,
        *,
        mode: str = "overwrite",
        key: str | None = None,
        keys: Any = None,
        metadata: Mapping[str, str] | None = None,
    ) -> int | None:
        """Write a stage output table (one commit): overwrite, append, or replace rows by ``key``."""
        from deltalake import write_deltalake

        if name in ("clips", "features", "frames_index", "runs"):
            raise ValueError(f"table {name!r} belongs to ingestion; stages write their own tables")
        if mode == "append":
            version = append(self.location, name, data)
        elif mode == "replace":
            assert key is not None
            version = replace_where(
                self.location,
                name,
                data,
                key,
                keys if keys is not None else set(data.column(key).to_pylist()),
            )
        else:
            write_deltalake(
                self.location.delta_uri(name),
                data,
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=self.location.storage_options or None,
            )
            version = open_table(self.location, name).version()
        if name != "errors":  # (read at its latest version, less unfinished ingest runs)
            self.versions[name] = version  # the writer reads what it wrote
            self._gone.pop(name, None)
            self._anew[name] = False  # (what it wrote is what it reads)
        return version

    def path(self, *parts: str) -> str:
        """A path or URL under the dataset's folder (stage runs keep their files there)."""
        return self.location.join(*parts)

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a file under the dataset's folder through its storage location (local or S3)."""
        if not uri.startswith(self.location.base):
            raise ValueError(f"{uri} is outside dataset {self.name!r} ({self.location.base})")
        fs = self.location.fs
        parent = uri.rsplit("/", 1)[0]
        if not self.location.is_remote:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(uri, "wb") as f:
            f.write(data)


def open_dataset(root: str, name: str, run_id: str | None = None) -> Dataset:
    """Open dataset ``name`` stored under ``root`` (a folder or ``s3://`` URL)."""
    return Dataset(Location(root, name), run_id)

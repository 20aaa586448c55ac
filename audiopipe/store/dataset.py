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

from audiopipe.store.frames import open_part, read_frames
from audiopipe.store.location import Location
from audiopipe.store.records import RunRow
from audiopipe.store.runs import last_run
from audiopipe.store.tables import append, open_table, replace_where
from audiopipe.store.vacuum import vacuumed_before

__all__ = ["Dataset", "open_dataset", "DatasetNotFound"]

INGEST_STEPS = frozenset({"discover", "decode", "features", "shard", "publish"})


class DatasetNotFound(LookupError):
    """No published run for this dataset under this root."""


class Dataset:
    """A published dataset, pinned to the table versions of its last successful run.

    Tables written after that run (by a run still in progress, or killed) are
    not seen. ``version`` pins to an older run id instead.
    """

    def __init__(self, loc: Location, run_id: str | None = None) -> None:
        self.location = loc
        runs = open_table(loc, "runs")
        if runs is None:
            raise DatasetNotFound(
                f"dataset {loc.dataset!r} has no published run under {loc.root}; "
                f"run `audiopipe ingest {loc.dataset}` first"
            )
        if run_id is None:
            row = last_run(loc)
        else:
            row = next((r for r in RunRow.rows(runs.to_pyarrow_table()) if r.run_id == run_id), None)
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
        self.versions: dict[str, int | None] = row.versions()

    @property
    def name(self) -> str:
        return self.location.dataset

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, run={self.run['run_id']}, versions={self.versions})"

    def table_names(self) -> list[str]:
        names = set(self.versions) | {"runs"}
        fs = self.location.fs
        base = self.location.join("tables")
        if fs.exists(base):
            names |= {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)}
        return sorted(names)

    def delta(self, name: str) -> Any:
        """The ``deltalake.DeltaTable`` of ``name`` at the pinned version."""
        version = self.versions.get(name) if name in self.versions else None
        if name in self.versions and version is None:
            return None
        dt = open_table(self.location, name, version)
        if dt is None:
            return None
        return dt

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """A table as pyarrow (``.to_pandas()`` for pandas); empty tables are empty, not errors."""
        if name == "errors":
            return self._errors(columns)
        dt = self.delta(name)
        if dt is None:
            if (
                name in ("clips", "features", "frames_index", "errors", "runs")
                or name in self.versions
            ):
                return pa.table({})
            raise KeyError(
                f"dataset {self.name!r} has no table {name!r} (has: {', '.join(self.table_names())})"
            )
        return dt.to_pyarrow_table(columns=columns)

    def _errors(self, columns: list[str] | None) -> pa.Table:
        """``errors`` at its latest version, less the rows of ingestion runs that did not finish
        (or finished after the pinned run): stages append their own rows after ingestion."""
        import pyarrow.compute as pc

        dt = open_table(self.location, "errors")
        if dt is None:
            return pa.table({})
        t = dt.to_pyarrow_table()
        ok = [
            r.run_id
            for r in RunRow.rows(self.table("runs"))
            if r.status == "ok" and r.finished <= self.run["finished"]
        ]
        ingest_steps = pa.array(sorted(INGEST_STEPS))
        keep = pc.or_(
            pc.invert(pc.is_in(t["step"], ingest_steps)),
            pc.is_in(t["run_id"], pa.array(ok, pa.string())),
        )
        t = t.filter(keep)
        return t.select(columns) if columns else t

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
        part = next(iter(self._index.values()))[0]
        return sorted(
            open_part(self.location.frames_uri(part), self.location.fsspec_options).array_keys()
        )

    def frames(self, clip_id: str, feature: str) -> np.ndarray:
        """Frame-level ``feature`` of one clip as ``(n_frames, n_dims)`` float32."""
        if clip_id not in self._index:
            raise KeyError(f"clip {clip_id!r} is not in dataset {self.name!r}")
        part, start, stop = self._index[clip_id]
        return read_frames(
            self.location.frames_uri(part), feature, start, stop, self.location.fsspec_options
        )

    def frames_dask(self, feature: str) -> Any:
        """All clips' frames of ``feature`` as one lazy dask array, in ``frames_index`` order."""
        import dask.array as da
        import zarr

        pieces = []
        for _clip, (part, start, stop) in sorted(
            self._index.items(), key=lambda kv: (kv[1][0], kv[1][1])
        ):
            arr = open_part(self.location.frames_uri(part), self.location.fsspec_options)[feature]
            assert isinstance(arr, zarr.Array)
            pieces.append(da.from_zarr(arr)[start:stop])
        if not pieces:
            raise KeyError(f"dataset {self.name!r} has no frames")
        return da.concatenate(pieces, axis=0)

    def load_audio(self, clip_id: str, sr: int | None = None) -> tuple[np.ndarray, int]:
        """Decode a clip's source file (mono, at the dataset's feature rate unless ``sr``)."""
        from audiopipe.audio import load

        t = self.table("clips", ["clip_id", "uri", "sr"]).to_pydict()
        for c, u, r in zip(t["clip_id"], t["uri"], t["sr"], strict=True):
            if c == clip_id:
                import fsspec

                with fsspec.open(
                    u, "rb", **(self.location.fsspec_options if "://" in u else {})
                ) as f:
                    return load(f, sr or int(r))
        raise KeyError(f"clip {clip_id!r} is not in dataset {self.name!r}")

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
            return append(self.location, name, data)
        if mode == "replace":
            assert key is not None
            return replace_where(
                self.location,
                name,
                data,
                key,
                keys if keys is not None else set(data.column(key).to_pylist()),
            )
        write_deltalake(
            self.location.table_uri(name),
            data,
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=self.location.storage_options or None,
        )
        return open_table(self.location, name).version()

    def path(self, *parts: str) -> str:
        """A path under the dataset's folder (models, plots, stems)."""
        return self.location.join(*parts)


def open_dataset(root: str, name: str, run_id: str | None = None) -> Dataset:
    """Open dataset ``name`` stored under ``root`` (a folder or ``s3://`` URL)."""
    return Dataset(Location(root, name), run_id)

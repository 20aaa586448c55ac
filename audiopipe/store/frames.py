"""Frame-level features in Zarr v3: one immutable part per shard.

A part is a Zarr group holding, per feature, one 2-D ``(total_frames, n_dims)``
float32 array chunked along frames; each clip's rows ``start:stop`` are recorded
in the ``frames_index`` table (values + offsets, as lhotse does). A part is
written by exactly one task and never appended to by another.

Examples
--------
>>> import numpy as np, tempfile
>>> d = tempfile.mkdtemp()
>>> w = FrameWriter(d + "/p.zarr", {"rms": 1})
>>> w.add({"rms": np.ones((1, 10), np.float32)}); w.close()
(0, 10)
>>> read_frames(d + "/p.zarr", "rms", 0, 10).shape
(10, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import numpy as np
import zarr
from zarr.storage import FsspecStore, LocalStore
from zarr.storage._common import _dereference_path  # (how FsspecStore names a key's object)

from audiopipe.uri import remove_async

__all__ = ["FrameWriter", "read_frames", "open_part"]

CHUNK_FRAMES = 4096


class _LiteralFsspecStore(FsspecStore):
    """zarr's ``FsspecStore`` whose deletes remove keys as they are named.

    zarr 3.1 deletes through fsspec's ``rm``, which reads ``*?[`` in a key as a glob: under
    ``s3://audio/q?x`` the key of an all-fill chunk (a silent clip's rms: zarr does not write
    empty chunks, it deletes their keys) or of a chunk cut off by ``rollback_clip``'s resize
    removed the same chunk of ``s3://audio/qax``'s part too (it then read 0.0, no error).
    ``delete``, ``delete_dir`` and ``clear`` (FsspecStore's only removals) go through
    :func:`audiopipe.uri.remove_async` instead.
    """

    async def delete(self, key: str) -> None:
        self._check_writable()
        with suppress(*self.allowed_exceptions):
            await remove_async(self.fs, _dereference_path(self.path, key))

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        with suppress(*self.allowed_exceptions):
            await remove_async(self.fs, _dereference_path(self.path, prefix), recursive=True)

    async def clear(self) -> None:
        await self.delete_dir("")


def _store(uri: str, storage_options: Mapping[str, Any] | None, read_only: bool) -> Any:
    if "://" in uri and not uri.startswith("file://"):
        return _LiteralFsspecStore.from_url(
            uri, storage_options=dict(storage_options or {}), read_only=read_only
        )
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return LocalStore(path, read_only=read_only)


def open_part(uri: str, storage_options: Mapping[str, Any] | None = None) -> zarr.Group:
    """Open a frames part read-only."""
    return zarr.open_group(store=_store(uri, storage_options, True), mode="r")


#: frames are written in batches of whole chunks up to this many bytes (all features)
FLUSH_BYTES = 32 * 2**20
#: ... and at most this many chunks per array
FLUSH_CHUNKS = 8


class FrameWriter:
    """Write one frames part: clips are appended in order, buffered to whole chunks.

    ``add`` takes a dict ``name -> (n_dims, n_frames)`` (the feature library's
    layout) for the next block of the current clip; ``end_clip`` returns the
    clip's ``(start, stop)`` rows.

    Writes go to storage in batches of several whole chunks (``flush_chunks``, by default
    as many as fit in :data:`FLUSH_BYTES`, at most :data:`FLUSH_CHUNKS`): each write and
    resize of a Zarr array costs a few milliseconds whatever its size, so writing chunk by
    chunk cost an ingest worker ~10% of its time. The chunks on storage are the same.
    """

    def __init__(
        self,
        uri: str,
        dims: Mapping[str, int],
        storage_options: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        chunk_frames: int = CHUNK_FRAMES,
        flush_chunks: int | None = None,
    ) -> None:
        # ("w" clears the folder: a retried shard's part is written anew)
        self.group = zarr.open_group(store=_store(uri, storage_options, False), mode="w")
        if attributes:
            self.group.attrs.update(dict(attributes))
        self.chunk = chunk_frames
        self.arrays = {
            name: self.group.create_array(
                name,
                shape=(0, d),
                chunks=(chunk_frames, d),
                dtype="float32",
                dimension_names=("frame", "dim"),
            )
            for name, d in dims.items()
        }
        if flush_chunks is None:
            chunk_bytes = 4 * chunk_frames * max(1, sum(dims.values()))
            flush_chunks = max(1, min(FLUSH_CHUNKS, FLUSH_BYTES // chunk_bytes))
        self.flush_frames = chunk_frames * flush_chunks
        self.buffers: dict[str, list[np.ndarray]] = {n: [] for n in dims}
        self.buffered = 0
        self.written = 0
        self.clip_start = 0

    @property
    def position(self) -> int:
        return self.written + self.buffered

    def add(self, block: Mapping[str, np.ndarray]) -> None:
        n = None
        for name, arr in self.arrays.items():
            x = np.asarray(block[name], dtype=np.float32)
            if x.ndim == 1:
                x = x[None, :]
            x = x.T  # (frames, dims)
            if n is None:
                n = x.shape[0]
            elif x.shape[0] != n:
                raise ValueError(f"feature {name!r} has {x.shape[0]} frames, others {n}")
            if x.shape[1] != arr.shape[1]:
                raise ValueError(f"feature {name!r} has {x.shape[1]} dims, expected {arr.shape[1]}")
            self.buffers[name].append(x)
        self.buffered += n or 0
        if self.buffered >= self.flush_frames:
            self._flush(whole_chunks=True)

    def _flush(self, whole_chunks: bool) -> None:
        if not self.buffered:
            return
        take = (self.buffered // self.chunk) * self.chunk if whole_chunks else self.buffered
        if take == 0:
            return
        for name, arr in self.arrays.items():
            data = np.concatenate(self.buffers[name], axis=0)
            arr.resize((self.written + take, arr.shape[1]))
            arr[self.written : self.written + take] = data[:take]
            rest = data[take:]
            self.buffers[name] = [rest] if rest.shape[0] else []
        self.written += take
        self.buffered -= take

    def end_clip(self) -> tuple[int, int]:
        start, stop = self.clip_start, self.position
        self.clip_start = stop
        return start, stop

    def rollback_clip(self) -> None:
        """Drop what was added for the current clip (it failed half-way)."""
        keep = self.clip_start - self.written
        if keep >= 0:
            for name in self.buffers:
                data = np.concatenate(self.buffers[name], axis=0) if self.buffers[name] else None
                self.buffers[name] = [data[:keep]] if data is not None and keep else []
            self.buffered = keep
        else:  # part of the clip is already on storage: shrink back
            for arr in self.arrays.values():
                arr.resize((self.clip_start, arr.shape[1]))
            self.written = self.clip_start
            self.buffers = {n: [] for n in self.buffers}
            self.buffered = 0

    def close(self) -> tuple[int, int]:
        self._flush(whole_chunks=False)
        return 0, self.written


def read_frames(
    part_uri: str,
    feature: str,
    start: int,
    stop: int,
    storage_options: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Rows ``start:stop`` of ``feature`` in a part, as ``(n_frames, n_dims)`` float32."""
    g = open_part(part_uri, storage_options)
    if feature not in g:
        raise KeyError(
            f"feature {feature!r} is not in {part_uri} (has: {', '.join(sorted(g.array_keys()))})"
        )
    return np.asarray(g[feature][start:stop])

"""The unit of distributed work: a shard, what a worker needs to process it, what it returns.

These small, picklable values travel between the flow and the workers; the plan makes them
(:mod:`audiopipe.ingest.plan`), workers consume them (:mod:`audiopipe.ingest.extract`).

Examples
--------
>>> from audiopipe.catalog import FileEntry
>>> s = Shard("k", (FileEntry("/a.wav", 10, 1.0), FileEntry("/b.wav", 5, 1.0)))
>>> s.n_bytes, [h.key for h in s.halves()]
(15, ['k-a', 'k-b'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audiopipe.audio import DECODER_HOOK_ENV, DecoderHook, load_decoder_hook
from audiopipe.catalog import FileEntry
from audiopipe.store.location import Location

__all__ = [
    "IngestContext",
    "Shard",
    "ShardResult",
    "DecoderHook",
    "DECODER_HOOK_ENV",
    "load_decoder_hook",
]


@dataclass(frozen=True)
class IngestContext:
    """Everything a worker needs to process a shard (small, picklable)."""

    root: str
    dataset: str
    storage_options: dict[str, str]
    run_id: str
    sample_rate: int
    channels: str | int
    block_seconds: float
    recipe: dict[str, Any]
    recipe_hash: str
    limits: dict[str, Any]
    label_columns: tuple[str, ...] = ()
    decoder_hook: str | None = None  # "module:function" called with each uri before decoding
    #: each worker has a spare core: two threads extract the shard's files, whole files each,
    #: written in file order (:mod:`audiopipe.ingest.pool`; the name is that of the scheme it
    #: replaced, which decoded one file ahead in a second thread)
    read_ahead: bool = False
    #: hash of what decides whether a file can be ingested (decode settings, limits, recipe):
    #: recorded with each failure, a file is retried when it changes
    settings_hash: str = ""

    @property
    def location(self) -> Location:
        return Location(self.root, self.dataset, dict(self.storage_options))


@dataclass(frozen=True)
class Shard:
    """A unit of distributed work: a few tens of files; key = content of the work."""

    key: str
    files: tuple[FileEntry, ...]

    @property
    def n_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def halves(self) -> list[Shard]:
        """The two halves of the shard, with keys derived from this one's (deterministic):
        how a shard that kills its worker is narrowed down to the file that does."""
        mid = len(self.files) // 2
        return [
            Shard(key=f"{self.key}-{tag}", files=part)
            for tag, part in (("a", self.files[:mid]), ("b", self.files[mid:]))
        ]


@dataclass
class ShardResult:
    """What a shard produced (counts only: the rows are staged on storage)."""

    key: str
    files_ok: int = 0
    files_failed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    reused: bool = False
    #: changed files whose bytes are those already ingested: ``[uri, size, mtime]``; their
    #: stored rows are kept (with the new size/mtime), nothing is decoded
    same_bytes: list[list[Any]] = field(default_factory=list)
    #: seconds the worker spent per phase (hash, decode, mix, resample, features, stats,
    #: zarr, staging, ...): where a worker's time goes, without a profiler
    timings: dict[str, float] = field(default_factory=dict)
    #: the process that computed the shard (``host:pid``) and when it started (epoch
    #: seconds): with ``seconds``, how busy each worker was and when it waited
    worker: str = ""
    started_at: float = 0.0

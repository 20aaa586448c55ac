"""Where a dataset's outputs live: a local folder or an object-store URL.

Examples
--------
>>> loc = Location("data/out", "demo")
>>> loc.table_uri("clips").endswith("demo/tables/clips")
True
>>> Location("s3://bucket/take#2", "demo").delta_uri("clips")
's3://bucket/take%232/demo/tables/clips'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audiopipe.uri import delta_url, root_problem

if TYPE_CHECKING:
    import fsspec

__all__ = ["Location", "storage_options_from_env"]

TABLES = ("clips", "features", "frames_index", "errors", "runs")


def storage_options_from_env(root: str) -> dict[str, str]:
    """Object-store options for ``root`` from the environment (S3: AWS_* variables).

    ``AWS_ENDPOINT_URL`` points at an S3-compatible server (MinIO, moto, ...).
    """
    if not root.startswith(("s3://", "s3a://")):
        return {}
    opts = {}
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    ):
        if os.environ.get(key):
            opts[key] = os.environ[key]
    opts.setdefault("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    if opts.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        opts["AWS_ALLOW_HTTP"] = "true"
    # delta-rs needs a locking provider or this flag for concurrent-safe S3 writes; audiopipe
    # holds its own locks (audiopipe.store.lock: an ingest, rebuild or vacuum holds the
    # dataset's and does not start while a stage runs, a stage its own and does not start
    # while the dataset's is held), so unsafe rename is acceptable.
    opts["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return opts


def _fsspec_options(opts: Mapping[str, str]) -> dict[str, Any]:
    if not opts:
        return {}
    out: dict[str, Any] = {}
    if "AWS_ACCESS_KEY_ID" in opts:
        out["key"] = opts["AWS_ACCESS_KEY_ID"]
        out["secret"] = opts.get("AWS_SECRET_ACCESS_KEY")
    if "AWS_ENDPOINT_URL" in opts:
        out["client_kwargs"] = {
            "endpoint_url": opts["AWS_ENDPOINT_URL"],
            "region_name": opts.get("AWS_REGION"),
        }
    return out


@dataclass(frozen=True)
class Location:
    """The storage root of one dataset and how to reach it.

    A root or dataset name that Delta Lake cannot hold (:func:`~audiopipe.uri.root_problem`)
    is refused here, before anything is read or written (``ValueError`` naming it).
    """

    root: str
    dataset: str
    storage_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.storage_options:
            object.__setattr__(self, "storage_options", storage_options_from_env(self.root))
        if "://" not in self.root:
            object.__setattr__(self, "root", os.path.abspath(self.root))
        why = root_problem(self.base)
        if why:
            raise ValueError(f"dataset {self.dataset!r} under storage root {self.root!r}: "
                             f"its folder {self.base!r} {why}")

    @property
    def is_remote(self) -> bool:
        return "://" in self.root and not self.root.startswith("file://")

    @property
    def base(self) -> str:
        return f"{self.root.rstrip('/')}/{self.dataset}"

    def join(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def table_uri(self, name: str) -> str:
        """Table ``name``'s folder as fsspec, pyarrow and people read it (not delta-rs)."""
        return self.join("tables", name)

    def delta_uri(self, name: str) -> str:
        """Table ``name``'s folder as delta-rs must be given it (:func:`~audiopipe.uri.delta_url`:
        an object key percent-encoded): every ``DeltaTable``/``write_deltalake`` takes this."""
        return delta_url(self.table_uri(name))

    def frames_uri(self, part: str) -> str:
        return self.join("frames", part)

    def staging_uri(self, *parts: str) -> str:
        return self.join("_staging", *parts)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        import fsspec  # here: ~0.05-0.1 s, and local reads (``audiopipe status``) never need it

        fs, _ = fsspec.core.url_to_fs(self.base, **_fsspec_options(self.storage_options))
        return fs

    @property
    def fsspec_options(self) -> dict[str, Any]:
        return _fsspec_options(self.storage_options)

"""One ingestion of a dataset at a time: an exclusive lock object next to its tables.

The lock is a small JSON file created with exclusive-create semantics (``O_EXCL``
locally). A second run finds it and stops with a message naming the holder; a
lock whose process is gone (same host) is taken over.

Examples
--------
>>> import tempfile
>>> from audiopipe.store.location import Location
>>> loc = Location(tempfile.mkdtemp(), "d")
>>> with dataset_lock(loc):
...     pass
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from audiopipe.store.location import Location

__all__ = ["DatasetLocked", "dataset_lock"]


class DatasetLocked(RuntimeError):
    """Another run holds the dataset."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def dataset_lock(
    loc: Location, what: str = "ingest", wait_s: float = 0.0, name: str = "_lock.json"
) -> Iterator[None]:
    """Hold the dataset's lock (or the lock file ``name``, e.g. one per stage) for the block.

    Waits up to ``wait_s`` seconds for a running holder, then raises
    :class:`DatasetLocked` with who holds it.
    """
    fs = loc.fs
    path = loc.join(name)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time()}
    deadline = time.monotonic() + wait_s
    fs.makedirs(loc.base, exist_ok=True)
    while True:
        try:
            if loc.is_remote:
                with fs.open(path, "xb") as f:  # conditional create on stores that support it
                    f.write(json.dumps(me).encode())
            else:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(fd, "w") as f:
                    json.dump(me, f)
            break
        except (FileExistsError, OSError) as err:
            if not isinstance(err, FileExistsError) and not fs.exists(path):
                raise
            try:
                with fs.open(path, "r") as f:
                    holder = json.load(f)
            except (OSError, ValueError):
                holder = {}
            if (
                holder.get("host") == me["host"]
                and holder.get("pid")
                and not _alive(int(holder["pid"]))
            ):
                fs.rm(path)  # stale: its process is gone
                continue
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise DatasetLocked(
                f"dataset {loc.dataset!r} is locked by another {holder.get('what', 'run')} "
                f"(pid {holder.get('pid')} on {holder.get('host')}, since "
                f"{time.strftime('%H:%M:%S', time.localtime(holder.get('since', 0)))}); "
                f"wait for it to finish, or remove {path} if that run is dead"
            ) from None
    try:
        yield
    finally:
        try:
            fs.rm(path)
        except OSError:
            pass

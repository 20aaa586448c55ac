"""Decoder hooks for fault-injection tests (``AUDIOPIPE_DECODER_HOOK=tests.fault_hooks:NAME``).

They run inside Dask worker processes, before a file is decoded; state they need is kept
in dot-files next to the audio (ignored by discovery: no audio extension).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _log(uri: str) -> None:
    with open(Path(uri).parent / ".decoded.log", "a") as f:
        f.write(f"{os.getpid()} {uri}\n")


def log_decodes(uri: str) -> None:
    """Record which process decoded which file."""
    _log(uri)


def crash_on_poison(uri: str) -> None:
    """A file named ``poison*`` kills the decoding process, every time (a decoder segfault)."""
    _log(uri)
    if Path(uri).name.startswith("poison"):
        os.kill(os.getpid(), signal.SIGKILL)


def kill_worker_once(uri: str) -> None:
    """SIGKILL the worker the first time a file named ``victim*`` is reached (mid-shard)."""
    _log(uri)
    flag = Path(uri).parent / ".killed"
    if Path(uri).name.startswith("victim") and not flag.exists():
        flag.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def block_slow(uri: str) -> None:
    """Files named ``slow*`` wait until ``.release`` exists (at most 60 s); others are logged."""
    _log(uri)
    if Path(uri).name.startswith("slow"):
        release = Path(uri).parent / ".release"
        t0 = time.monotonic()
        while not release.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)


def sleep_1s(uri: str) -> None:
    """Every file takes a second more to decode (keeps a run busy for a while)."""
    _log(uri)
    time.sleep(1.0)


def pause_first(uri: str) -> None:
    """The first file decoded announces itself (``.started``) and waits for ``.release``."""
    _log(uri)
    folder = Path(uri).parent
    started = folder / ".started"
    if started.exists():
        return
    started.write_text(uri)
    t0 = time.monotonic()
    while not (folder / ".release").exists() and time.monotonic() - t0 < 60:
        time.sleep(0.05)


def log_api_url(uri: str) -> None:
    """Record the Prefect API URL the decoding worker process reports to."""
    with open(Path(uri).parent / ".api_urls.log", "a") as f:
        f.write(f"{os.environ.get('PREFECT_API_URL', 'unset')}\n")

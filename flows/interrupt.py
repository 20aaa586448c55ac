"""Ctrl-C, SIGTERM and SIGKILL for the commands that run flows: stop promptly, publish
nothing, leave no process behind.

A flow run starts processes of its own: Prefect's ephemeral API server (a uvicorn process of
~226 MB, when no API is configured) and the Dask LocalCluster's workers. Left alone, a
Ctrl-C unwinds through Prefect and Dask slowly (closing the cluster, reporting the crash to
an API that may be gone: minutes of retries) and a killed run leaves the server running for
good. Here:

- :func:`interruptible` wraps a command's work. The first SIGINT or SIGTERM raises
  ``KeyboardInterrupt`` in the main thread, so the run unwinds (the dataset lock is released,
  the run is recorded as failed, nothing is published); if that has not finished within
  :data:`GRACE_S` seconds, or on a second signal, the command stops itself. Either way it
  prints one line, stops every process it started (terminate, then kill) and exits with
  :data:`EXIT_CODE` (130, the shell's code for Ctrl-C).
- :func:`publishing` marks the publish step: an interrupt that arrives then waits for it
  (seconds), so a run is either published whole or not at all, and the line says which.
- :func:`reap_orphans`: while a command runs, its child processes (pid and start time) are
  recorded in ``$PREFECT_HOME/audiopipe-runs/<pid>.json``. Every command first stops the
  processes recorded by a command that no longer runs (a SIGKILLed run): an orphaned server
  does not outlive the next command.

Examples
--------
>>> import tempfile
>>> reap_orphans(tempfile.mkdtemp())          # nothing recorded: nothing to stop
0
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.server import prefect_home

if TYPE_CHECKING:  # imported where used: every command reaps orphans, few find any
    import psutil

__all__ = ["interruptible", "publishing", "check", "reap_orphans", "GRACE_S", "EXIT_CODE"]

#: seconds the run has to unwind after the first signal before the command stops itself
GRACE_S = 4.0
#: exit status of an interrupted command (128 + SIGINT, what shells report for Ctrl-C)
EXIT_CODE = 130
RUNS_DIR = "audiopipe-runs"

_lock = threading.Lock()
_state: dict[str, Any] = {"interrupted": False, "publishing": False, "published": False,
                          "finished": False}


def _children() -> list[psutil.Process]:
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _stop(procs: list[psutil.Process], timeout: float = 3.0) -> None:
    """Terminate ``procs``, then kill those still alive after ``timeout`` seconds."""
    import psutil

    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=2.0)


def _finish() -> None:
    """Say what happened in one line, stop every child process, exit 130 (no teardown: the
    interpreter's exit hooks would flush logs to an API that may be gone)."""
    with _lock:
        if _state["finished"]:  # another thread is ending the process: wait for it
            threading.Event().wait()
        _state["finished"] = True
    logging.disable(logging.CRITICAL)
    if _state["published"]:
        line = "audiopipe: interrupted: the run had already been published; it is complete"
    else:
        line = "audiopipe: interrupted: the run stopped and nothing was published"
    procs = _children()
    try:
        sys.stdout.flush()
        sys.stderr.write(f"\n{line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _stop(procs, timeout=2.0)
    _record_path().unlink(missing_ok=True)
    os._exit(EXIT_CODE)


def _watchdog() -> None:
    time.sleep(GRACE_S)
    while _state["publishing"]:  # a publish takes seconds: the run is then complete
        time.sleep(0.2)
    _finish()


def _handler(signum: int, frame: Any) -> None:
    if _state["interrupted"]:  # a second signal: stop now
        _finish()
        return
    _state["interrupted"] = True
    logging.disable(logging.CRITICAL)  # no crash reports and tracebacks: one line says it
    threading.Thread(target=_watchdog, name="audiopipe-interrupt", daemon=True).start()
    if _state["publishing"]:
        return  # let the publish finish; the command ends when it does
    # the workers stop now (closing the cluster politely takes many seconds); the run
    # unwinds in this thread: lock released, run recorded as failed
    import psutil  # (imported already: _Recorder started with the command)

    for p in _children():
        if not _is_api_server(p):
            try:
                p.terminate()
            except psutil.Error:
                pass
    raise KeyboardInterrupt


def _is_api_server(p: psutil.Process) -> bool:
    """Prefect's ephemeral API server (kept until the end: the flow reports to it)."""
    import psutil

    try:
        return any("uvicorn" in a or "prefect" in a for a in p.cmdline()[:6])
    except psutil.Error:
        return False


def check() -> None:
    """Raise ``KeyboardInterrupt`` if the command was interrupted (before publishing)."""
    if _state["interrupted"]:
        raise KeyboardInterrupt


@contextmanager
def publishing() -> Iterator[None]:
    """The publish step: an interrupt waits for it to end, and then says the run is complete."""
    check()
    _state["publishing"] = True
    try:
        yield
        _state["published"] = True
    finally:
        _state["publishing"] = False


def _record_path(home: Path | None = None) -> Path:
    return (home or prefect_home()) / RUNS_DIR / f"{os.getpid()}.json"


class _Recorder(threading.Thread):
    """Records this process's children every ``period`` seconds (for :func:`reap_orphans`)."""

    def __init__(self, period: float = 1.0) -> None:
        super().__init__(name="audiopipe-children", daemon=True)
        self.period = period
        self.halt = threading.Event()
        self.path = _record_path()
        import psutil

        me = psutil.Process()
        self.owner = [me.pid, me.create_time()]

    def run(self) -> None:
        import psutil

        last = None
        while not self.halt.is_set():
            kids = []
            for p in _children():
                try:
                    kids.append([p.pid, p.create_time()])
                except psutil.Error:
                    continue
            if kids != last:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(json.dumps({"owner": self.owner, "children": kids}))
                    os.replace(tmp, self.path)
                    last = kids
                except OSError:
                    pass
            self.halt.wait(self.period)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        self.path.unlink(missing_ok=True)


def _same(pid: int, started: float) -> psutil.Process | None:
    """The process ``pid`` if it is the one that started at ``started`` (not a reused pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - started) < 1.0 else None
    except psutil.Error:
        return None


def reap_orphans(home: str | os.PathLike[str] | None = None) -> int:
    """Stop the processes recorded by commands that no longer run; the number stopped."""
    folder = (Path(home) if home is not None else prefect_home()) / RUNS_DIR
    if not folder.is_dir():
        return 0
    stopped = 0
    for f in folder.glob("*.json"):
        try:
            rec = json.loads(f.read_text())
            owner = rec["owner"]
        except (OSError, ValueError, KeyError, TypeError):
            f.unlink(missing_ok=True)
            continue
        if _same(*owner) is not None:
            continue  # its command still runs
        procs = [p for pid, t in rec.get("children", []) if (p := _same(pid, t)) is not None]
        if procs:
            _stop(procs)
            stopped += len(procs)
        f.unlink(missing_ok=True)
    return stopped


@contextmanager
def interruptible() -> Iterator[None]:
    """Run a command's work so that Ctrl-C/SIGTERM stops it promptly and cleanly (see the
    module docstring); in the main thread only (elsewhere, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    recorder = _Recorder()
    recorder.start()
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        _finish()
    finally:
        if _state["interrupted"]:
            _finish()
        for s, h in old.items():
            signal.signal(s, h)
        recorder.stop()

"""A persistent local Prefect API: started once (``audiopipe server start``), reused by every
command, so flows do not pay for Prefect's ephemeral server (~10-20 s per process).

``audiopipe server start`` runs ``prefect server start`` in the background on 127.0.0.1 with
the current ``PREFECT_HOME`` (its database, hence the UI's history of ingests, rebuilds
and stage runs, lives there) and records ``{pid, url}`` in
``$PREFECT_HOME/audiopipe-server.json``. :func:`api_url` tells a command which API to use,
without importing Prefect (an import costs ~2 s):

1. ``PREFECT_API_URL`` in the environment;
2. ``PREFECT_API_URL`` of the active profile in ``$PREFECT_HOME/profiles.toml``;
3. the server recorded by ``audiopipe server start``, if its process is alive.

None means no API is configured: commands that only read or that run stages work
in-process (stage runs are recorded in the dataset's ``runs`` table either way), and a flow
that must run (an ingest with files to process, a rebuild) starts Prefect's ephemeral API.

Examples
--------
>>> import tempfile
>>> status(tempfile.mkdtemp()) is None       # no server recorded in this PREFECT_HOME
True
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["api_url", "use_api", "start", "stop", "status", "prefect_home"]

STATE = "audiopipe-server.json"


def prefect_env_defaults() -> None:
    """Prefect settings for a command of this process, unless set: no telemetry (offline it
    logs errors), warnings only, and room for the ephemeral API to start on a loaded machine."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # the local ephemeral API takes ~10-20 s to start, more on a loaded machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def prefect_home() -> Path:
    """``PREFECT_HOME`` (default ``~/.prefect``)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _profile_url(home: Path) -> str | None:
    path = home / "profiles.toml"
    if not path.is_file():
        return None
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    url = (data.get("profiles") or {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / STATE).read_text())
    except (OSError, ValueError):
        return None


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        import urllib.request  # here: ~0.03 s of every command's start otherwise

        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def api_url(home: str | os.PathLike[str] | None = None) -> str | None:
    """The Prefect API this process should use (see the module docstring), or None."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    h = Path(home) if home is not None else prefect_home()
    url = _profile_url(h)
    if url:
        return url
    st = _read_state(h)
    if st and _alive(int(st.get("pid", 0))):
        return str(st["url"])
    return None


def use_api() -> str | None:
    """Export the configured API (if any) as ``PREFECT_API_URL`` for Prefect and its workers."""
    url = api_url()
    if url:
        os.environ["PREFECT_API_URL"] = url
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(home: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """``{pid, url, healthy}`` of the recorded server, or None when none is running."""
    h = Path(home) if home is not None else prefect_home()
    st = _read_state(h)
    if not st or not _alive(int(st.get("pid", 0))):
        return None
    return {**st, "healthy": _healthy(st["url"])}


def start(
    home: str | os.PathLike[str] | None = None, port: int | None = None, timeout: float = 180.0
) -> dict[str, Any]:
    """Start (or find) the local server; returns ``{pid, url, healthy}`` once it answers."""
    h = Path(home) if home is not None else prefect_home()
    h.mkdir(parents=True, exist_ok=True)
    running = status(h)
    if running and running["healthy"]:
        return running
    port = port or int(os.environ.get("AUDIOPIPE_PREFECT_PORT", 0)) or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        PREFECT_HOME=str(h),
        PREFECT_SERVER_ANALYTICS_ENABLED=env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        DO_NOT_TRACK=env.get("DO_NOT_TRACK", "1"),
    )
    log = open(h / "audiopipe-server.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command
    )
    state = {"pid": proc.pid, "url": url, "port": port, "started": time.time()}
    (h / STATE).write_text(json.dumps(state))
    deadline = time.monotonic() + timeout
    while not _healthy(url, timeout=1.0):
        if proc.poll() is not None:
            (h / STATE).unlink(missing_ok=True)
            raise RuntimeError(
                f"prefect server exited with {proc.returncode}; see {h / 'audiopipe-server.log'}"
            )
        if time.monotonic() > deadline:
            stop(h)
            raise RuntimeError(f"prefect server did not answer at {url} within {timeout:.0f} s")
        time.sleep(0.5)
    return {**state, "healthy": True}


def stop(home: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> bool:
    """Stop the recorded server (SIGTERM, then SIGKILL); True if one was running."""
    h = Path(home) if home is not None else prefect_home()
    st = _read_state(h)
    (h / STATE).unlink(missing_ok=True)
    if not st or not _alive(int(st.get("pid", 0))):
        return False
    pid = int(st["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)  # the server and the workers it started
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    return True

"""How flows size the cluster: workers, and whether each has a core to spare for read-ahead."""

from __future__ import annotations

import pytest

from audiopipe.config import parse_config
from flows import runtime


def _cfg(n_workers: int, threads: int = 1):
    return parse_config(
        {
            "storage": "/tmp/unused",
            "cluster": {"n_workers": n_workers, "threads_per_worker": threads},
            "datasets": {"d": {"source": "/tmp"}},
        }
    )


@pytest.mark.parametrize(
    ("cpus", "n_workers", "threads", "spare"),
    [(2, 1, 1, True), (2, 2, 1, False), (8, 2, 2, True), (8, 3, 2, False), (1, 1, 1, False)],
)
def test_local_cluster_read_ahead_needs_two_cores_per_worker_thread(
    monkeypatch, cpus, n_workers, threads, spare
):
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    monkeypatch.delenv(runtime.READ_AHEAD_ENV, raising=False)
    assert runtime.cluster_shape(_cfg(n_workers, threads)) == (n_workers, spare)


def test_read_ahead_can_be_forced_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setenv(runtime.READ_AHEAD_ENV, "0")
    assert runtime.cluster_shape(_cfg(1)) == (1, False)
    monkeypatch.setenv(runtime.READ_AHEAD_ENV, "on")
    assert runtime.cluster_shape(_cfg(2)) == (2, True)
    monkeypatch.setenv(runtime.READ_AHEAD_ENV, "sometimes")
    with pytest.raises(ValueError, match="AUDIOPIPE_READ_AHEAD must be auto, 1 or 0"):
        runtime.cluster_shape(_cfg(1))


def test_external_workers_report_their_hosts_cores(dask_scheduler, monkeypatch):
    """The session's cluster: 2 single-thread workers on this machine's cores."""
    import os

    monkeypatch.delenv(runtime.READ_AHEAD_ENV, raising=False)
    n, spare = runtime.cluster_shape(_cfg(5), dask_scheduler)
    assert n == 2 and spare == ((os.cpu_count() or 1) >= 4)



@pytest.mark.parametrize(("env", "seen"), [(None, "None"), ("60", "60")])
def test_flows_run_by_a_command_have_no_heartbeat_thread_unless_asked(env, seen):
    """A flow run waits for its heartbeat thread at its end (up to 1 s): runs started by a
    command (the CLI wraps them in ``flow_run_settings``) have none, unless the user set a
    frequency. (In a fresh process: this session's Prefect settings are already wrapped.)"""
    import os
    import subprocess
    import sys

    code = (
        "from prefect.settings import get_current_settings as g\n"
        "from flows.runtime import flow_run_settings\n"
        "print(g().flows.heartbeat_frequency)\n"
        "with flow_run_settings():\n"
        "    print(g().flows.heartbeat_frequency)\n"
    )
    environ = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    if env is not None:
        environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = env
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    before, inside = out.stdout.split()[-2:]
    assert before != "None"  # Prefect 3.9 sends them by default (every 180 s)
    assert inside == seen

"""Ctrl-C and kill with real processes: a run stops promptly, publishes nothing, says so in
one line, exits 130 and leaves no process behind; a SIGKILLed run's processes are stopped
by the next command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.store.location import Location
from audiopipe.store.lock import holder
from flows.interrupt import EXIT_CODE, RUNS_DIR, reap_orphans
from tests.audio_fixtures import sine, write
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # (unless given)
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(ROOT),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **extra)
    return env


def _alive(procs: list[psutil.Process]) -> list[str]:
    """The processes still running (a zombie has exited: it only waits to be reaped)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
        except psutil.Error:
            continue
    return out


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_ctrl_c_during_extraction_stops_publishes_nothing_and_leaves_no_process(
    tmp_path, prefect_api
):
    """The issue's case: SIGINT to ``audiopipe ingest`` (its own LocalCluster) while a worker
    extracts. Before: the run went on and published. The command reports to the session's
    Prefect API (its own ephemeral one would add ~20-100 s of startup; that server is a child
    like the workers, stopped the same way: see the stand-in tests below)."""
    from prefect.settings import PREFECT_API_URL

    corpus = tmp_path / "corpus"
    write(corpus / "a_base.wav", sine(dur=1.0), 22050)
    cfg_path = write_config(tmp_path, {"t": {"source": str(corpus), "shard": {"max_files": 1}}})
    cfg = load_config(cfg_path)
    cfg_path.write_text(cfg_path.read_text() + "cluster: {n_workers: 1, memory_limit: 2GiB}\n")
    plan = plan_ingest(cfg, "t")  # a published state to compare with
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    for i in range(4):
        write(corpus / f"new_{i}.wav", sine(f=300 + 50 * i, dur=1.0), 22050)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "--config", str(cfg_path), "ingest", "t", "-q"],
        cwd=ROOT, env=_env(tmp_path, AUDIOPIPE_DECODER_HOOK="tests.fault_hooks:pause_first",
                           PREFECT_API_URL=PREFECT_API_URL.value()),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        # a worker holds the first new file: extraction is under way (Prefect API started)
        _wait_for((corpus / ".started").exists, 300, "extraction to start", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        cmds = [" ".join(c.cmdline()) for c in children]
        assert any("multiprocessing" in c for c in cmds), cmds  # the Dask worker
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C to the command only: children are ours
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_CODE, err
    assert took < 15, f"took {took:.1f} s to stop"
    lines = [x for x in err.splitlines() if "interrupted" in x]
    assert lines == ["audiopipe: interrupted: the run stopped and nothing was published"], err
    assert "Traceback" not in err, err
    time.sleep(0.5)
    assert _alive(children) == []
    # nothing was published: the clips are those of the first run, the run is recorded failed
    ds = audiopipe.open_dataset(cfg.storage_root, "t")
    assert ds.table("clips").to_pandas().uri.tolist() == [str(corpus / "a_base.wav")]
    runs = ds.table("runs").to_pandas().sort_values("finished")
    assert runs.status.tolist() == ["ok", "failed"] and "interrupted" in runs.message.iloc[-1]
    assert holder(Location(cfg.storage_root, "t")) is None, "the lock is released"
    assert not list((tmp_path / "prefect-home" / RUNS_DIR).glob("*.json"))


#: a command's stand-in: the same interruptible() and publishing() the CLI uses, a child
#: process (what Prefect's server or a Dask worker is), and work that would go on for long
SCRIPT = textwrap.dedent("""
    import subprocess, sys, time
    from flows.interrupt import interruptible, publishing
    mode = sys.argv[1]
    with interruptible():
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(300)"])
        print(child.pid, flush=True)
        if mode == "publishing":
            with publishing():
                print("publishing", flush=True)
                time.sleep(2)  # the interrupt arrives here: the publish must end first
            print("published", flush=True)
            time.sleep(300)
        elif mode == "swallow":  # code that swallows KeyboardInterrupt: the grace period ends it
            while True:
                try:
                    time.sleep(300)
                except KeyboardInterrupt:
                    pass
        else:
            time.sleep(300)
""")


def _script(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    return proc, child


@pytest.mark.parametrize("target,mode,within,line", [
    ("process", "work", 3, "the run stopped and nothing was published"),
    ("group", "work", 3, "the run stopped and nothing was published"),
    ("process", "swallow", 8, "the run stopped and nothing was published"),
    ("group", "publishing", 8, "the run had already been published; it is complete"),
])  # fmt: skip
def test_interrupt_ends_in_one_line_exit_130_and_no_child(tmp_path, target, mode, within, line):
    proc, child = _script(tmp_path, mode)
    try:
        if mode == "publishing":
            assert proc.stdout.readline().strip() == "publishing"
        time.sleep(0.3)
        t0 = time.monotonic()
        if target == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_CODE, err
    assert took < within
    assert err.strip().splitlines() == [f"audiopipe: interrupted: {line}"]
    assert ("published" in out.split()) is (mode == "publishing")
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_killed_commands_processes_are_stopped_by_the_next_command(tmp_path):
    """SIGKILL leaves no chance to clean up: the record of the command's children lets the
    next command (any of them) stop what it left, e.g. an ephemeral Prefect API server."""
    proc, child = _script(tmp_path, "work")
    records = tmp_path / "prefect-home" / RUNS_DIR
    _wait_for(lambda: any(str(child) in f.read_text() for f in records.glob("*.json")), 20,
              "the children to be recorded")
    assert reap_orphans(tmp_path / "prefect-home") == 0  # its command still runs: left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    assert psutil.pid_exists(child), "the orphan outlives its killed command"
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(tmp_path / "none.yaml"),
                          "validate"], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert "stopped 1 process(es) left running by a killed command" in out.stderr
    time.sleep(0.3)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not list(records.glob("*.json"))

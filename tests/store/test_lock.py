"""The dataset lock: exclusive, names its holder, and taking over a dead holder is race-free.

The race trials start several processes at once (forked, released by one barrier) against
a lock left behind by a dead process. Each process that gets the lock leaves a mark, checks
that no other process holds it at the same time, and removes its mark when done. The old
remove-then-create takeover let two processes hold the lock in 10 of 30 such trials.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest

from audiopipe.store.location import Location
from audiopipe.store.lock import LOCK_DIR, DatasetLocked, dataset_lock, holder

DEAD_PID = 2**22 + 12345  # above the default pid_max: never a live process


def _dead_ticket(loc: Location, n: int = 7) -> None:
    folder = loc.join(LOCK_DIR)
    loc.fs.makedirs(folder, exist_ok=True)
    body = json.dumps({"pid": DEAD_PID, "host": socket.gethostname(), "what": "ingest",
                       "since": time.time()})
    with loc.fs.open(f"{folder}/{n:012d}.json", "w") as f:
        f.write(body)


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    loc = Location(str(tmp_path), "d")
    with dataset_lock(loc, "ingest"):
        assert holder(loc)["pid"] == os.getpid()
        with pytest.raises(DatasetLocked, match="locked by another ingest"):
            with dataset_lock(loc, "rebuild"):
                pass
    assert holder(loc) is None
    with dataset_lock(loc):  # released
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    loc = Location(str(tmp_path), "d")
    _dead_ticket(loc)
    assert holder(loc) is None
    with dataset_lock(loc):
        assert holder(loc)["pid"] == os.getpid()


def test_unreadable_ticket_blocks_only_while_fresh(tmp_path):
    """An empty ticket is a writer that died mid-create (or one still writing): it blocks
    for a moment, never for ever (an empty legacy lock file said 'pid None on None' forever)."""
    loc = Location(str(tmp_path), "d")
    folder = Path(loc.join(LOCK_DIR))
    folder.mkdir(parents=True)
    t = folder / f"{3:012d}.json"
    t.write_bytes(b"")
    with pytest.raises(DatasetLocked, match="starting"):
        with dataset_lock(loc):
            pass
    old = time.time() - 3600
    os.utime(t, (old, old))
    with dataset_lock(loc):
        pass


def test_legacy_lock_file_is_ignored(tmp_path):
    loc = Location(str(tmp_path), "d")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "_lock.json").write_text("")
    with dataset_lock(loc):
        pass


def test_old_tickets_are_pruned(tmp_path):
    loc = Location(str(tmp_path), "d")
    for _ in range(20):
        with dataset_lock(loc):
            pass
    assert len(list(Path(loc.join(LOCK_DIR)).iterdir())) <= 2 * (8 + 3)


def _contender(roots: list[str], start, out, marks: str) -> None:
    """One long-lived process: for each trial, wait for the start, try the lock, report."""
    for root in roots:
        start.wait()
        loc = Location(root, "d")
        try:
            with dataset_lock(loc, wait_s=0.0):
                mine = Path(marks) / str(os.getpid())
                others = [p.name for p in Path(marks).iterdir()]
                mine.touch()
                time.sleep(0.05)
                others += [p.name for p in Path(marks).iterdir() if p != mine]
                mine.unlink()
                out.put(("held", sorted(set(others))))
        except DatasetLocked:
            out.put(("locked", []))
        except Exception as err:  # noqa: BLE001 - reported to the test
            out.put(("error", [repr(err)]))


def _trials(roots: list[str], n_procs: int, tmp_path: Path) -> list[str]:
    """Race ``n_procs`` processes for a dead process's lock once per root."""
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(n_procs + 1), ctx.Queue()
    marks = tmp_path / "marks"
    marks.mkdir()
    procs = [ctx.Process(target=_contender, args=(roots, start, out, str(marks)))
             for _ in range(n_procs)]
    for p in procs:
        p.start()
    problems = []
    try:
        for trial, root in enumerate(roots):
            _dead_ticket(Location(root, "d"))
            start.wait(timeout=60)
            res = [out.get(timeout=60) for _ in procs]
            # processes may hold the lock one after another (a late one finds it released),
            # never two at once: no holder may see another's mark
            held = [r for r in res if r[0] == "held"]
            if [r for r in res if r[0] == "error"] or not held or any(r[1] for r in held):
                problems.append(f"trial {trial}: {res}")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    return problems


def test_stale_takeover_race_local(tmp_path):
    problems = _trials([str(tmp_path / f"out{t}") for t in range(200)], 3, tmp_path)
    assert problems == [], f"{len(problems)} of 200 trials: {problems[:3]}"


def test_stale_takeover_race_s3(tmp_path, s3):
    problems = _trials([f"s3://audio/lock{t}" for t in range(50)], 3, tmp_path)
    assert problems == [], f"{len(problems)} of 50 trials: {problems[:3]}"


def test_a_stage_refused_by_a_lock_from_another_host_says_how_to_clear_it(tmp_path):
    """A stage refused by a dataset lock held (or left by a run that died) on another host
    said "run it again when that has finished" and the time of day only: a day-old lock
    looked current and nothing said how to clear it. It names the ticket to remove and the
    date."""
    from audiopipe.store.lock import stage_lock

    loc = Location(str(tmp_path), "d")
    folder = loc.join(LOCK_DIR)
    loc.fs.makedirs(folder, exist_ok=True)
    day_old = time.time() - 86400
    body = json.dumps({"pid": 4242, "host": "worker-7", "what": "ingest", "since": day_old})
    ticket = f"{folder}/{1:012d}.json"
    with loc.fs.open(ticket, "w") as f:
        f.write(body)
    with pytest.raises(DatasetLocked) as e, stage_lock(loc, "segment"):
        pass
    msg = str(e.value)
    assert f"remove {ticket}" in msg and "worker-7" in msg
    assert time.strftime("%Y-%m-%d", time.localtime(day_old)) in msg


def test_a_failure_while_checking_for_running_stages_releases_the_lock(tmp_path, monkeypatch):
    """A vacuum takes the dataset lock, then checks that no stage runs: a storage error while
    reading a stage's lock left the ticket held by the live process, so every ingest, stage
    and vacuum after it was refused until that process exited (review 8)."""
    import audiopipe.store.lock as L

    loc = Location(str(tmp_path), "d")

    def broken(loc_, fence=None):
        raise OSError("storage error reading a stage lock")

    monkeypatch.setattr(L, "stages_running", broken)
    with pytest.raises(OSError, match="storage error"), dataset_lock(loc, "vacuum", no_stages=True):
        pass
    monkeypatch.undo()
    assert holder(loc) is None
    with dataset_lock(loc, "ingest"):
        assert holder(loc)["what"] == "ingest"


def test_a_lock_that_waits_for_stages_takes_the_dataset_once_they_end(tmp_path):
    """An ingest waits a little for a running stage (``stages_wait_s``, not the lock's own
    ``wait_s``): a stage that ends meanwhile lets it through; one that does not is named
    (stage, pid, host, date) and the dataset's lock is left free."""
    import threading

    from tests.store._stages import stage_running

    loc = Location(str(tmp_path), "d")
    with stage_running(loc, "beats") as done:
        with pytest.raises(DatasetLocked) as e, dataset_lock(loc, "ingest", no_stages=True,
                                                             stages_wait_s=0.3):
            pass
        msg = str(e.value)
        assert "stage runs are running: beats" in msg and "no ingest while a stage runs" in msg
        assert f"pid {os.getpid()} on {socket.gethostname()}" in msg
        assert time.strftime("%Y-%m-%d") in msg
        assert holder(loc) is None
        threading.Timer(0.5, done.set).start()  # the stage ends while the ingest waits
        with dataset_lock(loc, "ingest", no_stages=True, stages_wait_s=30):
            assert holder(loc)["what"] == "ingest"


def test_a_release_that_fails_once_is_tried_again_and_one_that_keeps_failing_warns(
    tmp_path, monkeypatch
):
    """A failed write of the release mark was swallowed: the ticket stayed held while the
    process lived, refusing every ingest of a notebook's or a server's dataset (review 9)."""
    import audiopipe.store.lock as L

    loc = Location(str(tmp_path), "d")
    real, fails = L._create, {"n": 1}

    def flaky(fs, path, body, remote):
        if path.endswith(".released") and fails["n"] > 0:
            fails["n"] -= 1
            raise OSError("storage blip")
        return real(fs, path, body, remote)

    monkeypatch.setattr(L, "_create", flaky)
    with dataset_lock(loc, "ingest"):
        pass
    assert holder(loc) is None  # tried again
    fails["n"] = 99
    with pytest.warns(RuntimeWarning, match="could not release the lock ticket"):
        with dataset_lock(loc, "ingest"):
            pass
    assert holder(loc) is not None


# -- leases: a holder on another host is judged by its heartbeat (audiopipe.store.lease) --

@pytest.fixture
def short_lease(monkeypatch):
    """Beats every 0.2 s and a 3 s lease (120 s and 10 s outside tests)."""
    import audiopipe.store.lease as lease

    monkeypatch.setattr(lease, "BEAT_S", 0.2)
    monkeypatch.setattr(lease, "LEASE_S", 3.0)
    return lease


def _remote_ticket(loc: Location, name: str = LOCK_DIR, n: int = 1, lease_s: float | None = 3.0,
                   pid: int = 4242) -> str:
    """A ticket of pid ``pid`` on host "elsewhere" (with a lease, unless None), just written."""
    folder = loc.join(name)
    loc.fs.makedirs(folder, exist_ok=True)
    who = {"pid": pid, "host": "elsewhere", "what": "ingest", "since": time.time()}
    if lease_s is not None:
        who["lease_s"] = lease_s
    ticket = f"{folder}/{n:012d}.json"
    loc.fs.pipe_file(ticket, json.dumps(who).encode())
    return ticket


def _root(request, tmp_path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3")
        return "s3://audio/lease"
    return str(tmp_path)


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    return _root(request, tmp_path)


def test_a_dead_holder_on_another_host_is_taken_over_once_its_heartbeat_is_a_lease_old(
    root, short_lease
):
    """A ticket of another host was never taken over: every run was refused until a person
    removed the folder. It is held while its beat is younger than the lease - however old
    the ticket - and taken over once the beat is a lease old; the refusal says so."""
    loc = Location(root, "d")
    ticket = _remote_ticket(loc)
    time.sleep(2.0)
    loc.fs.pipe_file(ticket.replace(".json", ".beat"), b"1")  # the holder still beats
    time.sleep(1.5)  # the ticket is 3.5 s old, its beat 1.5 s: held
    with pytest.raises(DatasetLocked) as e, dataset_lock(loc):
        pass
    msg = str(e.value)
    assert "pid 4242 on elsewhere" in msg and "heartbeat" in msg
    assert "taken over once its heartbeat is 3 s old" in msg
    assert holder(loc)["host"] == "elsewhere"
    time.sleep(3.0)  # the beat stopped 4.5 s ago (S3 keeps whole seconds: at least 3.5)
    assert holder(loc) is None
    with dataset_lock(loc, "rebuild"):
        assert holder(loc)["what"] == "rebuild" and holder(loc)["pid"] == os.getpid()


def test_a_ticket_of_another_host_without_heartbeat_waits_for_the_generous_bound(
    tmp_path, short_lease, monkeypatch
):
    """A ticket of an audiopipe of before leases (no ``lease_s``) is not taken over by the
    lease (its holder may be alive and does not beat): only once older than
    ``LEGACY_STALE_S``; until then its error names the ticket to remove."""
    loc = Location(str(tmp_path), "d")
    ticket = _remote_ticket(loc, lease_s=None)
    old = time.time() - 600
    os.utime(ticket, (old, old))  # ten minutes old: far above the lease
    with pytest.raises(DatasetLocked) as e, dataset_lock(loc):
        pass
    assert f"remove {ticket}" in str(e.value) and "no heartbeat" in str(e.value)
    monkeypatch.setattr(short_lease, "LEGACY_STALE_S", 300.0)
    with dataset_lock(loc):
        assert holder(loc)["pid"] == os.getpid()


def _hold_elsewhere(root: str, taken) -> None:
    """A child process: hold the dataset's lock as a process of host "elsewhere" till killed
    (it waits on no shared Event: one killed while waiting would hang the next ``set``)."""
    socket.gethostname = lambda: "elsewhere"
    with dataset_lock(Location(root, "d"), "ingest"):
        taken.set()
        time.sleep(60)


def test_a_live_holder_on_another_host_keeps_its_lease_until_it_is_killed(tmp_path, short_lease):
    """A process of another host holding the lock for several lease periods keeps it by
    beating; killed, its lock is taken over once its last beat is a lease old (before: a
    ticket of another host blocked for ever)."""
    import signal

    loc = Location(str(tmp_path), "d")
    ctx = mp.get_context("fork")  # (the child keeps the short lease)
    taken = ctx.Event()
    p = ctx.Process(target=_hold_elsewhere, args=(str(tmp_path), taken))
    p.start()
    try:
        assert taken.wait(30)
        beat = Path(loc.join(LOCK_DIR)) / f"{1:012d}.beat"
        beats = set()
        for _ in range(10):  # 3 lease periods
            with pytest.raises(DatasetLocked, match=f"pid {p.pid} on elsewhere"):
                with dataset_lock(loc):
                    pass
            if beat.exists():
                beats.add(beat.stat().st_mtime_ns)
            time.sleep(1.0)
        assert len(beats) >= 5, "the holder's beat did not advance"
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        with pytest.raises(DatasetLocked, match="heartbeat 0 s ago"), dataset_lock(loc):
            pass
        with dataset_lock(loc, wait_s=30):  # (once its beat is 3 s old)
            assert holder(loc)["pid"] == os.getpid()
    finally:
        if p.is_alive():
            p.kill()
        p.join(10)


def test_two_threads_hold_two_stage_locks_each_with_its_own_live_lease(tmp_path, short_lease):
    """Two stages of one process at once: each lock beats on its own for several lease
    periods, and each lease is held throughout."""
    import threading

    from audiopipe.store.lock import STAGE_LOCK_PREFIX, stage_lock

    loc = Location(str(tmp_path), "d")
    loc.fs.makedirs(loc.base, exist_ok=True)
    go, seen, errors = threading.Event(), {}, []

    def run(stage: str) -> None:
        try:
            with stage_lock(loc, stage) as lease:
                beat = Path(lease.beat)
                mtimes = set()
                while not go.is_set():
                    assert lease.held()
                    if beat.exists():
                        mtimes.add(beat.stat().st_mtime_ns)
                    time.sleep(0.1)
                seen[stage] = (beat.parent.name, len(mtimes), lease.held())
        except BaseException as err:  # noqa: BLE001 - reported to the test
            errors.append(err)

    threads = [threading.Thread(target=run, args=(s,)) for s in ("beats", "segment")]
    for t in threads:
        t.start()
    time.sleep(7.0)  # more than two leases
    go.set()
    for t in threads:
        t.join(30)
    assert errors == []
    for s in ("beats", "segment"):
        folder, n_beats, held = seen[s]
        assert folder == f"{STAGE_LOCK_PREFIX}{s}" and held and n_beats >= 10


def test_a_holder_whose_beat_fails_is_warned_and_no_longer_holds_its_lease(
    tmp_path, short_lease
):
    """The holder must not keep working on a lease it lost: its beat failing for half a lease
    warns naming the ticket, and ``held`` turns false (``check`` raises); a later ticket (the
    lock taken over) does the same."""
    from audiopipe.store.lease import LeaseLost

    loc = Location(str(tmp_path), "d")
    with pytest.warns(RuntimeWarning, match=r"lock ticket .*000000000001\.json .*heartbeat"):
        with dataset_lock(loc) as lease:
            os.mkdir(lease.beat)  # (a beat cannot be written over a folder)
            time.sleep(2.5)
            assert not lease.held()
            with pytest.raises(LeaseLost, match="000000000001.json is no longer held"):
                lease.check()
    with dataset_lock(loc) as lease:
        assert lease.held()
        Path(loc.join(LOCK_DIR), f"{3:012d}.json").write_text("{}")  # taken over
        assert not lease.held()
        with pytest.raises(LeaseLost, match="taken over"):
            lease.check()


def _local_lease_ticket(loc: Location, pid: int, beat_age: float, **identity) -> None:
    """A ticket of this hostname with a lease, pid ``pid`` and ``identity`` (boot_id, pid_ns,
    start), whose ticket and beat were last written ``beat_age`` s ago."""
    folder = Path(loc.join(LOCK_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    who = {"pid": pid, "host": socket.gethostname(), "what": "ingest",
           "since": time.time() - beat_age, "lease_s": 3.0, **identity}
    then = time.time() - beat_age
    for name, body in ((f"{1:012d}.json", json.dumps(who)), (f"{1:012d}.beat", "1")):
        (folder / name).write_text(body)
        os.utime(folder / name, (then, then))


def test_a_ticket_of_this_hostname_trusts_its_pid_only_on_this_boot_and_pid_namespace(
    tmp_path, short_lease
):
    """A ticket of this hostname was judged by its pid alone: a container restarted with the
    same hostname and a reused pid (here: ours) never took over its predecessor's lock whose
    beat is an hour old, and a container sharing the hostname but not the pid namespace took
    over a live holder (its pid invisible here) at once. Now the pid is trusted only on the
    same boot and pid namespace with the same start time; else the lease judges."""
    # (a) our pid, nothing recorded (or another pid namespace), beat an hour old: stale
    loc = Location(str(tmp_path / "a"), "d")
    _local_lease_ticket(loc, os.getpid(), 3600.0)
    assert holder(loc) is None
    with dataset_lock(loc) as lease:  # (Linux: what makes our pid meaningful is recorded)
        me = {k: json.loads(Path(lease.ticket).read_text())[k]
              for k in ("boot_id", "pid_ns", "start")}
    assert all(me.values()), me
    loc = Location(str(tmp_path / "a_ns"), "d")
    _local_lease_ticket(loc, os.getpid(), 3600.0, **{**me, "pid_ns": "pid:[1]"})
    assert holder(loc) is None
    # ... even on this boot and namespace: a beat older than the lease is stale
    loc = Location(str(tmp_path / "a_same"), "d")
    _local_lease_ticket(loc, os.getpid(), 3600.0, **me)
    assert holder(loc) is None
    # (b) a pid not alive here, in another pid namespace, beating 0 s ago: held by its lease
    loc = Location(str(tmp_path / "b"), "d")
    _local_lease_ticket(loc, DEAD_PID, 0.0, **{**me, "pid_ns": "pid:[1]"})
    with pytest.raises(DatasetLocked, match=f"pid {DEAD_PID} .*heartbeat"), dataset_lock(loc):
        pass
    assert holder(loc)["judged_by"] == "lease"
    # on this boot and namespace the pid decides at once: dead, or alive but another process
    for pid, ident in ((DEAD_PID, me), (os.getpid(), {**me, "start": me["start"] - 1})):
        loc = Location(str(tmp_path / f"c{pid}"), "d")
        _local_lease_ticket(loc, pid, 0.0, **ident)
        assert holder(loc) is None
    loc = Location(str(tmp_path / "live"), "d")
    _local_lease_ticket(loc, os.getpid(), 0.0, **me)
    assert holder(loc)["judged_by"] == "pid"


def test_without_proc_on_either_side_a_dead_pid_of_this_hostname_frees_the_lock_at_once(
    tmp_path, short_lease, monkeypatch
):
    """Where neither the writer nor the reader can read /proc (not Linux), a ticket records
    ``boot_id: None``: its pid is judged as before (a killed run's lock free at once), not
    by a lease a person would wait out; a ticket of an unknown boot still waits its lease."""
    import audiopipe.store.lock as L

    ident = {"boot_id": None, "pid_ns": None, "start": None}
    loc = Location(str(tmp_path / "no_proc"), "d")
    _local_lease_ticket(loc, DEAD_PID, 0.0, **ident)
    assert holder(loc)["judged_by"] == "lease"  # (this reader has /proc: judged by lease)
    monkeypatch.setattr(L, "_boot_id", lambda: None)
    monkeypatch.setattr(L, "_pid_ns", lambda: None)
    assert holder(loc) is None
    with dataset_lock(loc):
        assert holder(loc)["pid"] == os.getpid()


def test_a_slow_clock_probe_or_a_clock_step_does_not_age_a_live_holder(tmp_path, monkeypatch):
    """The storage's now was this host's wall clock plus ``m - (t0 + t1) / 2``: a clock probe
    landing late in a slow write aged every beat by half the write, and a step of the wall
    clock after the measurement shifted every age by the step; either way a holder beating
    every 0.2 s was judged dead. A probe write slower than ``CLOCK_WRITE_MAX_S`` is not used
    at all (the age is unknown: the holder is alive)."""
    import fsspec.implementations.local as fl

    import audiopipe.store.lease as lease

    monkeypatch.setattr(lease, "BEAT_S", 0.2)
    monkeypatch.setattr(lease, "LEASE_S", 1.5)
    real_pipe, real_time, delay = fl.LocalFileSystem.pipe_file, time.time, [0.0]

    def slow_probe(self, path, value, *a, **k):
        if str(path).endswith("/_clock"):
            time.sleep(delay[0])  # (a put retried: the object lands at the end of the call)
        return real_pipe(self, path, value, *a, **k)

    loc = Location(str(tmp_path), "d")
    with dataset_lock(loc):
        monkeypatch.setattr(socket, "gethostname", lambda: "other-host")
        monkeypatch.setattr(fl.LocalFileSystem, "pipe_file", slow_probe)
        delay[0] = 4.0  # (half of it is more than the lease)
        who = holder(loc)
        assert who is not None and who["beat_age_s"] < 1.5
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda: real_time() + 300.0)  # (NTP steps the clock)
            who = holder(loc)
            assert who is not None and who["beat_age_s"] < 1.5
        monkeypatch.setattr(lease, "CLOCK_WRITE_MAX_S", 1.0)
        lease._offsets.clear()
        who = holder(loc)
        assert who is not None and who["beat_age_s"] is None


def test_a_stage_judged_dead_by_a_vacuum_elsewhere_refuses_its_commit(tmp_path, monkeypatch):
    """A stage's ``lease.check()`` (before its ``runs`` row) looked only for a later ticket in
    its own lock folder and at ``time.monotonic``: a host suspended for 300 s (its beat 300 s
    old as others see it; CLOCK_MONOTONIC did not advance) let a vacuum on another host judge
    the stage dead and run, and the stage then committed under it. Now the vacuum takes the
    dead stage's lock over (and releases it) and the stage's check names it; the suspend
    itself is seen on CLOCK_BOOTTIME. A live stage is neither fenced nor lost."""
    import audiopipe.store.lease as lease
    from audiopipe.store.lease import LeaseLost
    from audiopipe.store.lock import stage_lock, stages_running

    monkeypatch.setattr(lease, "BEAT_S", 1000.0)  # (no beat during the test)
    monkeypatch.setattr(lease, "LEASE_S", 120.0)
    loc = Location(str(tmp_path), "d")
    loc.fs.makedirs(loc.base, exist_ok=True)
    real_hostname = socket.gethostname()
    with stage_lock(loc, "classify") as stage_lease:
        monkeypatch.setattr(socket, "gethostname", lambda: "other-host")
        with pytest.raises(DatasetLocked, match="stage runs are running: classify"):
            with dataset_lock(loc, "vacuum", no_stages=True, stages_wait_s=0):
                pass
        assert stage_lease.held()
        then = time.time() - 300  # (the stage's host was suspended 300 s)
        os.utime(stage_lease.ticket, (then, then))
        with dataset_lock(loc, "vacuum", no_stages=True, stages_wait_s=0):
            assert stages_running(loc) == {}
            with pytest.raises(LeaseLost, match=r"classify.*taken over .*by vacuum, which "
                                                r"judged this stage's run dead"):
                stage_lease.check()
        monkeypatch.setattr(socket, "gethostname", lambda: real_hostname)
    with stage_lock(loc, "classify") as again:  # (the fence was released: a new run starts)
        assert again.held()


def test_a_suspended_holder_sees_its_lease_lost_on_the_boot_clock(tmp_path, monkeypatch):
    """``held()`` measured how late the beat was on ``time.monotonic``, which does not advance
    while the host is suspended: a holder resumed after longer than the lease (its lock
    takeable by then) still thought it held it. Simulated: CLOCK_BOOTTIME runs 300 s ahead."""
    import audiopipe.store.lease as lease
    from audiopipe.store.lease import LeaseLost

    monkeypatch.setattr(lease, "BEAT_S", 1000.0)
    real = time.clock_gettime
    loc = Location(str(tmp_path), "d")
    with dataset_lock(loc) as held:
        assert held.held()
        monkeypatch.setattr(time, "clock_gettime", lambda clk: real(clk) + (
            300.0 if clk == time.CLOCK_BOOTTIME else 0.0))
        with pytest.raises(LeaseLost, match=r"000000000001\.json .*heartbeat .*could not be "
                                            r"written for 3\d\d"):
            held.check()


def test_a_beat_late_once_but_written_before_anyone_could_take_over_holds_again(
    tmp_path, monkeypatch
):
    """One beat write slower than half the lease lost the lease for good (the flag stuck and
    the beat thread stopped), though nobody could take the lock over until the beat was a
    lease old: a run of hours was refused at its commit after a stall it survived. Now a beat
    written within ``RECOVER_S`` of a lease of the last one holds it again (with a warning);
    a stall longer than that stays lost."""
    import fsspec.implementations.local as fl

    import audiopipe.store.lease as lease
    from audiopipe.store.lease import LeaseLost

    monkeypatch.setattr(lease, "BEAT_S", 0.2)
    monkeypatch.setattr(lease, "LEASE_S", 6.0)  # (lost after 3 s late, held again under 4.5)
    real_pipe, stall = fl.LocalFileSystem.pipe_file, []

    def stalling(self, path, value, *a, **k):
        if str(path).endswith(".beat") and stall:
            time.sleep(stall.pop())  # (a put that hangs, then lands)
        return real_pipe(self, path, value, *a, **k)

    monkeypatch.setattr(fl.LocalFileSystem, "pipe_file", stalling)
    for seconds, regained in ((3.6, True), (5.0, False)):
        loc = Location(str(tmp_path / str(seconds)), "d")
        with pytest.warns(RuntimeWarning) as warned:
            with dataset_lock(loc) as held:
                stall.append(seconds)
                t0 = time.monotonic()
                while held.held() and time.monotonic() - t0 < 10:
                    time.sleep(0.05)
                assert not held.held()  # (during the stall)
                time.sleep(seconds - (time.monotonic() - t0) + 1.0)  # (it landed, then beat)
                assert held.held() is regained
                if regained:
                    held.check()
                else:
                    with pytest.raises(LeaseLost, match="heartbeat"):
                        held.check()
        said = [str(w.message) for w in warned]
        assert sum("no longer holds it" in m for m in said) == 1
        assert sum("held again" in m for m in said) == int(regained), said

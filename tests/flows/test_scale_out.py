"""Beyond one machine: an external Dask cluster, S3 storage, faults, concurrent runs.

The external cluster is a real ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1, started here (``allowed-failures`` 0 so that a killed worker surfaces at once
as ``KilledWorker`` and the flow's shard splitting is what recovers). Fault hooks live in
``tests/fault_hooks.py`` and reach the workers through ``AUDIOPIPE_DECODER_HOOK``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

import audiopipe
from audiopipe.store.location import Location
from audiopipe.store.lock import holder
from tests.audio_fixtures import sine, write

ROOT = Path(__file__).resolve().parents[2]
SMALL_RECIPE = {
    "n_fft": 1024,
    "hop_length": 256,
    "compute": {"mfcc": {"n_mfcc": 13}, "rms": {}, "spectral_centroid": {}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def external_cluster(tmp_path_factory):
    """A real scheduler + 2 worker processes (each under a nanny that restarts it)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask-logs")
    env = _env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    procs: list[subprocess.Popen] = []
    try:
        cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        procs.append(
            subprocess.Popen(
                [*cmd, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                env=env,
                cwd=ROOT,
                stdout=open(logs / "scheduler.log", "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        "2GiB",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"ext-{i}",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=open(logs / f"worker{i}.log", "w"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as c:
                    c.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        _stop(procs)


def _worker_pids(address: str) -> set[int]:
    from distributed import Client

    with Client(address, timeout=10) as c:
        return set(c.run(os.getpid).values())


def _corpus(folder: Path, names: list[str]) -> Path:
    """Short tones whose content (hence clip id) differs with the file name."""
    for n in names:
        h = zlib.crc32(n.encode())
        write(folder / n, sine(f=150 + h % 3000, dur=0.3 + (h >> 12) % 300 / 1000), 22050)
    return folder


def _config(
    folder: Path,
    corpus: Path,
    storage: str | None = None,
    scheduler: str | None = None,
    max_files: int = 4,
    min_shards: int = 1,
) -> Path:
    cfg: dict = {
        "storage": storage or str(folder / "out"),
        "datasets": {
            "t": {
                "source": str(corpus),
                "sample_rate": 22050,
                "features": SMALL_RECIPE,
                "shard": {"max_files": max_files, "min_shards": min_shards},
            }
        },
    }
    if scheduler:
        cfg["cluster"] = {"scheduler": scheduler}
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "datasets.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _ingest(config: Path, scheduler: str | None = None) -> dict:
    from flows.ingest import ingest

    return ingest(dataset="t", config_path=str(config), scheduler=scheduler, progress=False)


def _snapshot(root: str, name: str = "t") -> dict:
    """Everything a reader sees, minus what names a run or a part (ids, paths of attempts)."""
    ds = audiopipe.open_dataset(root, name)
    clips = ds.table("clips").to_pandas().drop(columns=["run_id"]).sort_values("uri")
    feats = ds.table("features").to_pandas().drop(columns=["run_id"]).sort_values("clip_id")
    frames = {c: ds.frames(c, "mfcc") for c in clips.clip_id}
    return {
        "clips": clips.reset_index(drop=True),
        "features": feats.reset_index(drop=True),
        "frames": frames,
    }


def _assert_same(a: dict, b: dict) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(a["clips"], b["clips"])
    assert list(a["features"].clip_id) == list(b["features"].clip_id)
    for col in a["features"].columns:
        for x, y in zip(a["features"][col], b["features"][col], strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=col)
    assert a["frames"].keys() == b["frames"].keys()
    for c in a["frames"]:
        np.testing.assert_array_equal(a["frames"][c], b["frames"][c])


def _reference(tmp_path: Path, corpus: Path) -> dict:
    """An undisturbed run of the plain pipeline functions (no Prefect, no Dask)."""
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    cfg = load_config(_config(tmp_path / "ref", corpus))
    plan = plan_ingest(cfg, "t")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return _snapshot(cfg.storage_root)


def _decoded(corpus: Path) -> list[tuple[int, str]]:
    log = corpus / ".decoded.log"
    if not log.exists():
        return []
    return [(int(p), u) for p, u in (ln.split(" ", 1) for ln in log.read_text().splitlines())]


# --------------------------------------------------------------------------- scheduler choice


def test_scheduler_address_precedence(monkeypatch):
    from audiopipe.config import parse_config
    from flows.runtime import scheduler_address

    cfg = parse_config({"datasets": {"d": {"source": "x"}}})
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    assert scheduler_address(cfg) is None
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://env:1")
    assert scheduler_address(cfg) == "tcp://env:1"
    cfg2 = parse_config(
        {"cluster": {"scheduler": "tcp://yaml:2"}, "datasets": {"d": {"source": "x"}}}
    )
    assert scheduler_address(cfg2) == "tcp://yaml:2"
    assert scheduler_address(cfg2, "tcp://arg:3") == "tcp://arg:3"


def test_transient_errors_are_told_from_deterministic_ones():
    from botocore.exceptions import EndpointConnectionError
    from distributed import KilledWorker

    from flows.ingest import is_transient

    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(KilledWorker("k", "w", 0))
    try:
        try:
            raise EndpointConnectionError(endpoint_url="http://x")
        except EndpointConnectionError as inner:
            raise RuntimeError("zarr write failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer), "the cause chain is followed"
    assert not is_transient(ValueError("bad recipe"))
    assert not is_transient(KeyError("mfcc"))


# --------------------------------------------------------------------------- external cluster


def test_external_cluster_run_equals_local_cluster_run(
    tmp_path, monkeypatch, run_ingest, external_cluster
):
    corpus = _corpus(tmp_path / "corpus", [f"tone_{i}.wav" for i in range(6)])
    # the LocalCluster run (the session's cluster, through the same flow)
    local = run_ingest(_config(tmp_path / "local", corpus), "t")
    assert local["files_processed"] == 6
    # the external cluster, chosen by `cluster.scheduler` in datasets.yaml
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    ext_cfg = _config(tmp_path / "ext", corpus, scheduler=external_cluster)
    row = _ingest(ext_cfg)
    assert (row["files_processed"], row["files_failed"], row["shards"]) == (6, 0, 2)
    pids = {p for p, _ in _decoded(corpus)}
    assert pids and pids <= _worker_pids(external_cluster), "decoded by the external workers"
    _assert_same(_snapshot(str(tmp_path / "local" / "out")), _snapshot(str(tmp_path / "ext/out")))


# --------------------------------------------------------------------------- object storage


def test_s3_storage_tables_and_frames_round_trip(
    tmp_path, s3, prefect_api, external_cluster, monkeypatch
):
    import s3fs

    from audiopipe.store import staged

    # S3 objects cannot be backdated: vacuum's hour for unreferenced parts (a worker orphaned
    # by a killed run may still write one) is waived here, where no run was killed
    monkeypatch.setattr(staged, "MIN_AGE_S", 0.0)

    corpus = _corpus(tmp_path / "corpus", [f"tone_{i}.wav" for i in range(5)])
    root = "s3://audio/pipe"
    cfg = _config(tmp_path, corpus, storage=root)
    # the workers were started without any AWS_* variable: options travel in the context
    row = _ingest(cfg, scheduler=external_cluster)
    assert (row["files_processed"], row["files_failed"]) == (5, 0)
    got = _snapshot(root)
    _assert_same(got, _reference(tmp_path, corpus))
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": s3})
    keys = fs.find("audio/pipe/t")
    assert any(k.endswith("_delta_log/00000000000000000000.json") for k in keys)
    assert any("/frames/" in k and k.endswith("zarr.json") for k in keys)
    assert not any("/_staging/" in k for k in keys), "staging is cleaned after publishing"
    assert holder(Location(root, "t")) is None, "the lock is released"
    # incremental on S3: nothing to do the second time
    again = _ingest(cfg, scheduler=external_cluster)
    assert again["files_processed"] == 0 and again["shards"] == 0
    # vacuum on S3: changing every file of tone_4's shard leaves its old part unreferenced;
    # that part goes, and the dataset reads the same
    from audiopipe.store.vacuum import vacuum

    ds = audiopipe.open_dataset(root, "t")
    uri_of = dict(zip(*ds.table("clips", ["clip_id", "uri"]).to_pydict().values(), strict=True))
    index = ds.table("frames_index", ["clip_id", "part"]).to_pylist()
    part4 = next(r["part"] for r in index if uri_of[r["clip_id"]].endswith("tone_4.wav"))
    mates = [uri_of[r["clip_id"]] for r in index if r["part"] == part4]
    for i, uri in enumerate(mates):
        write(Path(uri), sine(f=950 + 10 * i, dur=0.5), 22050)
    assert _ingest(cfg, scheduler=external_cluster)["files_processed"] == len(mates)
    before = _snapshot(root)
    parts = {k.split("/frames/")[1].split("/")[0] for k in fs.find("audio/pipe/t/frames")}
    r = vacuum(Location(root, "t"), retain_hours=0)
    left = {k.split("/frames/")[1].split("/")[0] for k in fs.find("audio/pipe/t/frames")}
    assert r.parts and set(r.parts) == parts - left and sum(r.table_files.values()) > 0
    _assert_same(_snapshot(root), before)


def test_s3_outage_mid_run_is_retried_and_never_half_published(
    tmp_path, monkeypatch, prefect_api, external_cluster
):
    """The S3 server stops while a worker is in a shard and comes back 2 s later."""
    import threading

    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AUDIOPIPE_DECODER_HOOK": "tests.fault_hooks:pause_first",
    }.items():
        monkeypatch.setenv(k, v)
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port)]
    servers[0].start()
    corpus = _corpus(tmp_path / "corpus", [f"tone_{i}.wav" for i in range(4)])
    outage: list[float] = []

    def break_storage() -> None:
        deadline = time.monotonic() + 120
        while not (corpus / ".started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        servers[0].stop()  # moto keeps its state in this process: a restart loses nothing
        t0 = time.monotonic()
        (corpus / ".release").write_text("")  # the worker goes on writing into a dead store
        time.sleep(2.0)
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port))
        servers[-1].start()
        outage.append(time.monotonic() - t0)

    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="audio")
        breaker = threading.Thread(target=break_storage, daemon=True)
        breaker.start()
        row = _ingest(_config(tmp_path, corpus, storage="s3://audio/o"), external_cluster)
        breaker.join(timeout=130)
        assert outage and outage[0] >= 2.0, "the store really was down mid-run"
        ds = audiopipe.open_dataset("s3://audio/o", "t")
        clips = ds.table("clips").to_pandas()
        # retried to success, or (if every retry fell in the outage) a clear per-file failure
        assert row["files_processed"] + row["files_failed"] == 4
        assert len(clips) == row["files_processed"] and clips.uri.is_unique
        assert sorted(ds.table("features").to_pandas().clip_id) == sorted(clips.clip_id)
        for c in clips.clip_id:
            assert ds.frames(c, "mfcc").shape[1] == 13
        if row["files_failed"]:
            errors = ds.table("errors").to_pandas()
            assert errors.step.eq("shard").all() and errors.message.str.len().gt(10).all()
        assert row["files_processed"] == 4, "storage blips are retried (retry_transient)"
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("read_ahead", ["0", "1"], ids=["one-thread", "read-ahead"])
def test_poison_file_is_isolated_and_the_rest_of_its_shard_kept(
    tmp_path, monkeypatch, prefect_api, external_cluster, read_ahead
):
    # with a spare core, a second thread reaches the poison while the previous file's
    # features are computed: the worker dies the same, and the shard is split the same
    names = ["a.wav", "b.wav", "poison.wav", "c.wav", "d.wav"]
    corpus = _corpus(tmp_path / "corpus", names)
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:crash_on_poison")
    monkeypatch.setenv("AUDIOPIPE_READ_AHEAD", read_ahead)
    row = _ingest(_config(tmp_path, corpus, max_files=8), scheduler=external_cluster)
    assert (row["files_processed"], row["files_failed"]) == (4, 1)
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas()
    assert sorted(Path(u).name for u in clips.uri) == ["a.wav", "b.wav", "c.wav", "d.wav"]
    errors = ds.table("errors").to_pandas()
    assert list(errors.uri) == [str(corpus / "poison.wav")]
    assert errors.error_type[0] == "decoder_crashed"
    assert "killed the worker" in errors.message[0]
    assert ds.table("features").num_rows == 4
    # every shard holding the poison killed a worker: 5 files, 3, 2, 1 (ceil(log2 5) + 1),
    # and the lone file once more before it is called poison
    crashes = [u for _, u in _decoded(corpus) if u.endswith("poison.wav")]
    assert 3 <= len(crashes) <= 5


@pytest.mark.parametrize("min_shards", [1, 6], ids=["4-file-shards", "1-file-shards"])
def test_worker_sigkilled_mid_shard_run_completes_as_undisturbed(
    tmp_path, monkeypatch, prefect_api, external_cluster, min_shards
):
    # with one file per shard, the victim's shard has nothing to split: it must be retried
    # as it is, not taken for a poison file after one death
    names = ["a.wav", "b.wav", "victim.wav", "c.wav", "d.wav", "e.wav"]
    corpus = _corpus(tmp_path / "corpus", names)
    ref = _reference(tmp_path, corpus)
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:kill_worker_once")
    row = _ingest(_config(tmp_path, corpus, min_shards=min_shards), scheduler=external_cluster)
    killed = int((corpus / ".killed").read_text())
    assert killed not in _worker_pids(external_cluster), "a worker process really died"
    assert (row["files_processed"], row["files_failed"]) == (6, 0)
    _assert_same(_snapshot(str(tmp_path / "out")), ref)


def _cli(args: list[str], config: Path, **env: str) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "--config", str(config), *args],
        env=_env(PREFECT_API_URL=PREFECT_API_URL.value(), **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_flow_killed_mid_run_is_invisible_and_next_run_does_the_rest(
    tmp_path, prefect_api, external_cluster
):
    from distributed import Client

    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish, staging

    corpus = _corpus(tmp_path / "corpus", ["base_0.wav", "base_1.wav"])
    cfg_path = _config(tmp_path, corpus, max_files=2)
    cfg = load_config(cfg_path)
    plan = plan_ingest(cfg, "t")  # a published state readers can see
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    before = _snapshot(cfg.storage_root)
    # 5 shards of 2: two fast, two that block both workers, one that cannot start before the kill
    new = [f"new_{i}.wav" for i in range(4)] + [f"slow_{i}.wav" for i in range(4)]
    new += ["z_0.wav", "z_1.wav"]
    _corpus(corpus, new)
    loc = Location(cfg.storage_root, "t")
    proc = _cli(
        ["ingest", "t", "--scheduler", external_cluster, "-q"],
        cfg_path,
        AUDIOPIPE_DECODER_HOOK="tests.fault_hooks:block_slow",
    )
    try:
        deadline = time.monotonic() + 150
        while len(loc.fs.glob(loc.staging_uri("*", staging.SUCCESS))) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard was staged in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # the flow process dies mid-run
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # nothing of the killed run is visible
    _assert_same(_snapshot(cfg.storage_root), before)
    # let the orphaned shard task (still on the external worker) finish, then re-run
    (corpus / ".release").write_text("")
    with Client(external_cluster, timeout=10) as c:
        deadline = time.monotonic() + 60
        time.sleep(0.5)
        while time.monotonic() < deadline and any(
            c.run(lambda dask_worker: dask_worker.state.executing_count).values()
        ):
            time.sleep(0.2)
    staged = {Path(p).parent.name for p in loc.fs.glob(loc.staging_uri("*", staging.SUCCESS))}
    plan2 = plan_ingest(cfg, "t")
    staged_uris = {f.uri for s in plan2.shards if s.key in staged for f in s.files}
    assert len(staged_uris) >= 4
    (corpus / ".decoded.log").unlink()
    proc = _cli(
        ["ingest", "t", "--scheduler", external_cluster, "-q"],
        cfg_path,
        AUDIOPIPE_DECODER_HOOK="tests.fault_hooks:log_decodes",
    )
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    redone = [u for _, u in _decoded(corpus)]
    all_new = {str(corpus / n) for n in new}
    assert len(redone) >= 2 and set(redone) == all_new - staged_uris, "exactly the missing work"
    assert len(redone) == len(set(redone))
    ds = audiopipe.open_dataset(cfg.storage_root, "t")
    clips = ds.table("clips").to_pandas()
    assert len(clips) == 12 and clips.uri.is_unique
    assert sorted(ds.table("features").to_pandas().clip_id) == sorted(clips.clip_id)
    assert holder(loc) is None, "the lock is released"


def test_two_concurrent_ingestions_never_duplicate(tmp_path, prefect_api, external_cluster):
    corpus = _corpus(tmp_path / "corpus", [f"tone_{i}.wav" for i in range(4)])
    cfg_path = _config(tmp_path, corpus, max_files=2)
    hook = {"AUDIOPIPE_DECODER_HOOK": "tests.fault_hooks:sleep_1s"}
    args = ["ingest", "t", "--scheduler", external_cluster, "-q"]
    procs = [_cli(args, cfg_path, **hook), _cli(args, cfg_path, **hook)]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    ok = [o for o, c in zip(outs, codes, strict=True) if c == 0]
    refused = [o for o, c in zip(outs, codes, strict=True) if c != 0]
    assert ok, outs
    for _, err in refused:  # the second stops with a clear message naming the holder
        assert "is locked by another ingest" in err and "pid" in err, err
    if len(ok) == 2:  # did not overlap after all: the later one found nothing to do
        assert any("processed 0 files" in o for o, _ in ok), ok
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas()
    assert len(clips) == 4 and clips.uri.is_unique
    assert ds.table("features").num_rows == 4 and ds.table("frames_index").num_rows == 4
    runs = ds.table("runs").to_pandas()
    assert list(runs[runs.files_processed > 0].files_processed) == [4]
    assert len(_decoded(corpus)) == 4, "no file was decoded twice"
    json.dumps(ds.versions)


# --------------------------------------------------------------------------- deployments


def test_deployments_have_the_cron_and_parameters(tmp_path, prefect_api):
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from audiopipe.config import load_config
    from flows.deployments import build_deployments

    corpus = _corpus(tmp_path / "corpus", ["a.wav"])
    cfg_path = _config(tmp_path, corpus)
    data = yaml.safe_load(cfg_path.read_text())
    data["datasets"]["hourly"] = {**data["datasets"]["t"], "schedule": "17 * * * *"}
    cfg_path.write_text(yaml.safe_dump(data))
    for d in build_deployments(load_config(cfg_path), str(cfg_path)):
        d.apply()
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("ingest/ingest-hourly")
        assert [s.schedule.cron for s in dep.schedules] == ["17 * * * *"]
        assert dep.parameters == {
            "dataset": "hourly",
            "config_path": str(cfg_path),
            "progress": False,
        }
        rb = client.read_deployment_by_name("rebuild/rebuild-hourly")
        assert rb.schedules == [] and rb.parameters["dataset"] == "hourly"
        assert client.read_deployment_by_name("rebuild/rebuild-t").parameters["dataset"] == "t"
        with pytest.raises(ObjectNotFound):  # no schedule: no scheduled ingestion
            client.read_deployment_by_name("ingest/ingest-t")


@pytest.fixture()
def prefect_server(tmp_path):
    """A real ``prefect server start`` (not the test harness's ephemeral API, which runs no
    scheduler service) with a 2 s scheduler loop; yields its API URL."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    env = _env(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_UI_ENABLED="false",
    )
    log = open(tmp_path / "prefect-server.log", "w")  # noqa: SIM115
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "prefect-server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start"
            time.sleep(0.5)
        yield url
    finally:
        _stop([proc])
        log.close()


@pytest.mark.slow
def test_serve_runs_a_scheduled_ingestion(tmp_path, prefect_server, external_cluster):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    corpus = _corpus(tmp_path / "corpus", ["a.wav", "b.wav"])
    cfg_path = _config(tmp_path / "sched", corpus, scheduler=external_cluster)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "--config", str(cfg_path)]
        + ["serve", "--interval", "5"],
        env=_env(PREFECT_API_URL=prefect_server),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        state = None
        with temporary_settings({PREFECT_API_URL: prefect_server}):
            with get_client(sync_client=True) as client:
                while time.monotonic() < deadline:
                    assert proc.poll() is None, proc.communicate()
                    runs = client.read_flow_runs(
                        deployment_filter=DeploymentFilter(
                            name=DeploymentFilterName(any_=["ingest-t"])
                        )
                    )
                    done = [r for r in runs if r.state and r.state.is_final()]
                    if done:
                        state = done[0].state
                        dep = client.read_deployment_by_name("ingest/ingest-t")
                        break
                    time.sleep(1)
        assert state is not None and state.is_completed(), state
        assert dep.schedules[0].schedule.interval.total_seconds() == 5
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    ds = audiopipe.open_dataset(str(tmp_path / "sched" / "out"), "t")
    assert ds.table("clips").num_rows == 2

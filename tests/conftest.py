"""Shared fixtures: where the real corpora are, and the rule for skipping without them."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest


def _find_corpora() -> Path:
    """``$AUDIOPIPE_CORPORA``, else ``../shared/corpora`` beside the repository (for a git
    worktree, beside its main checkout)."""
    if os.environ.get("AUDIOPIPE_CORPORA"):
        return Path(os.environ["AUDIOPIPE_CORPORA"]).resolve()
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo.parent / "shared" / "corpora"]
    git = repo / ".git"
    if git.is_file():  # a worktree: ".git" names the main repository's git dir
        main_git = Path(git.read_text().split("gitdir:", 1)[1].strip()).resolve()
        candidates.append(main_git.parents[2].parent / "shared" / "corpora")
    return next((c for c in candidates if c.is_dir()), candidates[0]).resolve()


CORPORA = _find_corpora()


@pytest.fixture(scope="session")
def corpora() -> Path:
    """Path of ../shared/corpora.

    Skips with a visible reason when absent (a user's clone); when CI is set the
    corpora are required, so their absence fails instead of silently skipping.
    """
    if not CORPORA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the corpora folder {CORPORA} is missing")
        pytest.skip(f"real corpora not found at {CORPORA} (set AUDIOPIPE_CORPORA)")
    return CORPORA


os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the recipe check's verdict cache (audiopipe.recipe_cache): a fresh one per session, so the
# config tests run the real check rather than read a verdict an earlier session left
_CACHE = tempfile.mkdtemp(prefix="audiopipe-test-cache-")
os.environ["AUDIOPIPE_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def prefect_api():
    """One local Prefect API (temporary database) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.runtime import flow_run_settings

    # flow runs as the CLI makes them (no heartbeat thread to wait for at each run's end)
    with prefect_test_harness(server_startup_timeout=180), flow_run_settings():
        yield


@pytest.fixture(scope="session")
def dask_scheduler() -> str:
    """A real Dask LocalCluster of 2 worker processes shared by the session's flow runs."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="3GiB",
    ) as cluster:
        yield cluster.scheduler_address


def write_config(folder: Path, datasets: dict, storage: str | None = None) -> Path:
    """Write a datasets.yaml into ``folder`` (storage defaults to folder/out)."""
    import yaml

    cfg = {"storage": storage or str(folder / "out"), "datasets": datasets}
    p = folder / "datasets.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def ingest_in_process(config: Path | Any, dataset: str, kind: str = "ingest") -> dict:
    """One ingestion with the plain pipeline functions (no Prefect, no Dask): the ``runs`` row.

    ``config`` is a datasets.yaml path or a loaded :class:`~audiopipe.config.Config`.
    """
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    cfg = load_config(config) if isinstance(config, str | Path) else config
    plan = plan_ingest(cfg, dataset, kind=kind)
    return publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


@pytest.fixture()
def run_ingest(prefect_api, dask_scheduler):
    """Call the real ``ingest``/``rebuild`` Prefect flows on the session's Dask cluster."""

    def _run(config: Path, dataset: str, kind: str = "ingest") -> dict:
        from flows.ingest import ingest
        from flows.rebuild import rebuild

        fn = ingest if kind == "ingest" else rebuild
        return fn(
            dataset=dataset, config_path=str(config), scheduler=dask_scheduler, progress=False
        )

    return _run


@pytest.fixture()
def s3_requests(s3) -> list[tuple[str, str]]:
    """``(method, path)`` of every HTTP request the :func:`s3` server answered, in order
    (``("GET", "/audio/corpus/a.wav")``: a read of that object)."""
    return _S3_REQUESTS[s3]


#: the requests each running :func:`s3` server answered, by its endpoint
_S3_REQUESTS: dict[str, list[tuple[str, str]]] = {}


@pytest.fixture()
def s3(monkeypatch):
    """A moto S3 server on 127.0.0.1 and the AWS_* environment pointing at it; the requests
    it answers are logged (:func:`s3_requests`)."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    # fsspec caches a filesystem per set of arguments: one made with none (the endpoint read
    # from the environment) by an earlier test would still point at that test's stopped server
    s3fs.S3FileSystem.clear_instance_cache()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    log: list[tuple[str, str]] = []
    app = server._server.app  # the WSGI app the server's request handlers call

    def logged(environ, start_response):
        log.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        return app(environ, start_response)

    server._server.app = logged
    endpoint = ""
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for k, v in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            monkeypatch.setenv(k, v)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="audio")
        _S3_REQUESTS[endpoint] = log
        yield endpoint
    finally:
        _S3_REQUESTS.pop(endpoint, None)
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()

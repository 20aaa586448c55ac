"""A persistent local Prefect API (`audiopipe server start`): found by later commands, which
then run their flows on it, so its UI shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ingest_in_process, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_server_started_once_is_used_by_later_commands(tmp_path, monkeypatch):
    from audiopipe.demo import make_demo_corpus
    from flows import server

    home = tmp_path / "prefect-home"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    assert server.api_url() is None and server.status() is None
    demo = make_demo_corpus(tmp_path / "demo", n_per_class=2)
    cfg = write_config(tmp_path, {"d": {"source": str(demo), "stages": {"beats": {}}}})
    ingest_in_process(cfg, "d")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cli = [sys.executable, "-m", "flows.cli", "--config", str(cfg)]
    st = server.start()
    try:
        assert st["healthy"] and server.api_url() == st["url"]
        assert server.start()["pid"] == st["pid"]  # started once, then found
        p = subprocess.run([*cli, "stage", "beats", "d"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        assert p.stdout.strip().startswith("beats")
        from prefect import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: st["url"]}):
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs()
                names = {client.read_flow(r.flow_id).name for r in runs}
        assert "stages" in names
        s = subprocess.run([*cli, "server", "status"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert s.returncode == 0 and st["url"] in s.stdout and "healthy" in s.stdout
    finally:
        assert server.stop()
    assert server.status() is None and server.api_url() is None


def test_api_url_order_environment_profile_then_recorded_server(tmp_path, monkeypatch):
    import json

    from flows import server

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    assert server.api_url(home) is None
    # a recorded server whose process is gone does not count
    (home / server.STATE).write_text(json.dumps({"pid": 2**22 + 12345, "url": "http://x/api"}))
    assert server.api_url(home) is None and server.status(home) is None
    # a live one does (this process stands in for it)
    (home / server.STATE).write_text(json.dumps({"pid": os.getpid(), "url": "http://y/api"}))
    assert server.api_url(home) == "http://y/api"
    (home / "profiles.toml").write_text(
        'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://profile/api"\n'
    )
    assert server.api_url(home) == "http://profile/api"
    monkeypatch.setenv("PREFECT_API_URL", "http://env/api")
    assert server.api_url(home) == "http://env/api"

"""infra/: what can be checked without a Docker engine or a Kubernetes cluster."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"


def _dockerfile_runs() -> list[str]:
    text = (INFRA / "Dockerfile").read_text().replace("\\\n", " ")
    return [ln.strip()[4:] for ln in text.splitlines() if ln.strip().startswith("RUN ")]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_dockerfile_installs_with_the_recipe_make_run_uses(tmp_path):
    """The image runs `make venv` (its own VENV and EXTRAS), and `make run` runs the same
    install commands first; which extras and pins: tests/test_dependencies.py."""
    make_steps = [r for r in _dockerfile_runs() if r.startswith("make ")]
    assert len(make_steps) == 1, _dockerfile_runs()
    args = shlex.split(make_steps[0])
    assert args[1] == "venv"
    overrides = [a for a in args[2:] if "=" in a]

    def dry(target: str) -> list[str]:
        out = subprocess.run(
            ["make", "--no-print-directory", "-n", "-B", target, *overrides],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            # under `make test` the parent make's flags would leak in (and print directories)
            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        ).stdout
        return [ln for ln in out.splitlines() if ln.strip()]

    venv_steps, run_steps = dry("venv"), dry("run")
    assert any("pip install" in s and "-e" in s for s in venv_steps)
    assert run_steps[: len(venv_steps)] == venv_steps
    assert run_steps[len(venv_steps) :] == ["/opt/venv/bin/audiopipe run"]
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M), "Python 3.11 as pyproject requires"
    assert "ENV PATH=/opt/venv/bin:$PATH" in text


def test_compose_file_has_the_services_wired_together():
    doc = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"prefect-server", "dask-scheduler", "dask-worker", "prefect-worker"} <= set(services)
    sched = services["dask-scheduler"]
    worker = services["dask-worker"]
    serve = services["prefect-worker"]
    for s in (sched, worker, serve):  # the project's image, built from infra/Dockerfile
        assert s["build"]["dockerfile"] == "infra/Dockerfile" and s["build"]["context"] == ".."
        assert (INFRA / s["build"]["context"] / s["build"]["dockerfile"]).is_file()  # from infra/
    assert "dask scheduler" in sched["command"] and "8786" in sched["command"]
    assert "dask worker tcp://dask-scheduler:8786" in worker["command"]
    assert "replicas" in worker["deploy"]
    assert serve["command"] == "audiopipe serve"
    assert serve["environment"]["DASK_SCHEDULER_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert serve["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    # the workers run the Prefect task runs: they must report to the same server
    assert worker["environment"]["PREFECT_API_URL"] == serve["environment"]["PREFECT_API_URL"]
    assert "prefect server start" in services["prefect-server"]["command"]
    assert serve["environment"]["AUDIOPIPE_STORAGE"].startswith("s3://")
    assert serve["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000"


def test_kubernetes_manifests_and_helm_values():
    docs = [d for d in yaml.safe_load_all((INFRA / "k8s" / "audiopipe.yaml").read_text()) if d]
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert kinds == {("v1", "ConfigMap"), ("v1", "Secret"), ("apps/v1", "Deployment")}
    for d in docs:
        assert d["metadata"]["name"].startswith("audiopipe")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    spec = dep["spec"]
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "serve"
    # the embedded datasets.yaml is a valid audiopipe configuration
    from audiopipe.config import parse_config

    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = parse_config(yaml.safe_load(cm["data"]["datasets.yaml"]))
    assert cfg.cluster.scheduler.startswith("tcp://") and cfg.storage.startswith("s3://")
    assert cfg.dataset().schedule
    dask = yaml.safe_load((INFRA / "helm" / "dask-values.yaml").read_text())
    assert dask["worker"]["replicas"] >= 1 and dask["worker"]["threads_per_worker"] == 1
    assert dask["scheduler"]["image"]["repository"] == dask["worker"]["image"]["repository"]
    worker_env = {e["name"]: e.get("value") for e in dask["worker"]["env"]}
    serve_env = {e["name"]: e.get("value") for e in container["env"]}
    assert worker_env["PREFECT_API_URL"] == serve_env["PREFECT_API_URL"]
    prefect = yaml.safe_load((INFRA / "helm" / "prefect-server-values.yaml").read_text())
    assert "server" in prefect


def test_infra_readme_names_every_file():
    readme = (INFRA / "README.md").read_text()
    for p in INFRA.rglob("*"):
        if p.is_file() and p.name != "README.md":
            assert str(p.relative_to(INFRA)) in readme, p
    assert "prefect server start" in readme and "audiopipe serve" in readme

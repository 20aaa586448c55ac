"""Declared dependencies match the imports, and one pinned set serves CI and the image.

* deptry reads every import of ``audiopipe/`` and ``flows/`` (runtime) and of ``tests/`` and
  ``benchmarks/`` (dev) and maps it to its distribution: a runtime import must be a runtime
  dependency (not a dev extra, not only another package's dependency); a dev import must be
  declared somewhere.
* tests/runtime_only.py runs the package with only the runtime closure importable: the
  dynamic imports deptry cannot see (a library's optional imports, plugins).
* constraints.txt pins exactly the closure of every extra, at the installed versions, and the
  Dockerfile installs with it, without the dev extra.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / "constraints.txt"
# test tools that must never reach a production worker
DEV_ONLY = {"pytest", "pytest-timeout", "ruff", "deptry", "moto", "librosa", "numba", "spafe",
            "polars", "duckdb"}  # fmt: skip


def closure(requirements: list[str]) -> dict[str, str]:
    """Installed ``{distribution: version}`` that ``requirements`` pull in, extras and markers
    evaluated here; fails on a requirement the installed version does not satisfy."""
    seen: dict[str, str] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in done:
            continue
        done.add((name, frozenset(req.extras)))
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} is required but not installed: run `make venv`")
        assert req.specifier.contains(dist.version, prereleases=True), (
            f"installed {name} {dist.version} does not satisfy {req}"
        )
        seen[name] = dist.version
        for spec in dist.requires or []:
            sub = Requirement(spec)
            extras = {"", *req.extras}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return seen


def runtime_requirements(extras: tuple[str, ...] = ()) -> list[str]:
    opt = PYPROJECT["optional-dependencies"]
    return [*PYPROJECT["dependencies"], *(r for e in extras for r in opt[e])]


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
            assert m, f"constraints.txt: {line!r} is not NAME==VERSION (run `make lock`)"
            out[canonicalize_name(m[1])] = m[2]
    return out


def deptry(*args: str, config: Path = ROOT / "pyproject.toml") -> subprocess.CompletedProcess:
    # helper modules that tests and benchmarks put on sys.path themselves (feat_helpers, ...)
    local = {p.stem for d in ("tests", "benchmarks") for p in (ROOT / d).rglob("*.py")}
    first_party = ["audiopipe", "flows", "tests", *sorted(local)]
    cmd = [sys.executable, "-m", "deptry", *args, "--no-ansi", "--config", str(config)]
    cmd += ["--optional-dependencies-dev-groups", "dev", "--exclude", r"\.venv|build"]
    for m in first_party:
        cmd += ["--known-first-party", m]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


# s3fs is never imported by name: fsspec loads it for s3:// URLs (the `s3` extra)
RUNTIME_DEPTRY = ("audiopipe", "flows", "--per-rule-ignores", "DEP002=s3fs")


def test_runtime_imports_are_runtime_dependencies():
    """DEP001 undeclared, DEP003 only transitive (threadpoolctl via scikit-learn), DEP004 a dev
    extra (mir_eval), DEP002 declared but never imported."""
    r = deptry(*RUNTIME_DEPTRY)
    assert r.returncode == 0, r.stdout + r.stderr


def test_test_and_benchmark_imports_are_declared():
    """tests/ and benchmarks/ may import dev extras (DEP004) and use runtime ones partly
    (DEP002), but everything they import is declared (boto3, httpx, packaging...). The one
    exception: benchmarks/transcribe.py compares with basic-pitch when someone installed it
    by hand (it is not a dependency: its install pulls an old TensorFlow)."""
    r = deptry("tests", "benchmarks", "--ignore", "DEP002,DEP004",
               "--per-rule-ignores", "DEP001=basic_pitch|onnxruntime")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_import_check_catches_the_mismatches_it_was_written_for(tmp_path):
    """The check can fail: the pyproject of before (threadpoolctl undeclared, mir_eval a dev
    extra only) is rejected, naming both."""
    text = (ROOT / "pyproject.toml").read_text()
    old = re.sub(r'\n\s*"(threadpoolctl|mir_eval)[^\n]*(\n\s+#[^\n]*)?', "", text, count=2)
    old = old.replace("dev = [\n", 'dev = [\n    "mir_eval>=0.7",\n')
    assert old.count("mir_eval") == 1 and "threadpoolctl" not in old
    (tmp_path / "pyproject.toml").write_text(old)
    r = deptry(*RUNTIME_DEPTRY, config=tmp_path / "pyproject.toml")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert re.search(r"\.py:\d+:\d+: DEP003 'threadpoolctl'", out), out
    assert re.search(r"\.py:\d+:\d+: DEP004 'mir_eval'", out), out


def test_the_package_runs_with_its_runtime_dependencies_only(tmp_path):
    """Every module imports and the demo's stages run with only the runtime closure (no
    extras) importable; see tests/runtime_only.py."""
    allowed = sorted(closure(runtime_requirements()))
    assert not set(allowed) & DEV_ONLY
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "runtime_only.py"),
            json.dumps(allowed),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert "ran classify, tag, segment" in r.stdout and "separate, transcribe" in r.stdout


def test_constraints_pin_exactly_what_the_dev_venv_installs_at_the_installed_versions():
    """constraints.txt = the closure of every extra (what `make lock` freezes); the venv that
    runs this suite was installed with it (`make`), so CI tests the pinned versions."""
    installed = closure(runtime_requirements(tuple(PYPROJECT["optional-dependencies"])))
    pinned = pins()
    assert set(installed) - set(pinned) == set(), "not pinned: run `make lock`"
    assert set(pinned) - set(installed) == set(), "pinned but not required: run `make lock`"
    differ = {n: (pinned[n], v) for n, v in installed.items() if pinned[n] != v}
    assert differ == {}, "(pinned, installed) differ: run `make venv` (or `make lock`)"
    for spec in runtime_requirements(tuple(PYPROJECT["optional-dependencies"])):
        req = Requirement(spec)
        assert req.specifier.contains(pinned[canonicalize_name(req.name)]), (req, pinned)
    header = CONSTRAINTS.read_text().split("\n\n", 1)[0]
    assert "make lock" in header and "Python 3.11" in header


def _make_dry(target: str, *overrides: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target, *overrides],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [ln.strip() for ln in out.splitlines() if "pip install" in ln and " -e " in ln]


def test_image_and_make_install_with_the_constraints_and_the_image_has_no_dev_packages():
    text = (ROOT / "infra" / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [ln.strip()[4:] for ln in text.splitlines() if ln.strip().startswith("RUN ")]
    installs = [r for r in runs if r.startswith("make ") or "pip" in r]
    assert len(installs) == 1 and shlex.split(installs[0])[:2] == ["make", "venv"], runs
    (image_install,) = _make_dry("venv", *[a for a in shlex.split(installs[0]) if "=" in a])
    (dev_install,) = _make_dry("venv")
    for cmd in (image_install, dev_install):
        assert "-c constraints.txt" in cmd, cmd
    extras = re.search(r"\.\[([^\]]*)\]", image_install)
    image_extras = tuple(e for e in (extras[1].split(",") if extras else []) if e)
    assert "dev" not in image_extras and "[dev]" in dev_install
    shipped = closure(runtime_requirements(image_extras))
    assert set(shipped) & DEV_ONLY == set(), "dev packages in the image"
    assert "s3fs" in shipped, "the image stores on s3:// (compose, helm): it needs the s3 extra"
    assert set(shipped) <= set(pins())
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert "constraints.txt" not in dockerignore and ".venv" in dockerignore

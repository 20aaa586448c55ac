"""The architecture's rules, checked: no Prefect in the library, pure numpy/scipy features."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "audiopipe"
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_nothing_in_the_library_imports_prefect():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if "prefect" in _imports(p)]
    assert offenders == []


def test_nothing_in_the_library_imports_the_flows_package():
    offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if "flows" in _imports(p)]
    assert offenders == []


def test_features_are_pure_numpy_scipy():
    allowed = STDLIB | {"numpy", "scipy", "audiopipe"}
    bad = {}
    for p in (PKG / "features").rglob("*.py"):
        extra = _imports(p) - allowed
        if extra:
            bad[p.name] = sorted(extra)
    assert bad == {}


def test_importing_the_library_loads_no_prefect_or_dask():
    code = (
        "import sys, audiopipe, audiopipe.features, audiopipe.store, audiopipe.pipeline, "
        "audiopipe.stages, audiopipe.config\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""No import cycles inside ``audiopipe.features``, and its modules stay under 500 lines.

The imports of every ``audiopipe/features/*.py`` are read with ``ast`` (module-level and
function-level alike, relative or absolute) into a graph of the package's modules, and
any strongly connected component of more than one module (or a module importing itself)
fails with the cycle. A module importing from the package itself (``from . import x`` for a
name of ``__init__``) counts as importing ``__init__``, which imports every module.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_layers import _cycles as cycles  # one Tarjan for both checks

PKG = "audiopipe.features"
ROOT = Path(__file__).resolve().parents[2] / "audiopipe" / "features"


def import_graph(root: Path = ROOT, pkg: str = PKG) -> dict[str, set[str]]:
    """``{module: {modules of the package it imports}}``, ``__init__`` for the package."""
    modules = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}

    def target(dotted: str, names: list[str]) -> set[str]:
        """Modules of the package reached by ``from <dotted> import <names>``."""
        if dotted == pkg:  # from the package: a submodule by name, else __init__
            return {n if n in modules else "__init__" for n in names}
        if dotted.startswith(pkg + "."):
            return {dotted[len(pkg) + 1 :].split(".")[0]}
        return set()

    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative to this package (level 1) or above
                    base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                    dotted = base + ("." + node.module if node.module else "")
                else:
                    dotted = node.module or ""
                graph[path.stem] |= target(dotted, [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    graph[path.stem] |= target(a.name.rsplit(".", 1)[0], [a.name.split(".")[-1]])
    return graph


def test_the_checker_finds_cycles_and_reads_real_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    g = import_graph()
    # relative, absolute and function-level imports are all seen
    assert "frontend" in g["mel"] and "registry" in g["extractor"]
    assert {"mel", "spectral", "temporal"} <= g["__init__"]


def test_no_import_cycles_in_features():
    found = cycles(import_graph())
    assert not found, f"import cycles in {PKG}: {found}"


def test_function_level_imports_are_in_the_graph(tmp_path):
    pkg = tmp_path / "features"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from audiopipe.features.a import f\n")
    g = import_graph(pkg, PKG)
    assert g["a"] == {"b"} and g["b"] == {"a"}
    assert cycles(g) == [["a", "b"]]


def test_feature_modules_are_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in ROOT.glob("*.py")}
    assert {k: n for k, n in sizes.items() if n > 500} == {}

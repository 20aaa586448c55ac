"""The architecture's rules, checked on the source (imports parsed with ``ast``, including the
ones inside functions): which layer of ``audiopipe`` may import which, no import cycles, no
Prefect or ``flows`` in the library, pure numpy/scipy features."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "audiopipe"
STDLIB = set(sys.stdlib_module_names)

#: layer -> the layers it may import (besides itself). The design (DESIGN.md, "The shape of
#: the house"): catalog finds files, audio decodes them (ogg, beneath it, walks Ogg pages),
#: features are pure numpy/scipy, store holds the tables and frames (and decodes a clip back
#: for readers); uri, beneath them, opens a file by name (local path or URL); ingest composes
#: those four with config into plan / extract / publish; stages read the store and use features
#: and audio; config validates recipes (features) and stage names and parameters (the stage
#: registry), so stages never import config; config_files checks the local files a config
#: names for the run that reads them (the stages' file parameters: the registry again), given
#: a loaded config, which it does not import. ``audiopipe`` is the root package (its
#: ``__version__`` and the ``open_dataset`` shortcut into the store; ``config_text`` asks uri
#: whether a storage root can hold Delta tables). Nothing imports ingest:
#: ``flows/`` (outside the library) is its only caller. A new module of ``audiopipe/`` fails
#: the test until it is given a layer here.
ALLOWED: dict[str, set[str]] = {
    "audiopipe": {"audiopipe.store", "audiopipe.uri"},
    "audiopipe.features": set(),
    "audiopipe.audio": {"audiopipe.ogg"},
    "audiopipe.ogg": set(),
    "audiopipe.uri": set(),
    "audiopipe.catalog": {"audiopipe.uri"},
    "audiopipe.store": {"audiopipe.audio", "audiopipe.uri"},
    "audiopipe.fanout": set(),
    "audiopipe.stages": {
        "audiopipe",
        "audiopipe.features",
        "audiopipe.audio",
        "audiopipe.store",
        "audiopipe.fanout",
        "audiopipe.uri",
    },
    "audiopipe.config": {"audiopipe", "audiopipe.features", "audiopipe.stages",
                         "audiopipe.config_files"},
    "audiopipe.config_files": {"audiopipe", "audiopipe.stages"},
    "audiopipe.ingest": {
        "audiopipe",
        "audiopipe.features",
        "audiopipe.audio",
        "audiopipe.catalog",
        "audiopipe.config",
        "audiopipe.config_files",
        "audiopipe.store",
        "audiopipe.fanout",
        "audiopipe.uri",
    },
    "audiopipe.demo": {"audiopipe.config"},
}

#: third-party packages a layer may not import at all (``flows`` and Prefect: nowhere)
FORBIDDEN_EVERYWHERE = {"prefect", "prefect_dask", "flows"}

#: a function-level import that is the only way round a cycle may be excused by this marker,
#: followed by the reason, on the import's line
CYCLE_OK = "# import-cycle-ok:"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (a submodule when ``from pkg import submodule``)
    line: int
    in_function: bool
    excused: bool  # function-level, with CYCLE_OK and a reason on its line


def _module_name(path: Path, pkg: Path = PKG) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, pkg: Path = PKG) -> bool:
    rel = pkg.parent / Path(*name.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def _imports(path: Path, pkg: Path = PKG) -> list[Import]:
    """Every import of a module, resolved to the module imported (relative ones included)."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    me = _module_name(path, pkg)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    func_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    func_lines.add(sub.lineno)
    out: list[Import] = []

    def add(target: str, node: ast.stmt) -> None:
        in_func = node.lineno in func_lines
        text = lines[node.lineno - 1]
        reason = text.split(CYCLE_OK, 1)[1].strip() if CYCLE_OK in text else ""
        out.append(Import(me, target, node.lineno, in_func, in_func and bool(reason)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                add(sub if mod.startswith("audiopipe") and _is_module(sub, pkg) else mod, node)
    return out


def _layer(module: str) -> str | None:
    """The layer of an ``audiopipe`` module: the longest key of ALLOWED that prefixes it."""
    best = None
    for layer in ALLOWED:
        if (module == layer or module.startswith(layer + ".")) and (
            best is None or len(layer) > len(best)
        ):
            best = layer
    return best


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
IMPORTS = {m: _imports(p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    assert {m for m in MODULES if _layer(m) is None} == set()


def test_layers_import_only_what_the_table_allows():
    bad = []
    for m, imps in IMPORTS.items():
        mine = _layer(m)
        for imp in imps:
            if not imp.target.startswith("audiopipe"):
                continue
            theirs = _layer(imp.target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{m}:{imp.line} imports {imp.target} ({mine} may not import {theirs})")
    assert bad == []


def test_nothing_in_the_library_imports_prefect_or_the_flows_package():
    bad = [
        f"{m}:{imp.line} imports {imp.target}"
        for m, imps in IMPORTS.items()
        for imp in imps
        if imp.target.split(".")[0] in FORBIDDEN_EVERYWHERE
    ]
    assert bad == []


def test_features_are_pure_numpy_scipy():
    allowed = STDLIB | {"numpy", "scipy", "audiopipe"}
    bad = [
        f"{m}:{imp.line} imports {imp.target}"
        for m, imps in IMPORTS.items()
        if _layer(m) == "audiopipe.features"
        for imp in imps
        if imp.target.split(".")[0] not in allowed
    ]
    assert bad == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), or self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


#: packages left out of the cycle check (none: features had a cycle once, now removed)
EXCLUDED_FROM_CYCLE_CHECK: tuple[str, ...] = ()


def _graph(excluded: tuple[str, ...] = EXCLUDED_FROM_CYCLE_CHECK) -> dict[str, set[str]]:
    def skip(m: str) -> bool:
        return any(m == e or m.startswith(e + ".") for e in excluded)

    return {
        m: {i.target for i in imps if i.target in MODULES and not i.excused and not skip(i.target)}
        for m, imps in IMPORTS.items()
        if not skip(m)
    }


def test_no_import_cycles_in_the_library():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_cycles():
    """The check itself: a cycle through a function-level import counts, unless excused."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_function_level_imports_are_seen_and_excuses_need_a_reason(tmp_path):
    pkg = tmp_path / "audiopipe"
    (pkg / "store").mkdir(parents=True)
    for f in ("__init__.py", "audio.py", "store/__init__.py", "store/runs.py"):
        (pkg / f).write_text("")
    (pkg / "store" / "probe.py").write_text(
        "import os\n"
        "from . import runs\n"
        "def f():\n"
        "    from audiopipe.store import runs  # import-cycle-ok: runs need f lazily\n"
        "    from audiopipe import audio  # import-cycle-ok:\n"
        "    import audiopipe.catalog\n"
    )
    imps = _imports(pkg / "store" / "probe.py", pkg)
    assert [(i.target, i.in_function, i.excused) for i in imps] == [
        ("os", False, False),
        ("audiopipe.store.runs", False, False),
        ("audiopipe.store.runs", True, True),
        ("audiopipe.audio", True, False),  # a marker without a reason excuses nothing
        ("audiopipe.catalog", True, False),
    ]


@pytest.mark.parametrize("module", ["audiopipe.store.runs", "audiopipe.ingest.publish"])
def test_the_real_graph_has_the_edges_the_code_has(module):
    """``from pkg import submodule`` is an edge to the submodule; the graph is not empty."""
    g = _graph(())
    assert "audiopipe.store.records" in g[module]


def test_importing_the_library_loads_no_prefect_or_dask():
    code = (
        "import sys, audiopipe, audiopipe.features, audiopipe.store, audiopipe.ingest, "
        "audiopipe.stages, audiopipe.config\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: the longest a module of audiopipe/ or flows/ may be without saying why in its docstring
MAX_LINES = 500
#: the marker of that reason: a docstring line starting with it, then the reason
LENGTH_REASON = "Length:"


def _length_reason(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    lines = [ln.strip() for ln in doc.splitlines()]
    return next((ln[len(LENGTH_REASON) :].strip() for ln in lines if ln.startswith(LENGTH_REASON)), "")


def test_modules_are_small_or_say_why():
    flows = {f"flows.{p.stem}": p for p in sorted((PKG.parent / "flows").glob("*.py"))}
    everyone = {**MODULES, **flows}  # flows/ composes the library: held to the same size
    long = {
        m: n
        for m, p in everyone.items()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    unexplained = {m: n for m, n in long.items() if not _length_reason(everyone[m])}
    assert unexplained == {}, f"over {MAX_LINES} lines without a '{LENGTH_REASON}' line in the docstring"


def test_a_length_reason_is_read_from_the_docstring(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""Module.\n\nLength: one table of 80 specs; splitting it would scatter them.\n"""\n')
    assert _length_reason(p).startswith("one table")
    p.write_text('"""Module without a reason."""\n')
    assert _length_reason(p) == ""

"""The stage shape: generated docs in sync, small modules, no stage importing another,
declarations importable without the methods' heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from audiopipe.stages import STAGES
from audiopipe.stages.docs import DOC_PATH, markdown_all

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "audiopipe" / "stages"


def test_docs_stages_md_is_generated_from_the_declarations():
    assert (ROOT / DOC_PATH).read_text() == markdown_all(), (
        "docs/stages.md is out of date: run `python -m audiopipe.stages.docs`"
    )


def test_no_module_over_500_lines_without_a_reason():
    for p in PKG.rglob("*.py"):
        lines = p.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        assert lines <= 500 or "over 500 lines" in doc, f"{p.relative_to(ROOT)}: {lines} lines"


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["audiopipe", "stages"] and len(parts) > 2 and parts[2] in STAGES:
        return parts[2]
    return None


def test_stages_do_not_import_each_other():
    bad = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(ROOT).with_suffix("")
        me = _stage_of(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        for node in ast.walk(ast.parse(p.read_text())):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for m in mods:
                other = _stage_of(m)
                if other and other != me:
                    bad.append(f"{rel}: {m}")
    assert bad == []


def test_declarations_load_without_the_methods_libraries():
    code = (
        "import sys\n"
        "from audiopipe.config import stage_problems\n"
        "from audiopipe.stages import STAGES, stage_class\n"
        "[stage_class(n).params for n in STAGES]\n"
        "stage_problems('d', {'classify': {'target': 'x'}, 'segment': {'mode': 'novelty'}})\n"
        "heavy = ('sklearn', 'scipy', 'pandas', 'matplotlib', 'pyarrow', 'deltalake', 'zarr',"
        " 'prefect', 'skops')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]"

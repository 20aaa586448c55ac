"""``docs/stages.md``: every stage's parameters, generated from their declarations.

``python -m audiopipe.stages.docs`` rewrites the file; ``tests/stages/test_docs.py`` fails
when it is out of date.

Examples
--------
>>> "## `segment`" in markdown_all()
True
"""

from __future__ import annotations

import sys
from pathlib import Path

from audiopipe.stages import STAGES, stage_class
from audiopipe.stages.params import markdown

__all__ = ["markdown_all", "DOC_PATH"]

#: where the generated document lives, relative to the repository root
DOC_PATH = Path("docs") / "stages.md"


def markdown_all() -> str:
    """The generated document: one section per stage, in ``STAGES`` order."""
    rows = []
    for name in STAGES:
        st = stage_class(name)
        summary = st.summary + (
            " Clip by clip: a run processes only new clips and drops removed ones."
            if st.clipwise
            else ""
        )
        rows.append((name, summary, st.params))
    return markdown(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - a developer's command
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not Path(sys.argv[1]).is_dir()):
        sys.exit("usage: python -m audiopipe.stages.docs [REPOSITORY_ROOT (an existing folder)]")
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    (root / DOC_PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / DOC_PATH).write_text(markdown_all())
    print(f"wrote {root / DOC_PATH}")

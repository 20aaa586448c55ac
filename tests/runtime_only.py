"""Run audiopipe as an install without extras would: only runtime distributions importable.

``python tests/runtime_only.py ALLOWED WORKDIR`` (run by tests/test_dependencies.py):
``ALLOWED`` is a JSON list of the distributions that ``pip install audiopipe`` (no extras)
installs, computed from ``pyproject.toml`` and the installed metadata. Every other installed
distribution (pytest, librosa, moto, ...) is made unimportable by a finder placed first on
``sys.meta_path``, exactly as if it were absent from the venv. Then every module of
``audiopipe`` and ``flows`` is imported, the demo corpus (2 clips a class) is ingested with
the plain pipeline functions, and every stage that ``datasets.yaml`` declares for ``demo``
runs on it, plus ``separate`` (NMF) and ``transcribe`` on one clip. A module that this needs
but no runtime dependency provides, directly or through a library's optional import, fails
here with ``ModuleNotFoundError`` naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _guard(allowed: set[str]) -> set[str]:
    import importlib.abc
    import importlib.metadata as md
    import re

    def canon(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    blocked = {
        mod
        for mod, dists in md.packages_distributions().items()
        if not any(canon(d) in allowed for d in dists)
    }
    blocked -= {"audiopipe", "flows"}
    # loaded by site's .pth hooks before any code runs (setuptools' _distutils_hack)
    blocked -= {m.partition(".")[0] for m in sys.modules}

    class RuntimeOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):  # noqa: ANN001
            if name.partition(".")[0] in blocked:
                raise ModuleNotFoundError(
                    f"No module named {name!r} (installed here, but not by audiopipe's "
                    "runtime dependencies: declare it in pyproject.toml or drop the import)",
                    name=name,
                )
            return None

    sys.meta_path.insert(0, RuntimeOnly())
    return blocked


def main(allowed_json: str, workdir: str) -> None:
    import json
    import time

    t0 = time.monotonic()
    blocked = _guard(set(json.loads(allowed_json)))

    import importlib
    import pkgutil

    import audiopipe
    import flows

    modules = [
        info.name
        for pkg in (audiopipe, flows)
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
    ]
    for name in modules:
        importlib.import_module(name)
    print(f"imported {len(modules)} modules ({time.monotonic() - t0:.1f} s)", flush=True)

    from audiopipe.config import load_config
    from audiopipe.demo import make_demo_corpus
    from audiopipe.ingest import extract_shard, plan_ingest, publish
    from audiopipe.stages import get_stage
    from audiopipe.stages._common import new_stage_run_id
    from audiopipe.store import open_dataset

    work = Path(workdir)
    src = make_demo_corpus(work / "demo", n_per_class=2)
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "datasets.yaml").read_text().replace("data/demo", str(src))
    text = text.replace("storage: data/out", f"storage: {work / 'out'}")
    (work / "datasets.yaml").write_text(text)
    cfg = load_config(work / "datasets.yaml")
    plan = plan_ingest(cfg, "demo")
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    ds = open_dataset(cfg.storage_root, "demo")
    print(f"ingested {ds.table('clips').num_rows} clips ({time.monotonic() - t0:.1f} s)")
    one = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()[:1]
    todo = {
        **cfg.dataset("demo").stages,
        "separate": {"method": "nmf", "clips": one},
        "transcribe": {"clips": one},
    }
    for name, params in todo.items():
        report = get_stage(name)(ds, dict(params), run_id=new_stage_run_id(name))
        print(f"{name}: {report.get('metrics')} ({time.monotonic() - t0:.1f} s)", flush=True)
    leaked = sorted({m.partition(".")[0] for m in sys.modules} & blocked)
    assert not leaked, f"blocked modules were imported anyway: {leaked}"
    print("ran", ", ".join(todo))


if __name__ == "__main__":
    # not this script's folder first on sys.path: tests/flows would shadow the flows package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    main(sys.argv[1], sys.argv[2])

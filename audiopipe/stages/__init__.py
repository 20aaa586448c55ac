"""Downstream stages on an ingested dataset (scikit-learn conventions, no Prefect).

``STAGES`` maps a stage name (as used under ``stages:`` in ``datasets.yaml`` and by
``audiopipe stage NAME DATASET``) to ``"module:function"``; the function has the
signature ``run(ds: Dataset, params: dict, *, run_id: str) -> dict`` and returns a
small report (metrics, table names, paths). Modules are imported only when run.

Examples
--------
>>> sorted(STAGES)[:3]
['beats', 'classify', 'fingerprint']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

STAGES: dict[str, str] = {
    "classify": "audiopipe.stages.classify:run",
    "tag": "audiopipe.stages.tag:run",
    "segment": "audiopipe.stages.segment:run",
    "recommend": "audiopipe.stages.recommend:run",
    "fingerprint": "audiopipe.stages.fingerprint:run",
    "beats": "audiopipe.stages.beats:run",
    "separate": "audiopipe.stages.separate:run",
    "retrieve": "audiopipe.stages.retrieve:run",
    "transcribe": "audiopipe.stages.transcribe:run",
}


def get_stage(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run`` function of stage ``name``, with a clear error for unknown names."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r} (known: {', '.join(sorted(STAGES))})")
    module, func = STAGES[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise NotImplementedError(
                f"stage {name!r} is declared but {module} is not built yet"
            ) from None
        raise
    return getattr(mod, func)


__all__ = ["STAGES", "get_stage"]

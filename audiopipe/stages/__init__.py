"""Downstream stages on an ingested dataset (scikit-learn conventions, no Prefect).

``STAGES`` maps a stage name (as used under ``stages:`` in ``datasets.yaml`` and by
``audiopipe stage NAME DATASET``) to ``"module:Class"``, a
:class:`~audiopipe.stages.base.Stage`. Stage modules import only the standard library and
numpy at import time (their methods import scikit-learn, scipy, matplotlib when they run),
so validating ``datasets.yaml`` against every stage's declared parameters stays quick.

Run one with :func:`run_stage` (recorded, incremental, versioned: see
:mod:`audiopipe.stages.runner`); the contract is in :mod:`audiopipe.stages.base`.

Examples
--------
>>> sorted(STAGES)[:3]
['beats', 'classify', 'fingerprint']
>>> [p.name for p in stage_class("segment").params][:2]
['mode', 'events']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audiopipe.stages.base import Stage

STAGES: dict[str, str] = {
    "classify": "audiopipe.stages.classify:Classify",
    "tag": "audiopipe.stages.tag:Tag",
    "segment": "audiopipe.stages.segment:Segment",
    "recommend": "audiopipe.stages.recommend:Recommend",
    "fingerprint": "audiopipe.stages.fingerprint:Fingerprint",
    "beats": "audiopipe.stages.beats:Beats",
    "separate": "audiopipe.stages.separate:Separate",
    "retrieve": "audiopipe.stages.retrieve:Retrieve",
    "transcribe": "audiopipe.stages.transcribe:Transcribe",
}


def stage_class(name: str) -> type[Stage]:
    """The :class:`~audiopipe.stages.base.Stage` class of stage ``name`` (clear error if unknown)."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r} (known: {', '.join(sorted(STAGES))})")
    module, cls = STAGES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def __getattr__(name: str) -> Any:  # run_stage & co. without importing the runner up front
    if name in ("run_stage", "run_stages", "run_named"):
        from audiopipe.stages import runner  # import-cycle-ok: lazy re-export

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STAGES", "stage_class", "run_stage", "run_stages", "run_named"]

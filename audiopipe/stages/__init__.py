"""Downstream stages on an ingested dataset (scikit-learn conventions, no Prefect).

``STAGES`` maps a stage name (as used in ``datasets.yaml`` and ``audiopipe stage``)
to the function that runs it on a :class:`audiopipe.store.Dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STAGES: dict[str, Callable[..., Any]] = {}

__all__ = ["STAGES"]

"""Shared fixtures: where the real corpora are, and the rule for skipping without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPORA = Path(os.environ.get("AUDIOPIPE_CORPORA", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora")).resolve()


@pytest.fixture(scope="session")
def corpora() -> Path:
    """Path of ../shared/corpora.

    Skips with a visible reason when absent (a user's clone); when CI is set the
    corpora are required, so their absence fails instead of silently skipping.
    """
    if not CORPORA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the corpora folder {CORPORA} is missing")
        pytest.skip(f"real corpora not found at {CORPORA} (set AUDIOPIPE_CORPORA)")
    return CORPORA

"""One turn of an ingest or rebuild: the dataset's lock held, the plan made, and no data
published while a stage of the dataset runs.

A stage commits outputs computed from the clips, features and frames it opened: an ingest
publishing new data tables under it would leave a stage run that finished after the ingest
(and looked as if it covered it) with outputs of the clips of before. A turn with nothing to
publish (nothing new, changed, removed or relabeled: only its ``runs`` row, at the versions of
before) changes nothing a stage reads, so it goes through while a stage runs; a scheduled
ingestion whose turn comes during a long stage no longer fails every turn.

The dataset's lock is held from before the plan to the publish: a stage does not start
while it is held (:func:`audiopipe.store.lock.stage_lock` waits for it), so the stages seen
running when the plan is made are the only ones, and no window opens between the check and
the publish.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from audiopipe.ingest.plan import IngestPlan, plan_ingest
from audiopipe.store.location import Location
from audiopipe.store.lock import dataset_lock, stages_refusal, stages_running

if TYPE_CHECKING:
    from audiopipe.config import Config

__all__ = ["ingest_turn"]


@contextmanager
def ingest_turn(
    cfg: Config,
    dataset: str | None,
    kind: str = "ingest",
    *,
    wait_s: float = 0.0,
    stages_wait_s: float = 5.0,
    **plan_kw: Any,
) -> Iterator[IngestPlan]:
    """Hold the dataset's lock and give the turn's plan (:func:`plan_ingest` with
    ``plan_kw``) to extract and publish in the block.

    Waits up to ``wait_s`` for another ingest, rebuild or vacuum holding the lock. When
    stages of the dataset run, the plan is made reading only (a killed run's commits are
    undone by a later turn); a plan that changes data then waits up to ``stages_wait_s`` for
    them to end (and is made again, recovering first) or raises
    :class:`~audiopipe.store.lock.DatasetLocked` naming each (pid, host, since when), before
    any work or ``runs`` row. A plan with nothing to publish is given as it is.
    """
    loc = Location(cfg.storage_root, cfg.dataset(dataset).name)
    with dataset_lock(loc, kind, wait_s=wait_s):
        # (fence: a stage run judged dead must not commit after a recovery undid its writes)
        running = stages_running(loc, fence=kind)
        plan = plan_ingest(cfg, dataset, kind=kind, recover_first=not running, **plan_kw)
        if running and plan.changes_data:
            deadline = time.monotonic() + stages_wait_s
            while (running := stages_running(loc, fence=kind)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if running:
                raise stages_refusal(loc, kind, running, " (this one has data to publish)")
            plan = plan_ingest(cfg, dataset, kind=kind, **plan_kw)  # (none can start now)
        yield plan

"""The removal guard at publish time: files gone and stored files that now fail, the
failures counted over the capped runs of one pass.

A stored file processed again (changed, or any file in a rebuild) that now fails is removed
like a file gone. A run removing more than ``max_removed_share`` of the stored clips is
refused (nothing is published). A run capped by ``max_files_per_run`` sees only a slice of
the stored files; a dataset truncated in place would then lose a slice a run below the
guard. So the failures of the capped runs of one *pass* (the runs while stored files are
deferred to later runs: it ends with a run that defers none) are counted together: each run
records in its ``runs`` row (``removal_pass``) how many stored files the pass processed again
and how many of those failed (and were removed), and the next run adds its own. Files gone
from the source are counted per run, as the plan-time guard counts them: a person deleting a
file before each run of a pass is no sign of damage, and counted across the pass they added up
until one broken file was refused run after run. A run is refused when its files gone plus the
pass's failures, plus - from :data:`PROJECT_MIN_FAILURES` failures in the pass on - the pass's
failure share carried over the stored files still deferred, exceed ``max_removed_share`` of the
clips the pass started from. One broken file among healthy changes (and deletions) is never
refused for itself (one failure is no rate, and healthy files dilute the rate), while a
truncated dataset ingested one file a run is refused at its second failure. A run that
``allow_removals`` starts a new pass (a person confirmed what it removed).

Examples
--------
>>> from audiopipe.catalog import Diff, FileEntry
>>> stored = {f"/{c}.wav": None for c in "abcd"}
>>> d = Diff(new=[], changed=[FileEntry("/a.wav", 1, 1.0)], removed=[], unchanged=[],
...          deferred=[FileEntry(f"/{c}.wav", 1, 1.0) for c in "bcd"])
>>> class P: diff, stored_clips, kind, allow_removals = d, stored, "ingest", False
>>> tally(P, ["/a.wav"]).projected, tally(P, []).projected  # one failure: not carried
(1.0, 0.0)
>>> tally(P, ["/a.wav"], before=Tally(removed=1, redone=1, failed=1)).projected  # 2 + 2/2 x 3
5.0
>>> d.removed = [FileEntry("/e.wav", 1, 1.0)]  # a file gone: this run's, not the pass's
>>> tally(P, []).projected, tally(P, [], before=Tally(removed=1, redone=1, failed=1)).record()
(1.0, '{"removed": 1, "redone": 2, "failed": 1}')
"""

from __future__ import annotations

import json
from collections.abc import Set
from dataclasses import dataclass

import pyarrow as pa

from audiopipe.ingest.plan import IngestPlan, RemovalRefusedError
from audiopipe.store.runs import last_run

__all__ = ["PROJECT_MIN_FAILURES", "Tally", "check_removals", "pass_before", "tally"]

#: failures a pass of capped runs must see before their share is carried over the deferred files
PROJECT_MIN_FAILURES = 2


@dataclass(frozen=True)
class Tally:
    """What the runs of a pass removed: ``redone`` stored files processed again (files of
    lost shards left out: their outcome is unknown), ``failed`` of those that failed and were
    removed; ``removed``: those, and with a run's own figures added its files gone too. With
    a run's own figures: ``n_stored`` clips before the run, ``deferred`` stored files left for
    later runs and the ``projected`` removals the guard weighs."""

    removed: int = 0
    redone: int = 0
    failed: int = 0
    n_stored: int = 0
    deferred: int = 0
    projected: float = 0.0
    removed_before: int = 0  # (stored files that failed in the pass before this run)

    @property
    def base(self) -> int:
        """The clips the pass started from (those there now and those it removed before)."""
        return self.n_stored + self.removed_before

    def record(self) -> str:
        """The ``removal_pass`` JSON of the run's row (the pass's failures: files gone are
        counted per run)."""
        return json.dumps({"removed": self.failed, "redone": self.redone, "failed": self.failed})


def pass_before(plan: IngestPlan) -> Tally:
    """The pass an ingest continues: the ``removal_pass`` of the last successful run (an
    empty tally when it deferred no stored file, allowed removals, or was a rebuild)."""
    if plan.kind != "ingest":
        return Tally()
    prev = last_run(plan.context.location)
    if prev is None or prev.kind != "ingest" or not prev.removal_pass:
        return Tally()
    try:
        d = json.loads(prev.removal_pass)  # ("removed" of older rows counted files gone too)
        return Tally(removed=int(d["failed"]), redone=int(d["redone"]), failed=int(d["failed"]))
    except (ValueError, KeyError, TypeError):  # unreadable: a new pass (the run alone is guarded)
        return Tally()


def tally(
    plan: IngestPlan, dropped: list[str], kept: Set[str] = frozenset(), before: Tally | None = None
) -> Tally:
    """The pass ``before`` (an empty one by default) with this run added: its files gone (for
    this run only), the stored files it ``dropped`` (they failed), the stored files it processed again (those of
    ``kept``, lost shards, left out) and, from :data:`PROJECT_MIN_FAILURES` failures in the pass
    on, the pass's failure share carried over the stored files it deferred."""
    b = before or Tally()
    d, stored = plan.diff, plan.stored_clips
    redone = b.redone + sum(f.uri in stored and f.uri not in kept for f in d.to_process)
    failed = b.failed + len(dropped)
    removed = failed + len(d.removed)
    later = sum(f.uri in stored for f in d.deferred)
    projected = float(removed)
    if failed >= PROJECT_MIN_FAILURES and redone and later:
        projected += failed / redone * later
    return Tally(removed, redone, failed, len(stored), later, projected, b.failed)


def check_removals(
    plan: IngestPlan,
    dropped: list[str],
    errors: pa.Table | None,
    lost: Set[str],
    kept: Set[str] = frozenset(),
) -> str | None:
    """Refuse (:class:`RemovalRefusedError`, telling files that failed from files whose shard
    was ``lost``) a run whose pass would remove more than ``max_removed_share`` of its clips,
    counting the files gone and the stored files that now fail (``dropped``); else return the
    ``removal_pass`` to record in the run's row (None: the pass ends with this run)."""
    t = tally(plan, dropped, kept, pass_before(plan))
    if not plan.allow_removals and dropped and t.projected > plan.max_removed_share * t.base:
        raise RemovalRefusedError(_message(plan, t, dropped, errors, lost))
    if plan.kind != "ingest" or plan.allow_removals or not (t.deferred or kept & set(plan.stored_clips)):
        return None
    return t.record()


def _message(plan: IngestPlan, t: Tally, dropped: list[str], errors: pa.Table | None, lost: Set[str]) -> str:
    d, n_stored = plan.diff, len(plan.stored_clips)
    n = len(d.removed) + len(dropped)
    name, kind = plan.context.dataset, plan.kind
    why: dict[str, str] = {}  # uri -> what it failed on (its last error)
    if errors is not None:
        e = errors.select(["uri", "step", "error_type"]).to_pydict()
        for u, step, type_ in zip(e["uri"], e["step"], e["error_type"], strict=True):
            why[u] = f"{step}/{type_}"
    examples = ", ".join(f"{u.rsplit('/', 1)[-1]} ({why.get(u, 'failed')})" for u in sorted(dropped)[:3])
    gone = f" and {len(d.removed)} whose files are gone" if d.removed else ""
    capped = t.projected > t.removed
    nb = t.removed_before
    earlier = (f", after {nb} stored {'file' if nb == 1 else 'files'} that failed "
               f"{'was' if nb == 1 else 'were'} removed by the capped runs before it in this pass "
               f"({t.failed} failures of the {t.base} clips the pass started from)"
               if nb else "")
    ahead = (f" now and, at the rate stored files failed in this pass ({t.failed} of {t.redone}), "
             f"about {round(t.projected - t.removed)} more of the {t.deferred} stored files "
             "deferred by max_files_per_run"
             if capped else "")
    n_lost = len(set(lost) & set(dropped))
    if n_lost:
        gone += (f" ({n_lost} of them because a worker was lost, not the file: for those a "
                 "plain rerun is the way, not --allow-removals)")
    return (
        f"dataset {name!r}: this run would remove {n} of its {n_stored} clips{ahead}{earlier} "
        f"(more than max_removed_share={plan.max_removed_share:g}): {len(dropped)} "
        f"{'file' if len(dropped) == 1 else 'files'} processed again that now "
        f"{'fails' if len(dropped) == 1 else 'fail'} (e.g. {examples}{', ...' if len(dropped) > 3 else ''})"
        f"{gone}. Were the files emptied or truncated (a failed sync, a full disk)? Nothing was "
        f"published: the dataset stays at its previous version"
        f"{' (a rerun reuses the work done)' if kind == 'ingest' else ''}. "
        f"If the files really are broken, run `audiopipe {kind} {name} --allow-removals`"
        f"{' (each capped run is checked again)' if capped or earlier else ' once'}, "
        f"or raise datasets.{name}.max_removed_share"
    )

"""Run shards of work on worker processes and survive the one item that kills its worker.

One place for the fault handling every fan-out shares (ingest's shards of files in
``flows/ingest.py`` on Prefect's Dask task runner, clip stages' shards of clips in
:mod:`audiopipe.stages.cluster` on a plain ``distributed.Client``): a shard whose worker
process dies is split in halves and both are resubmitted, until the item that kills every
worker is alone; a lone item is tried ``lone_attempts`` times, then its result is the
exception ``crashed(shard, n, err)`` builds, and every other item is kept. Any other
exception a shard raises is its result (the caller records it). Pure standard library:
the caller brings ``submit`` and ``as_completed`` of whatever executor it uses.

Examples
--------
>>> from concurrent.futures import ThreadPoolExecutor, as_completed
>>> with ThreadPoolExecutor(2) as ex:
...     out = run_shards(
...         [[1, 2], [3]], lambda s: ex.submit(sum, s), as_completed,
...         split=lambda s: [s[: len(s) // 2], s[len(s) // 2 :]], size=len,
...     )
>>> [r for _, r in out]
[3, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["run_shards", "balanced_runs", "is_lost_worker", "WorkerCrashed", "LONE_ATTEMPTS"]

S = TypeVar("S")

#: tries of an item alone in its shard before a worker death is blamed on the item
LONE_ATTEMPTS = 2


class WorkerCrashed(RuntimeError):
    """An item whose processing kills the worker process, isolated alone in its shard."""

    kind = "worker_crashed"


def is_lost_worker(err: BaseException) -> bool:
    """Dask's ``KilledWorker`` (the worker process died while running the task, as often
    as the scheduler's ``allowed-failures``), by name: Prefect's futures re-raise it too."""
    return type(err).__name__ == "KilledWorker"


def balanced_runs(items: Sequence[S], weights: Sequence[float], k: int) -> list[list[S]]:
    """``items`` cut into at most ``k`` consecutive runs of near-equal weight (none empty).

    An item goes to the run its middle falls in, so no run is a small leftover: 15 equal
    items in 4 runs are 4, 3, 4 and 4, and the workers finish together.

    >>> [len(r) for r in balanced_runs(list(range(15)), [1] * 15, 4)]
    [4, 3, 4, 4]
    """
    k = max(1, k)
    target = sum(weights) / k or 1.0
    runs: list[list[S]] = [[] for _ in range(k)]
    done = 0.0
    for it, w in zip(items, weights, strict=True):
        runs[min(k - 1, int((done + w / 2) / target))].append(it)
        done += w
    return [r for r in runs if r]


def _crashed(shard: Any, n: int, err: BaseException) -> BaseException:
    return WorkerCrashed(
        f"processing this item killed the worker process every time it was tried, {n} times "
        f"alone ({err}); it was isolated and skipped"
    )


def run_shards(
    shards: Sequence[S],
    submit: Callable[[S], Any],
    as_completed: Callable[[list[Any]], Iterable[Any]],
    *,
    split: Callable[[S], list[S]],
    size: Callable[[S], int],
    lost: Callable[[BaseException], bool] = is_lost_worker,
    crashed: Callable[[S, int, BaseException], BaseException] = _crashed,
    lone_attempts: int = LONE_ATTEMPTS,
    max_in_flight: int | None = None,
    safe_in_flight: int | None = None,
    log: Callable[[str], None] | None = None,
    on_done: Callable[[S, Any], None] | None = None,
) -> list[tuple[S, Any]]:
    """Run every shard (``submit(shard)`` returns a future); ``(shard, result)`` in order.

    ``as_completed(futures)`` yields futures as they finish and ``future.result()``
    returns or raises. A result is the shard's value, or the exception it raised (the
    caller records it), or ``crashed(...)`` for a lone item that killed its worker
    ``lone_attempts`` times. Halves of a shard replace it in the returned order.
    ``on_done(shard, result)`` is called as each shard settles (a progress bar).

    ``max_in_flight`` (e.g. the cluster's worker threads) bounds the shards submitted
    and not finished: then no shard waits on a worker behind another, and a worker's
    death is blamed on the one shard it was running, not on shards queued behind it
    (a scheduler that allows no retries fails those too). ``None`` submits everything
    at once.

    ``safe_in_flight`` (e.g. the worker threads, with ``max_in_flight`` twice that) runs
    optimistically: ``max_in_flight`` shards in flight, so a worker starts its next shard
    without waiting for the round trip to the caller, until the first worker death; from
    then on ``safe_in_flight``. A death seen with more shards in flight than the safe
    bound splits every shard it took (innocent halves just succeed) but never counts
    against a lone item: only deaths in the safe mode make an item poison. Even then a
    scheduler may queue two shards on one worker (Dask places tasks as it likes): a lone
    item whose worker died while other shards were in flight is tried again *alone*
    (nothing else submitted until it settles), and only a death seen alone can make it
    poison.
    """
    order: list[Any] = list(shards)
    results: dict[int, Any] = {}
    lone_deaths: dict[int, int] = {}
    say = log or (lambda _msg: None)
    pending: list[Any] = list(order)  # next to submit, first first
    running: dict[int, tuple[Any, Any, bool]] = {}  # future, shard, submitted optimistically
    limit = max_in_flight if max_in_flight and max_in_flight > 0 else None
    safe = safe_in_flight if safe_in_flight and safe_in_flight > 0 else None
    optimistic = safe is not None and (limit is None or limit > safe)

    solo: set[int] = set()  # lone items that died beside other shards: rerun alone

    def fill() -> None:
        while pending and (limit is None or len(running) < limit):
            if any(id(x) in solo for _, x, _ in running.values()):
                return  # a lone item is being tried alone: nothing beside it
            if id(pending[0]) in solo and running:
                return  # wait until it can run alone
            s = pending.pop(0)
            f = submit(s)
            running[id(f)] = (f, s, optimistic)
            if id(s) in solo:
                return

    fill()
    while running:
        for fut in as_completed([f for f, _, _ in running.values()]):
            _, s, was_optimistic = running.pop(id(fut))
            try:
                r = fut.result()
            except Exception as err:  # noqa: BLE001 - a failed shard is a result
                if lost(err) and optimistic:
                    optimistic, limit = False, safe
                    say("a worker died: one shard per worker thread from now on")
                if lost(err) and was_optimistic and size(s) == 1:
                    pending.insert(0, s)  # maybe queued behind the poison: not counted
                    break
                if lost(err) and size(s) > 1:
                    halves = [h for h in split(s) if size(h)]
                    say(f"a shard of {size(s)} items killed its worker: retrying it as halves")
                    i = next(j for j, x in enumerate(order) if x is s)
                    order[i : i + 1] = halves
                    pending[:0] = halves
                    break
                if lost(err):
                    n = lone_deaths[id(s)] = lone_deaths.get(id(s), 0) + 1
                    if id(s) not in solo:
                        # a scheduler may queue two shards on one worker whatever the bound:
                        # a death beside another shard is blamed only once seen alone
                        solo.add(id(s))
                        say("a shard of 1 item lost its worker beside others: retrying it alone")
                        pending.insert(0, s)
                        break
                    if n < lone_attempts:
                        # alone from the start (nothing to split), or a worker lost for
                        # another reason: one more try before calling the item poison
                        say("a shard of 1 item lost its worker: retrying")
                        pending.insert(0, s)
                        break
                    r = crashed(s, n, err)
                else:
                    r = err
            results[id(s)] = r
            if on_done is not None:
                on_done(s, r)
            if limit is not None:
                break  # a slot is free: submit the next shard before waiting again
        fill()
    return [(s, results[id(s)]) for s in order]

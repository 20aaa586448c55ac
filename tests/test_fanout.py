"""The fault handling of every fan-out (:func:`audiopipe.fanout.run_shards`) on a simulated
cluster whose workers queue tasks and die with everything queued on them, as Dask's do."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from audiopipe.fanout import WorkerCrashed, run_shards


class KilledWorker(Exception):  # noqa: N818 - Dask's name, which is_lost_worker matches
    pass


class FakeCluster:
    """``n`` one-thread workers; a task goes to the shortest queue; a shard holding
    ``poison`` kills its worker and every task queued on it (each gets KilledWorker)."""

    def __init__(self, n: int, poison: int, pile: bool = False) -> None:
        self.queues: list[list[tuple[Future, list[int]]]] = [[] for _ in range(n)]
        self.poison = poison
        self.pile = pile  # every task to the first worker (a scheduler placing as it likes)
        self.turn = 0
        self.max_queued = 0
        self.tries: list[list[int]] = []

    def submit(self, shard: list[int]) -> Future:
        f: Future = Future()
        (self.queues[0] if self.pile else min(self.queues, key=len)).append((f, shard))
        self.max_queued = max(self.max_queued, *(len(q) for q in self.queues))
        return f

    def _step(self) -> None:
        busy = [q for q in self.queues if q]
        q = busy[self.turn % len(busy)]
        self.turn += 1
        f, shard = q[0]
        self.tries.append(list(shard))
        if self.poison in shard:
            for g, _ in q:
                g.set_exception(KilledWorker("worker died"))
            q.clear()
        else:
            q.pop(0)
            f.set_result(sum(shard))

    def as_completed(self, fs: list[Future]):
        seen: set[int] = set()
        while len(seen) < len(fs):
            done = [f for f in fs if f.done() and id(f) not in seen]
            if not done:
                self._step()
                continue
            for f in done:
                seen.add(id(f))
                yield f


def _run(cluster: FakeCluster, shards, **kw):
    return run_shards(
        shards, cluster.submit, cluster.as_completed,
        split=lambda s: [s[: len(s) // 2], s[len(s) // 2 :]], size=len, **kw,
    )


@pytest.mark.parametrize("size", [1, 3])
def test_prefetching_blames_only_the_poison(size):
    items = list(range(1, 25))
    shards = [items[i : i + size] for i in range(0, len(items), size)]
    cl = FakeCluster(2, poison=11)
    out = _run(cl, shards, max_in_flight=4, safe_in_flight=2)
    assert cl.max_queued == 2  # the workers really had a shard waiting behind the running one
    crashed = [s for s, r in out if isinstance(r, WorkerCrashed)]
    assert crashed == [[11]]  # the poison alone; nothing queued behind it is blamed
    kept = [(s, r) for s, r in out if not isinstance(r, BaseException)]
    assert sorted(i for s, _ in kept for i in s) == [i for i in items if i != 11]
    assert all(r == sum(s) for s, r in kept)
    assert sum(t == [11] for t in cl.tries) >= 2  # tried alone twice before it was blamed


@pytest.mark.parametrize("kw", [{"max_in_flight": 4}, {"max_in_flight": 2, "safe_in_flight": 2}])
def test_a_lone_item_queued_behind_the_poison_is_tried_alone_before_it_is_blamed(kw):
    """Without a safe bound, or with one but a scheduler that queues both shards in flight
    on one worker (seen with Dask under load: an innocent clip was blamed), an innocent lone
    item dies beside the poison; it is retried alone and only the poison is blamed."""
    cl = FakeCluster(2, poison=11, pile="safe_in_flight" in kw)
    out = _run(cl, [[i] for i in range(1, 25)], **kw)
    crashed = sorted(s[0] for s, r in out if isinstance(r, WorkerCrashed))
    assert crashed == [11]
    assert sorted(s[0] for s, r in out if not isinstance(r, BaseException)) == [
        i for i in range(1, 25) if i != 11]
    assert cl.max_queued >= 2  # innocents really sat behind the poison


def test_no_death_keeps_prefetching_and_order():
    cl = FakeCluster(2, poison=-1)
    shards = [[i, i + 1] for i in range(0, 20, 2)]
    out = _run(cl, shards, max_in_flight=4, safe_in_flight=2)
    assert [s for s, _ in out] == shards and [r for _, r in out] == [sum(s) for s in shards]
    assert cl.max_queued == 2 and len(cl.tries) == len(shards)

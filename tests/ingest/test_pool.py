"""Whole files in several threads, handed back in order: the same results as one thread
whatever each item costs, failures where they belong, bounded memory, threads that stop."""

from __future__ import annotations

import random
import threading
import time

import pytest

from audiopipe.ingest.pool import ordered_streams


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("audiopipe-files")]


def _wait_for_no_threads() -> None:
    deadline = time.monotonic() + 10
    while _pool_threads():
        assert time.monotonic() < deadline, "the pool's threads did not stop"
        time.sleep(0.02)


def test_results_come_back_in_order_whatever_each_item_costs():
    rng = random.Random(0)
    costs = {i: rng.choice([0.0, 0.001, 0.02]) for i in range(40)}
    ran_in: dict[int, str] = {}

    def work(i):
        ran_in[i] = threading.current_thread().name
        for k in range(i % 5):
            time.sleep(costs[i] / 5)
            yield (i, k)

    got = [(i, list(r)) for i, r in ordered_streams(iter(range(40)), work, 3, depth=2)]
    assert got == [(i, [(i, k) for k in range(i % 5)]) for i in range(40)]
    assert len(set(ran_in.values())) > 1, "the items did not run in several threads"
    _wait_for_no_threads()


def test_an_item_that_fails_raises_where_it_failed_and_the_others_go_on():
    def work(i):
        yield "start"
        if i == 2:
            raise ValueError(f"item {i} failed")
        yield "end"

    seen = []
    for i, results in ordered_streams(iter(range(5)), work, 2):
        try:
            seen.append((i, [r for r in results]))
        except ValueError as err:
            seen.append((i, str(err)))
    assert seen == [(0, ["start", "end"]), (1, ["start", "end"]), (2, "item 2 failed"),
                    (3, ["start", "end"]), (4, ["start", "end"])]  # fmt: skip


def test_a_failure_of_the_input_itself_is_raised_after_the_items_before_it():
    def items():
        yield from range(3)
        raise KeyboardInterrupt  # not an item's failure: the consumer must see it

    got = []
    with pytest.raises(KeyboardInterrupt):
        for _, results in ordered_streams(items(), lambda i: [i], 2):
            got.append(list(results))
    assert got == [[0], [1], [2]]
    _wait_for_no_threads()


def test_memory_stays_bounded_while_the_consumer_is_slow_and_threads_stop_with_it():
    taken, produced = [], []
    lock = threading.Lock()

    def items():
        for i in range(100):
            taken.append(i)
            yield i

    def work(i):
        for k in range(1000):
            with lock:
                produced.append((i, k))
            yield k

    stream = ordered_streams(items(), work, 2, window=3, depth=4)
    first, results = next(stream)
    time.sleep(0.5)  # the threads work ahead, only as far as the window and queues allow
    assert first == 0 and len(taken) <= 3, taken
    assert len(produced) <= 3 * (4 + 1), "the threads computed far ahead of the consumer"
    assert next(results) == 0
    stream.close()  # the consumer goes away
    _wait_for_no_threads()


def test_an_item_left_half_read_is_stopped_and_cleaned_up():
    closed = []

    def work(i):
        try:
            yield from range(100)
        finally:
            closed.append(i)

    out = []
    for _, results in ordered_streams(iter(range(4)), work, 2, depth=2):
        out.append(next(results))  # the consumer gives up on each item after one result
    assert out == [0, 0, 0, 0]
    _wait_for_no_threads()
    assert sorted(closed) == [0, 1, 2, 3], "an abandoned item's generator was not closed"


def test_the_input_is_taken_by_one_thread_at_a_time_in_order():
    inside = []

    def items():
        for i in range(30):
            inside.append(threading.current_thread().name)
            time.sleep(0.001)  # a walk that hashes: another thread asking now must wait
            yield i

    got = [i for i, r in ordered_streams(items(), lambda i: iter(()), 3) if not list(r)]
    assert got == list(range(30))

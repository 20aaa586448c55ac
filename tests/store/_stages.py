"""A stage run holding its lock in another thread, for the lock and vacuum tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from audiopipe.store.location import Location
from audiopipe.store.lock import stage_lock


@contextmanager
def stage_running(loc: Location, stage: str = "beats") -> Iterator[threading.Event]:
    """Hold ``stage``'s lock in a thread for the block, or until the event yielded is set
    (``threading.Timer(s, ev.set).start()``: the stage ends while the caller waits)."""
    loc.fs.makedirs(loc.base, exist_ok=True)
    taken, done = threading.Event(), threading.Event()

    def run() -> None:
        with stage_lock(loc, stage):
            taken.set()
            done.wait(30)

    t = threading.Thread(target=run)
    t.start()
    try:
        assert taken.wait(30)
        yield done
    finally:
        done.set()
        t.join()

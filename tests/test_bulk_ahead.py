"""Rows prepared in a thread ahead of the COPY (`ahead`), and the collector paused meanwhile."""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from campaigns.ledger.bulk import ahead, gc_paused


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(ahead(range(50), depth=2)) == list(range(50))
    assert list(ahead(iter(()))) == []


def test_the_thread_never_runs_more_than_depth_items_ahead() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for i in itertools.count():
            made.append(i)
            yield i

    stream = ahead(items(), depth=2)
    assert next(stream) == 0
    time.sleep(0.5)  # time for the thread to run ahead as far as it may
    # One taken, two waiting in the queue, one made and waiting for room.
    assert len(made) <= 4
    stream.close()


def test_an_error_in_the_thread_reaches_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("ligne 2 illisible")

    stream = ahead(items())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="ligne 2 illisible"):
        next(stream)


def test_a_consumer_that_stops_stops_the_thread() -> None:
    """The consumer's own error (a failed COPY) ends the producer: no thread left running."""

    def endless() -> Iterator[int]:
        yield from itertools.count()

    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(RuntimeError):
        for i in ahead(endless()):
            if i == 3:
                raise RuntimeError("COPY refusée")
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []


def test_collector_paused_then_restored() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()

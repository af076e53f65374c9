"""lib.fanout: one call per item, concurrently, in the caller's context."""

from __future__ import annotations

import threading
import time

from lib import fanout, log


def test_results_in_order_of_the_items() -> None:
    def slow_for_small(n: int) -> int:
        time.sleep(0.01 * (5 - n))  # the first items finish last
        return n * 10

    assert fanout.each(slow_for_small, [0, 1, 2, 3, 4], threads=5) == [0, 10, 20, 30, 40]


def test_each_call_sees_the_callers_trace_id() -> None:
    token = log.current_trace.set("0af7651916cd43dd8448eb211c80319c")
    try:
        traces = fanout.each(lambda _: log.current_trace.get(), range(6), threads=3)
    finally:
        log.current_trace.reset(token)
    assert traces == ["0af7651916cd43dd8448eb211c80319c"] * 6


def test_at_most_threads_at_once() -> None:
    running, most, lock = 0, 0, threading.Lock()

    def work(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    fanout.each(work, list(range(9)), threads=3)
    assert most == 3


def test_a_single_item_runs_inline() -> None:
    assert fanout.each(lambda _: threading.get_ident(), ["one"], threads=8) == [
        threading.get_ident()
    ]
    assert fanout.each(lambda _: 1, [], threads=8) == []

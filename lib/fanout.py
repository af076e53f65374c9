"""One call per item, concurrently: the Graph fetches of a delivery, the call requests of its
leads, the dials and conversation reads of a sweep."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def each(fn: Callable[[Item], Result], items: Sequence[Item], *, threads: int) -> list[Result]:
    """``fn`` of every item, in order: inline for a single item, else on at most ``threads``
    threads, each call in a copy of the caller's context (so its log lines carry the request's
    trace id, and its outbound requests forward it)."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(lambda ctx, item: ctx.run(fn, item), contexts, items))

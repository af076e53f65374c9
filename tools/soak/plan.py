"""The deliveries of a soak run, in the order they are sent: one signed leadgen delivery per
unique id, and repeats of some ids (the same body again, as Meta redelivers it)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from tools.fakes.samples import leadgen_delivery, meta_headers, new_leadgen_id

ADJACENT = "adjacent"  # sent right after the first delivery of its id: both in flight at once
LATER = "later"  # sent later in the run, after the first delivery was answered (mostly)


@dataclass(frozen=True)
class Delivery:
    """One delivery to send; ``repeat`` says how it repeats an id sent before (None: first)."""

    leadgen_id: str
    body: bytes
    headers: dict[str, str]
    repeat: str | None = None


def plan_deliveries(
    total: int, *, repeat_share: float, secret: str, seed: int = 0
) -> list[Delivery]:
    """``total`` deliveries, ``repeat_share`` of them repeats of an earlier id (half sent right
    after the first delivery of their id, half at a random later point), the rest unique."""
    if total < 1 or not 0 <= repeat_share < 1:
        raise ValueError("need at least one delivery and a repeat share in [0, 1)")
    rng = random.Random(seed)
    repeats = round(total * repeat_share)
    unique = total - repeats
    ids = [new_leadgen_id() for _ in range(unique)]
    order: list[tuple[float, str, str | None]] = [
        (float(i), lid, None) for i, lid in enumerate(ids)
    ]
    for k in range(repeats):
        first = rng.randrange(unique)
        position = first + 0.5 if k % 2 == 0 else rng.uniform(first + 1, unique + 1)
        order.append((position, ids[first], ADJACENT if k % 2 == 0 else LATER))
    order.sort(key=lambda item: item[0])
    created = int(time.time())
    signed = {lid: _signed(lid, secret, created) for lid in ids}
    return [Delivery(lid, *signed[lid], repeat=repeat) for _, lid, repeat in order]


def _signed(leadgen_id: str, secret: str, created_time: int) -> tuple[bytes, dict[str, str]]:
    body = leadgen_delivery(leadgen_id, created_time=created_time)
    return body, meta_headers(body, secret=secret)


def unique_ids(deliveries: list[Delivery]) -> list[str]:
    """The leadgen ids of ``deliveries``, each once, in first-sent order."""
    return list(dict.fromkeys(d.leadgen_id for d in deliveries))

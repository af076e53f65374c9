"""The load: deliveries sent at a fixed concurrency, each redelivered until it is answered 2xx.

Meta redelivers a webhook that was not answered 2xx (connection errors and timeouts included);
here redeliveries come after a short, doubling, jittered wait, at most ``max_attempts`` times and
never past the run's deadline, so the load always ends by itself. Every attempt is recorded.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tools.soak.plan import Delivery

REQUEST_TIMEOUT_SECONDS = 30.0


def is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


@dataclass
class Attempt:
    """One HTTP request: when it started (seconds into the load), how long it took, its status
    (None: no answer, ``error`` names the exception)."""

    started: float
    seconds: float
    status: int | None
    error: str | None = None

    @property
    def label(self) -> str:
        """The status, or the exception's name when there was no answer."""
        return str(self.status) if self.status is not None else str(self.error)


@dataclass
class Outcome:
    """A delivery and every attempt to send it; ``answer`` is the JSON of its 2xx answer."""

    delivery: Delivery
    attempts: list[Attempt] = field(default_factory=list)
    answer: dict[str, Any] | None = None

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and is_2xx(self.attempts[-1].status)

    @property
    def started(self) -> float:
        return self.attempts[0].started if self.attempts else float("inf")

    @property
    def ended(self) -> float:
        last = self.attempts[-1] if self.attempts else None
        return last.started + last.seconds if last else float("-inf")


@dataclass(frozen=True)
class Redelivery:
    """How a non-2xx answer is redelivered: waits from ``first_wait`` doubling to ``max_wait``
    (times a random 0.5-1 so that failed deliveries do not come back in step)."""

    max_attempts: int = 60
    first_wait: float = 0.1
    max_wait: float = 2.0

    def wait(self, attempt: int) -> float:
        return min(self.first_wait * 2 ** (attempt - 1), self.max_wait) * random.uniform(0.5, 1)


class Progress:
    """How many deliveries have started, shared between the load and the fault schedule."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = 0
        self.finished = threading.Event()
        self._lock = threading.Lock()

    def start_one(self) -> None:
        with self._lock:
            self.started += 1

    def wait_for(self, share: float, *, poll: float = 0.02) -> bool:
        """Block until ``share`` of the deliveries have started; False if the load ended first."""
        while self.started < share * self.total:
            if self.finished.wait(poll):
                return False
        return True


class Load:
    """Send ``deliveries`` to ``url`` with ``concurrency`` threads, in order, until ``deadline``
    (a ``time.monotonic()`` value)."""

    def __init__(
        self,
        url: str,
        deliveries: list[Delivery],
        *,
        concurrency: int,
        deadline: float,
        redelivery: Redelivery | None = None,
    ) -> None:
        self.url = url
        self.deliveries = deliveries
        self.concurrency = concurrency
        self.deadline = deadline
        self.redelivery = redelivery or Redelivery()
        self.progress = Progress(len(deliveries))
        self.began = 0.0
        self.seconds = 0.0
        self._stopping = threading.Event()

    def clock(self) -> float:
        """Seconds since the load began."""
        return time.monotonic() - self.began

    def run(self) -> list[Outcome]:
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        self.began = time.monotonic()
        try:
            with (
                httpx.Client(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as client,
                ThreadPoolExecutor(self.concurrency, thread_name_prefix="soak") as pool,
            ):
                try:
                    return list(pool.map(lambda d: self.deliver(client, d), self.deliveries))
                except BaseException:
                    self._stopping.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        finally:
            self.seconds = self.clock()
            self.progress.finished.set()

    def deliver(self, client: httpx.Client, delivery: Delivery) -> Outcome:
        """Send one delivery, and again after each non-2xx answer, within the limits."""
        outcome = Outcome(delivery)
        if self._past_deadline():
            return outcome
        self.progress.start_one()
        for number in range(1, self.redelivery.max_attempts + 1):
            attempt, answer = self._send(client, delivery)
            outcome.attempts.append(attempt)
            if is_2xx(attempt.status):
                outcome.answer = answer
                break
            pause = self.redelivery.wait(number)
            if self._past_deadline(pause):
                break
            time.sleep(pause)
        return outcome

    def _past_deadline(self, after: float = 0.0) -> bool:
        return self._stopping.is_set() or time.monotonic() + after > self.deadline

    def _send(self, client: httpx.Client, delivery: Delivery) -> tuple[Attempt, Any]:
        started = time.monotonic()
        try:
            response = client.post(self.url, content=delivery.body, headers=delivery.headers)
        except httpx.HTTPError as exc:
            elapsed = time.monotonic() - started
            return Attempt(started - self.began, elapsed, None, type(exc).__name__), None
        attempt = Attempt(started - self.began, time.monotonic() - started, response.status_code)
        try:
            return attempt, response.json()
        except ValueError:
            return attempt, None

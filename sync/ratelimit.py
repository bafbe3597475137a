"""A client-side rate limit: a token bucket that callers share (threads of one process).

    bucket = TokenBucket(25)      # 25 requests per second on average
    bucket.acquire()              # blocks until the request may go

An integration's HTTP client takes a token before each request (Stripe's: its `client.py`), so a
worker stays under the system's limits instead of collecting 429s; reconciliation jobs can share
the same bucket. The limit is per process: N processes with one API key share its budget, so give
each a limit of 1/N of it (e.g. `STRIPE_RATE_LIMIT_PER_SECOND`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cache


class TokenBucket:
    """At most `rate` acquisitions per second on average, and at most `burst` at once.

    `rate <= 0` means unlimited. `burst` defaults to 1: requests are spaced evenly (1/rate apart),
    so the far side never sees more than `rate` in any one-second window. `clock` and `sleep`
    are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> float:
        """Take a token if one is there and return 0; otherwise return how long to wait for one."""
        if self.unlimited:
            return 0.0
        with self._lock:
            self._refill(self._clock())
            # The epsilon absorbs float rounding: having slept exactly the wait this returned, the
            # caller finds its token (and never loops on ever smaller waits).
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a token is taken (True), or `timeout` seconds passed without one (False)."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire()
            if wait == 0.0:
                return True
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                wait = min(wait, left)
            self._sleep(wait)


@cache
def shared_bucket(rate: float) -> TokenBucket:
    """The process's one bucket of `rate` requests per second: callers that share a budget
    (the worker's threads; the catch-up's pages) share its tokens."""
    return TokenBucket(rate)

"""Client-side limits for HubSpot calls: a sliding-window rate limiter and a bounded retry policy."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class RateLimiter:
    """At most `calls` acquisitions in any `period` seconds (thread-safe sliding window)."""

    def __init__(
        self,
        calls: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if calls < 1 or period <= 0:
            raise ValueError("a rate limit needs calls >= 1 and period > 0")
        self.calls = calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a call is allowed, record it, and return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and now - self._stamps[0] >= self.period:
                    self._stamps.popleft()
                if len(self._stamps) < self.calls:
                    self._stamps.append(now)
                    return waited
                delay = self.period - (now - self._stamps[0])
            # NOTE: sleep outside the lock so other threads can see the window move too.
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: 429 waits Retry-After; 5xx and network errors back off."""

    max_attempts: int = 6
    backoff_base: float = 0.5  # seconds, doubled per attempt
    backoff_cap: float = 30.0  # seconds
    retry_after_cap: float = 60.0  # never trust a Retry-After longer than this
    retry_after_default: float = 1.0  # a 429 without Retry-After

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): full jitter, capped."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def retry_after(self, header: str | None) -> float:
        """Seconds a 429's Retry-After asks for (seconds form; default when absent or unreadable)."""
        try:
            seconds = float(header) if header is not None else self.retry_after_default
        except ValueError:
            seconds = self.retry_after_default
        return min(max(seconds, 0.0), self.retry_after_cap)

"""Client-side limits for HubSpot calls: a rate limiter paced by arrivals and by HubSpot's headers, and a bounded retry policy."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

# The headers HubSpot sends on every answer (looked up without regard to case).
MAX_HEADER = "X-HubSpot-RateLimit-Max"
REMAINING_HEADER = "X-HubSpot-RateLimit-Remaining"
INTERVAL_HEADER = "X-HubSpot-RateLimit-Interval-Milliseconds"


class _Budget:
    """What both limiters derive from their `calls` per `period` and their `slot()`."""

    calls: int
    period: float

    @property
    def rate(self) -> float:
        """Requests per second the client is held to now (after any tightening by HubSpot)."""
        return self.calls / self.period

    def acquire(self) -> float:
        """Wait for a slot for a request that is answered at once; returns the seconds waited."""
        with self.slot() as waited:
            return waited


class RateLimiter(_Budget):
    """At most `calls` requests reaching the server in any `period` seconds, whatever the latency.

    NOTE: HubSpot counts a request when it arrives, somewhere between our send and its
    answer. So a request may be sent only once `calls` earlier ones are known to have left
    the server's window: each earlier request counts until `period` after its answer came
    back (an unanswered one counts until it is answered). Then arrival(k + calls) >=
    send(k + calls) >= answer(k) + period >= arrival(k) + period: no window ever holds more
    than `calls`, for any latency. The cost is one latency per window (ms in 10 s).

    HubSpot's own count comes in the headers of every answer (`observe`): a limit tighter
    than ours replaces ours, and requests it counted that this client did not send (other
    processes using the same app: web workers, webhook handlers) take slots here from the
    moment we learn of them, so the client waits for them to leave the window too.
    """

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
        self.configured = (calls, period)
        self.waited = 0.0  # seconds spent waiting for a slot, all threads together
        self.foreign = 0  # requests HubSpot counted that this client did not send
        self._clock = clock
        self._sleep = sleep
        self._answered: deque[float] = deque()  # when each of our recent requests was answered
        self._held: deque[float] = deque()  # since when each known foreign request is held
        self._sent: deque[float] = deque()  # when each of our recent requests was sent
        self._in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold a slot for one request: wait until one is free; it counts on from when the answer is in."""
        waited = self._take()
        try:
            yield waited
        finally:
            with self._lock:
                self._in_flight -= 1
                self._answered.append(self._clock())

    def _take(self) -> float:
        """Wait until fewer than `calls` requests may still be in the server's window; count one in flight."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                if self._in_flight + len(self._answered) + len(self._held) < self.calls:
                    self._in_flight += 1
                    self._sent.append(now)
                    self.waited += waited
                    return waited
                oldest = min([q[0] for q in (self._answered, self._held) if q], default=None)
                # Every slot in flight: look again soon (an answer frees nothing for a period).
                delay = 0.005 if oldest is None else self.period - (now - oldest)
            # NOTE: sleep outside the lock so other threads can see the window move too.
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    def _expire(self, now: float) -> None:
        """Forget requests that have left the window."""
        for stamps in (self._answered, self._held, self._sent):
            while stamps and now - stamps[0] >= self.period:
                stamps.popleft()

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Take HubSpot's rate-limit headers on an answer into account (absent or unreadable: ignored)."""
        hint = rate_headers(headers)
        if hint is None:
            return
        limit, remaining, interval = hint
        with self._lock:
            now = self._clock()
            # NOTE: only ever tighten: the configured limit is a promise the client keeps.
            self.calls = max(1, min(self.configured[0], limit))
            self.period = max(self.configured[1], interval)
            self._expire(now)
            # Each of ours sent within HubSpot's window arrived in it (after the window's start,
            # before now); counting only those overestimates the foreign ones, which is safe.
            ours = sum(1 for t in self._sent if now - t < interval)
            foreign = (limit - remaining) - ours
            if foreign > len(self._held):
                # They arrived at some moment before now: holding them from now on keeps them
                # in our window at least as long as in HubSpot's.
                self.foreign += foreign - len(self._held)
                self._held.extend([now] * (foreign - len(self._held)))


# The shared budget's scripts. Times are Redis's own clock (ms), one clock for every host.
# KEYS: slots (request -> until when it counts), held (foreign requests -> until when), sent
# (request -> when sent). Every key expires a while after the budget was last used.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local calls, period, in_flight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) < calls then
  redis.call('ZADD', KEYS[1], now + in_flight, ARGV[3])
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], in_flight + 60000) end
  return -1
end
local wait = period
for i = 1, 2 do
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if #first > 0 then wait = math.min(wait, tonumber(first[2]) - now) end
end
return math.max(wait, 1)
"""
# The answer is in: the request counts on for one period from now.
_ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
# HubSpot's count (ARGV: used = max - remaining, interval ms, period ms): requests it counted
# that no process of this budget sent are held for one period from now; returns how many new.
_OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local ours = redis.call('ZCOUNT', KEYS[3], now - tonumber(ARGV[2]), '+inf')
local foreign = tonumber(ARGV[1]) - ours - redis.call('ZCARD', KEYS[2])
for i = 1, foreign do
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + 60000)
return math.max(foreign, 0)
"""
# A request never answered stops counting after this long (the client's read timeout is 60 s).
IN_FLIGHT_SECONDS = 120.0


class SharedRateLimiter(_Budget):
    """RateLimiter's promise kept by every process and host that uses one HubSpot app together.

    NOTE: the same rule as RateLimiter (a request counts from its send until one period after
    its answer), held in Redis by atomic scripts on Redis's clock, so N processes get one
    budget between them instead of N. HubSpot's headers still tighten the limit and add the
    requests it counted that none of them sent (another app with the same token, a script).
    If Redis fails, each process falls back to its own RateLimiter (logged) until it answers.
    """

    def __init__(
        self,
        calls: int,
        period: float,
        redis_url: str,
        key: str,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from enablement import shared_store

        if calls < 1 or period <= 0:
            raise ValueError("a rate limit needs calls >= 1 and period > 0")
        self.calls, self.period = calls, period
        self.configured = (calls, period)
        self.waited = 0.0
        self.foreign = 0
        self.local = RateLimiter(calls, period, sleep=sleep)
        self._sleep = sleep
        self._errors = shared_store.store_errors()
        redis = shared_store.client(redis_url)
        self._keys = [f"{key}:slots", f"{key}:held", f"{key}:sent"]
        self._take = redis.register_script(_TAKE)
        self._answered = redis.register_script(_ANSWERED)
        self._observe = redis.register_script(_OBSERVE)
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold a slot of the shared budget for one request; it counts on from when the answer is in."""
        request = uuid.uuid4().hex
        try:
            waited = self._wait(request)
        except self._errors as e:
            log.warning("HubSpot budget not shared (the shared store failed: %s)", e)
            with self.local.slot() as waited:
                yield waited
            return
        try:
            yield waited
        finally:
            try:
                self._answered(keys=self._keys[:1], args=[request, int(self.period * 1000)])
            except self._errors as e:
                log.warning("HubSpot budget: answer not recorded (%s); it counts until timeout", e)

    def _wait(self, request: str) -> float:
        """Wait until the shared budget has a slot, and take it."""
        waited = 0.0
        while True:
            ms = self._take(
                keys=self._keys,
                args=[
                    self.calls,
                    int(self.period * 1000),
                    request,
                    int(IN_FLIGHT_SECONDS * 1000),
                ],
            )
            if int(ms) < 0:
                with self._lock:
                    self.waited += waited
                return waited
            delay = min(int(ms), 1000) / 1000
            self._sleep(delay)
            waited += delay

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Take HubSpot's rate-limit headers on an answer into account (absent or unreadable: ignored)."""
        hint = rate_headers(headers)
        if hint is None:
            return
        limit, remaining, interval = hint
        with self._lock:
            # NOTE: only ever tighten, as RateLimiter does.
            self.calls = max(1, min(self.configured[0], limit))
            self.period = max(self.configured[1], interval)
        self.local.observe(headers)
        try:
            added = self._observe(
                keys=self._keys,
                args=[
                    limit - remaining,
                    int(interval * 1000),
                    int(self.period * 1000),
                    uuid.uuid4().hex,
                ],
            )
        except self._errors as e:
            log.warning("HubSpot budget: headers not shared (%s)", e)
            return
        with self._lock:
            self.foreign += int(added)


def budget_key(access_token: str, name: str) -> str:
    """The Redis key of one HubSpot app's budget: its token's digest (never the token) and the limit's name."""
    digest = hashlib.sha256(b"enablement-hubspot-budget\0" + access_token.encode("utf-8"))
    return f"enablement:hubspot:{digest.hexdigest()[:16]}:{name}"


def rate_limiter(
    rate: tuple[int, float], redis_url: str | None, access_token: str, name: str = "all"
) -> RateLimiter | SharedRateLimiter:
    """The limiter of one HubSpot limit: shared by every process through Redis with REDIS_URL, else this process's own."""
    if redis_url:
        return SharedRateLimiter(*rate, redis_url=redis_url, key=budget_key(access_token, name))
    return RateLimiter(*rate)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A response header's value, its name matched without regard to case."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def rate_headers(headers: Mapping[str, str] | None) -> tuple[int, int, float] | None:
    """(max, remaining, interval seconds) from HubSpot's rate-limit headers, or None when absent or unreadable."""
    try:
        limit = int(header(headers, MAX_HEADER))
        remaining = int(header(headers, REMAINING_HEADER))
        interval = int(header(headers, INTERVAL_HEADER)) / 1000
    except (TypeError, ValueError):
        return None
    if limit < 1 or interval <= 0 or not 0 <= remaining <= limit:
        return None
    return limit, remaining, interval


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

"""Client-side rate limiting per integration, shared by every worker (issue 4, DESIGN.md rule 4).

A token bucket per `connection.rate_limit_key`: `burst` tokens (the provider's `RateLimit.burst`, else its
`requests`), refilled at `requests / per_seconds` per second. With `REDIS_URL` set the bucket lives in Redis
and is updated by one Lua script, so ten Celery workers on several hosts draw from the same bucket (the script
reads Redis's own clock: worker clocks never need to agree). Without Redis it lives in this process, which is
all a single eager-Celery process needs.

`acquire` *reserves* a token and says how long to wait before using it; callers sleep that long and then
send. Reservations let the bucket go negative, which is what spaces out concurrent callers. When the wait
would exceed what the caller is willing to sleep (`max_wait`), nothing is reserved and the caller gives the
retry to the database schedule instead.

`defer` pushes the bucket's time into the future and drains it to a single token: after a 429's
`Retry-After`, or when a provider's rate-limit header says its own bucket is nearly full, every worker pauses,
not just the one that noticed; when the pause ends one call goes at once and the rest follow at the refill
rate (calls already holding a reservation keep their turn), instead of a burst firing into a limit that just
said no.

If Redis cannot be reached the limiter falls back to the in-process bucket (and logs it): each worker is
still limited, the provider's 429s are still honoured, and syncs keep running during a Redis blip.

For providers that limit calls in flight (QuickBooks: 10 concurrent per company), `concurrency_slot` with
`get_concurrency_limiter()` holds one of N leased slots per key around each request, in Redis or in-process
the same way (added with the QuickBooks provider; see the section at the end of this module).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from integrations.providers.base import RateLimit

logger = logging.getLogger("integrations.ratelimit")

KEY_PREFIX = "jewelia:ratelimit:"


class RateLimiter(Protocol):
    def acquire(self, key: str, rate: RateLimit, *, max_wait: float) -> float:
        """Reserve one call for `key`. Returns 0.0 (go now) or the seconds to wait before sending. A returned
        wait greater than `max_wait` means nothing was reserved: do not send, retry after that many seconds."""
        ...

    def defer(self, key: str, rate: RateLimit, seconds: float) -> None:
        """Make every caller of `key` wait at least `seconds` from now; then one call may go, the rest refill."""
        ...


def _capacity(rate: RateLimit) -> float:
    return float(rate.burst or rate.requests)


def _refill_rate(rate: RateLimit) -> float:
    return rate.requests / rate.per_seconds


@dataclass
class _Bucket:
    tokens: float
    at: float  # the time `tokens` is valued at; in the future while deferred


class LocalRateLimiter:
    """The bucket in this process (one per key), guarded by a lock; `clock` is injectable for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: str, rate: RateLimit, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=_capacity(rate), at=now)
        elif now > bucket.at:
            bucket.tokens = min(_capacity(rate), bucket.tokens + (now - bucket.at) * _refill_rate(rate))
            bucket.at = now
        return bucket

    def acquire(self, key: str, rate: RateLimit, *, max_wait: float) -> float:
        with self._lock:
            now = self.clock()
            bucket = self._bucket(key, rate, now)
            wait = (bucket.at - now) + (max(0.0, 1 - bucket.tokens) / _refill_rate(rate))
            if wait <= max_wait:
                bucket.tokens -= 1
            return max(0.0, wait)

    def defer(self, key: str, rate: RateLimit, seconds: float) -> None:
        with self._lock:
            now = self.clock()
            bucket = self._bucket(key, rate, now)
            until = now + seconds
            if until > bucket.at:
                bucket.tokens = min(bucket.tokens, 0.0) + 1.0
                bucket.at = until


# KEYS[1] = bucket hash; ARGV = capacity, refill per second, max wait (acquire) or seconds (defer), mode.
# The state is (tokens, at); `at` may be in the future while deferred. Returns the wait as a string (a Lua
# number would be truncated to an integer reply).
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local arg = tonumber(ARGV[3])
local mode = ARGV[4]
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
elseif now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local wait = 0
if mode == 'defer' then
  local untl = now + arg
  if untl > at then
    tokens = math.min(tokens, 0) + 1
    at = untl
  end
else
  wait = (at - now) + math.max(0, 1 - tokens) / rate
  if wait <= arg then
    tokens = tokens - 1
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
local ttl = math.ceil(((at - now) + (capacity - tokens) / rate) * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
return tostring(wait)
"""


class RedisRateLimiter:
    """The bucket in Redis, shared by every process using the same Redis; falls back to `fallback` on errors.

    After a Redis error the fallback is used for `retry_after_error` seconds before Redis is tried again, so an
    outage costs one failed connection attempt per interval, not one per provider call.
    """

    def __init__(
        self,
        client,
        *,
        fallback: RateLimiter | None = None,
        retry_after_error: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.fallback = fallback or LocalRateLimiter()
        self.retry_after_error = retry_after_error
        self.clock = clock
        self._down_until = 0.0
        self._script = client.register_script(_LUA)

    def _run(self, key: str, rate: RateLimit, arg: float, mode: str) -> float:
        import redis

        if self.clock() < self._down_until:
            raise _RedisDown
        try:
            reply = self._script(
                keys=[KEY_PREFIX + key], args=[_capacity(rate), _refill_rate(rate), repr(min(float(arg), 1e9)), mode]
            )
        except redis.RedisError as exc:
            self._down_until = self.clock() + self.retry_after_error
            logger.warning(
                "Rate limiter: Redis unavailable (%s); limiting in this process only for %.0fs",
                type(exc).__name__,
                self.retry_after_error,
            )
            raise _RedisDown from exc
        value = float(reply)
        return 0.0 if math.isnan(value) else max(0.0, value)

    def acquire(self, key: str, rate: RateLimit, *, max_wait: float) -> float:
        try:
            return self._run(key, rate, max_wait, "acquire")
        except _RedisDown:
            return self.fallback.acquire(key, rate, max_wait=max_wait)

    def defer(self, key: str, rate: RateLimit, seconds: float) -> None:
        try:
            self._run(key, rate, seconds, "defer")
        except _RedisDown:
            self.fallback.defer(key, rate, seconds)


class _RedisDown(Exception):
    pass


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def _process_wide(cache: dict, make_redis: Callable, make_local: Callable):
    """The limiter `cache` holds for the current `REDIS_URL`, made on first use: `make_redis(client)` when the
    setting is set, `make_local()` otherwise."""
    from django.conf import settings

    url = getattr(settings, "REDIS_URL", "") or ""
    with _limiters_lock:
        limiter = cache.get(url)
        if limiter is None:
            if url:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # Fail fast: a limiter that waits seconds for Redis would slow every provider call down.
                client = redis.Redis.from_url(
                    url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
                )
                limiter = make_redis(client)
            else:
                limiter = make_local()
            cache[url] = limiter
        return limiter


def get_rate_limiter() -> RateLimiter:
    """The process-wide limiter: in Redis when `REDIS_URL` is set, in this process otherwise."""
    return _process_wide(_limiters, RedisRateLimiter, LocalRateLimiter)


# --- concurrency: at most N calls in flight per key, across every worker ----------------------------------------------
# Some providers limit calls *in flight* rather than (or as well as) calls per time (QuickBooks Online: 10
# concurrent requests per company and app, answered with 429 beyond that). A token bucket cannot express that, so
# this is a counting semaphore per key, with leases: a slot is held from just before a request is sent until its
# response has been read, and a slot whose holder died (a killed worker) frees itself when its lease runs out.
# With `REDIS_URL` the slots are a sorted set in Redis (member = slot token, score = lease end, on Redis's clock),
# so every worker on every host counts against the same limit; without it they live in this process. If Redis
# cannot be reached the limiter falls back to the in-process slots for a while (each worker still bounded).

CONCURRENCY_KEY_PREFIX = "jewelia:concurrency:"


class ConcurrencyLimiter(Protocol):
    def try_acquire(self, key: str, limit: int, *, lease: float) -> str | None:
        """Take one of `limit` slots for `key` for at most `lease` seconds. Returns the slot's token, or None
        when all slots are taken (nothing is held then)."""
        ...

    def release(self, key: str, token: str) -> None:
        """Give the slot back (a slot already expired or released is ignored)."""
        ...


class LocalConcurrencyLimiter:
    """Slots in this process: key -> {token: lease end}, guarded by a lock; `clock` is injectable for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._slots: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def try_acquire(self, key: str, limit: int, *, lease: float) -> str | None:
        with self._lock:
            now = self.clock()
            held = {token: until for token, until in self._slots.get(key, {}).items() if until > now}
            token = None
            if len(held) < limit:
                token = uuid.uuid4().hex
                held[token] = now + lease
            self._slots[key] = held
            return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            self._slots.get(key, {}).pop(token, None)

    def in_flight(self, key: str) -> int:
        with self._lock:
            now = self.clock()
            return sum(1 for until in self._slots.get(key, {}).values() if until > now)


# KEYS[1] = the slots' sorted set; ARGV = limit, lease seconds, token. Returns 1 when the slot was taken.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
local wanted = math.ceil(lease * 1000) + 1000
if ttl < wanted then
  redis.call('PEXPIRE', KEYS[1], wanted)
end
return 1
"""


class RedisConcurrencyLimiter:
    """Slots in Redis, shared by every process using the same Redis; falls back to `fallback` on errors (for
    `retry_after_error` seconds before Redis is tried again, like `RedisRateLimiter`).

    A slot taken from the fallback is released to the fallback even if Redis is back by then: the token says
    where it lives.
    """

    def __init__(
        self,
        client,
        *,
        fallback: LocalConcurrencyLimiter | None = None,
        retry_after_error: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.fallback = fallback or LocalConcurrencyLimiter()
        self.retry_after_error = retry_after_error
        self.clock = clock
        self._down_until = 0.0
        self._acquire = client.register_script(_ACQUIRE_LUA)

    def _redis_failed(self, exc: Exception) -> None:
        self._down_until = self.clock() + self.retry_after_error
        logger.warning(
            "Concurrency limiter: Redis unavailable (%s); limiting in this process only for %.0fs",
            type(exc).__name__,
            self.retry_after_error,
        )

    def try_acquire(self, key: str, limit: int, *, lease: float) -> str | None:
        import redis

        if self.clock() >= self._down_until:
            token = uuid.uuid4().hex
            try:
                taken = self._acquire(keys=[CONCURRENCY_KEY_PREFIX + key], args=[limit, repr(float(lease)), token])
            except redis.RedisError as exc:
                self._redis_failed(exc)
            else:
                return token if int(taken) == 1 else None
        local = self.fallback.try_acquire(key, limit, lease=lease)
        return f"local:{local}" if local else None

    def release(self, key: str, token: str) -> None:
        import redis

        if token.startswith("local:"):
            self.fallback.release(key, token.removeprefix("local:"))
            return
        try:
            self.client.zrem(CONCURRENCY_KEY_PREFIX + key, token)
        except redis.RedisError as exc:  # the lease frees the slot anyway
            self._redis_failed(exc)


_concurrency_limiters: dict[str, ConcurrencyLimiter] = {}


def get_concurrency_limiter() -> ConcurrencyLimiter:
    """The process-wide concurrency limiter: in Redis when `REDIS_URL` is set, in this process otherwise."""
    return _process_wide(_concurrency_limiters, RedisConcurrencyLimiter, LocalConcurrencyLimiter)


@contextlib.contextmanager
def concurrency_slot(
    limiter: ConcurrencyLimiter,
    key: str,
    limit: int,
    *,
    lease: float,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll: float = 0.05,
) -> Iterator[float]:
    """Hold one of `limit` slots of `key` for the block; yields the seconds waited for it.

    Polls every `poll` seconds (growing to 8x while it keeps waiting) for up to `max_wait` seconds; past that
    raises `integrations.errors.RateLimitedError` with a short `retry_after`, so the caller hands the call to the
    database's retry schedule instead of holding a worker. `lease` must outlast the block (the request's timeouts
    plus a margin): a block that runs longer loses its slot to someone else.
    """
    from integrations.errors import RateLimitedError

    started = clock()
    interval = poll
    while True:
        token = limiter.try_acquire(key, limit, lease=lease)
        if token is not None:
            break
        waited = clock() - started
        if waited + interval > max_wait:
            raise RateLimitedError(
                f"all {limit} concurrent request slots for {key} stayed busy for {waited:.1f}s", retry_after=1.0
            )
        sleep(interval)
        interval = min(interval * 2, poll * 8)
    try:
        yield clock() - started
    finally:
        limiter.release(key, token)

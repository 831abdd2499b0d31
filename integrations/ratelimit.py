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
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
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


def get_rate_limiter() -> RateLimiter:
    """The process-wide limiter: in Redis when `REDIS_URL` is set, in this process otherwise."""
    from django.conf import settings

    url = getattr(settings, "REDIS_URL", "") or ""
    with _limiters_lock:
        limiter = _limiters.get(url)
        if limiter is None:
            if url:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # Fail fast: a limiter that waits seconds for Redis would slow every provider call down.
                client = redis.Redis.from_url(
                    url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
                )
                limiter = RedisRateLimiter(client)
            else:
                limiter = LocalRateLimiter()
            _limiters[url] = limiter
        return limiter

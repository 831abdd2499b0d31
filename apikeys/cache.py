"""What API-key authentication keeps in the cache: key rows, rate-limit windows and usage counters.

The hot path makes no database write. Per request it costs one cache read for the key row (a database read by
the unique public id only on a miss), one pipelined increment for the rate limit and, after the response, one
pipelined increment of the usage counters. The periodic flush (`services.api_key_usage_flush`) moves usage
into `ApiKeyUsage` rows; a crash loses at most the counts since the last flush.

With Redis as the cache (production) counters live in Redis and are shared by every web process. Without it
(a laptop, the test suite) the local-memory cache is used under a lock, which is correct for one process only.
"""

import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from .models import ApiKey

_ROW_KEY = "apikeys:key:{public_id}"


def key_row_get(public_id: str) -> ApiKey | None:
    """The key's row from the cache, else from the database (cached only if it exists)."""
    row_key = _ROW_KEY.format(public_id=public_id)
    key = cache.get(row_key)
    if key is None:
        key = ApiKey.objects.filter(public_id=public_id).first()
        if key is not None:
            # add(), not set(): if a change stored a fresher row meanwhile, that row wins over this read.
            cache.add(row_key, key, timeout=settings.APIKEYS_KEY_CACHE_SECONDS)
    return key


def key_row_refresh(key: ApiKey) -> None:
    """Store the key's current row so every process sees a change (revocation, new scopes) at once."""
    cache.set(_ROW_KEY.format(public_id=key.public_id), key, timeout=settings.APIKEYS_KEY_CACHE_SECONDS)


@dataclass
class UsageBatch:
    """Counts taken out of the cache by one flush: {(key id, day): [requests, errors]} and the latest use."""

    counts: dict[tuple[int, date], list[int]] = field(default_factory=dict)
    last_used: dict[int, tuple[datetime, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts or self.last_used)


def _counter_field(key_id: int, day: date, kind: str) -> str:
    return f"{key_id}:{day:%Y%m%d}:{kind}"


def _last_used_value(when: datetime, ip: str | None) -> str:
    return f"{when.isoformat()}|{ip or ''}"


def _batch_from(counters: dict, last_used: dict) -> UsageBatch:
    batch = UsageBatch()
    for name, value in counters.items():
        key_id, day, kind = _text(name).split(":")
        entry = batch.counts.setdefault((int(key_id), datetime.strptime(day, "%Y%m%d").date()), [0, 0])
        entry[0 if kind == "r" else 1] += int(value)
    for key_id, value in last_used.items():
        when, ip = _text(value).split("|", 1)
        batch.last_used[int(_text(key_id))] = (datetime.fromisoformat(when), ip)
    return batch


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCounters:
    """Counters in Redis hashes, one round trip per operation on the hot path."""

    def __init__(self, backend: RedisCache):
        self.client = backend._cache.get_client(write=True)
        self.usage_key = backend.make_key("apikeys:usage")
        self.last_used_key = backend.make_key("apikeys:last_used")
        self.rate_prefix = backend.make_key("apikeys:rate")

    def hit(self, *, key_id: int, window: int, ttl: int) -> int:
        name = f"{self.rate_prefix}:{key_id}:{window}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, ttl)
        return pipe.execute()[0]

    def record(self, *, key_id: int, day: date, error: bool, used: tuple[datetime, str | None] | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.usage_key, _counter_field(key_id, day, "r"), 1)
        if error:
            pipe.hincrby(self.usage_key, _counter_field(key_id, day, "e"), 1)
        if used is not None:
            pipe.hset(self.last_used_key, str(key_id), _last_used_value(*used))
        pipe.execute()

    def drain(self) -> UsageBatch:
        # RENAME is atomic: increments after it start a fresh hash, so nothing is counted twice or dropped.
        suffix = f":flushing:{uuid.uuid4().hex}"
        pipe = self.client.pipeline(transaction=True)
        pipe.rename(self.usage_key, self.usage_key + suffix)
        pipe.rename(self.last_used_key, self.last_used_key + suffix)
        pipe.execute(raise_on_error=False)  # a missing hash (nothing counted) makes RENAME fail harmlessly
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.usage_key + suffix)
        pipe.hgetall(self.last_used_key + suffix)
        pipe.delete(self.usage_key + suffix, self.last_used_key + suffix)
        counters, last_used, _ = pipe.execute()
        return _batch_from(counters, last_used)

    def restore(self, batch: UsageBatch) -> None:
        pipe = self.client.pipeline(transaction=False)
        for (key_id, day), (requests, errors) in batch.counts.items():
            pipe.hincrby(self.usage_key, _counter_field(key_id, day, "r"), requests)
            pipe.hincrby(self.usage_key, _counter_field(key_id, day, "e"), errors)
        for key_id, used in batch.last_used.items():
            pipe.hsetnx(self.last_used_key, str(key_id), _last_used_value(*used))
        pipe.execute()


_local_lock = threading.Lock()


class LocalCounters:
    """The same counters on a non-Redis cache (local memory): atomic within one process only."""

    usage_key = "apikeys:usage"
    last_used_key = "apikeys:last_used"

    def hit(self, *, key_id: int, window: int, ttl: int) -> int:
        name = f"apikeys:rate:{key_id}:{window}"
        with _local_lock:
            if cache.add(name, 1, timeout=ttl):
                return 1
            return cache.incr(name)

    def record(self, *, key_id: int, day: date, error: bool, used: tuple[datetime, str | None] | None) -> None:
        with _local_lock:
            counters = cache.get(self.usage_key) or {}
            for kind in ("r", "e") if error else ("r",):
                name = _counter_field(key_id, day, kind)
                counters[name] = counters.get(name, 0) + 1
            cache.set(self.usage_key, counters, timeout=None)
            if used is not None:
                last_used = cache.get(self.last_used_key) or {}
                last_used[str(key_id)] = _last_used_value(*used)
                cache.set(self.last_used_key, last_used, timeout=None)

    def drain(self) -> UsageBatch:
        with _local_lock:
            counters = cache.get(self.usage_key) or {}
            last_used = cache.get(self.last_used_key) or {}
            cache.delete_many([self.usage_key, self.last_used_key])
        return _batch_from(counters, last_used)

    def restore(self, batch: UsageBatch) -> None:
        with _local_lock:
            counters = cache.get(self.usage_key) or {}
            for (key_id, day), (requests, errors) in batch.counts.items():
                for kind, amount in (("r", requests), ("e", errors)):
                    name = _counter_field(key_id, day, kind)
                    counters[name] = counters.get(name, 0) + amount
            cache.set(self.usage_key, counters, timeout=None)
            last_used = cache.get(self.last_used_key) or {}
            for key_id, used in batch.last_used.items():
                last_used.setdefault(str(key_id), _last_used_value(*used))
            cache.set(self.last_used_key, last_used, timeout=None)


def counters() -> RedisCounters | LocalCounters:
    backend = caches["default"]
    return RedisCounters(backend) if isinstance(backend, RedisCache) else LocalCounters()

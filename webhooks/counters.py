"""Rejected-signature and duplicate counters: one cache increment on the hot path, flushed to the database.

A forged or duplicated delivery leaves no row of its own (a flood of forgeries must not fill the database), only
a count per integration, day and kind. The receiver increments a field of one Redis hash (one round trip);
`webhook_counters_flush` (beat, every `WEBHOOKS_COUNTERS_FLUSH_SECONDS`) renames the hash atomically, so
increments after it start a fresh one, and adds the counts to `WebhookCounter` rows. A crash loses at most the
counts since the last flush; figures read for health add the counts not flushed yet.

Without Redis (a laptop, the test suite) the counts are kept in process memory, which is right for one process.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import date, datetime

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache

from jewelia.core.redis import redis_cache

REJECTED = "rejected_signatures"
DUPLICATES = "duplicates"
KINDS = (REJECTED, DUPLICATES)
_HASH = "webhooks:counters"

CounterKey = tuple[str, date, str]  # (integration id, day, kind)


def _field(integration_id: str, day: date, kind: str) -> str:
    return f"{integration_id}|{day:%Y%m%d}|{kind}"


def _key(field: str | bytes) -> CounterKey:
    text = field.decode() if isinstance(field, bytes) else field
    integration_id, day, kind = text.split("|")
    return integration_id, datetime.strptime(day, "%Y%m%d").date(), kind


class _RedisCounters:
    def __init__(self, client, backend: RedisCache):
        self.client = client
        self.name = backend.make_key(_HASH)

    def increment(self, field: str) -> None:
        self.client.hincrby(self.name, field, 1)

    def pending(self, fields: list[str]) -> list[int]:
        return [int(value or 0) for value in self.client.hmget(self.name, fields)] if fields else []

    def take(self) -> Counter:
        taken = f"{self.name}:flushing:{uuid.uuid4().hex}"
        pipe = self.client.pipeline(transaction=True)
        pipe.rename(self.name, taken)
        pipe.execute(raise_on_error=False)  # nothing counted since the last flush: RENAME fails harmlessly
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(taken)
        pipe.delete(taken)
        values, _ = pipe.execute()
        return Counter({_key(field): int(value) for field, value in values.items()})

    def give_back(self, counts: Counter) -> None:
        pipe = self.client.pipeline(transaction=False)
        for (integration_id, day, kind), value in counts.items():
            pipe.hincrby(self.name, _field(integration_id, day, kind), value)
        pipe.execute()


class _LocalCounters:
    """The same counts in the local-memory cache, under a lock (so `cache.clear()` resets them in tests)."""

    _lock = threading.Lock()

    def _get(self) -> Counter:
        return Counter(cache.get(_HASH) or {})

    def increment(self, field: str) -> None:
        with self._lock:
            counts = self._get()
            counts[field] += 1
            cache.set(_HASH, dict(counts), timeout=None)

    def pending(self, fields: list[str]) -> list[int]:
        counts = self._get()
        return [counts.get(field, 0) for field in fields]

    def take(self) -> Counter:
        with self._lock:
            counts = self._get()
            cache.delete(_HASH)
        return Counter({_key(field): value for field, value in counts.items()})

    def give_back(self, counts: Counter) -> None:
        with self._lock:
            stored = self._get()
            for (integration_id, day, kind), value in counts.items():
                stored[_field(integration_id, day, kind)] += value
            cache.set(_HASH, dict(stored), timeout=None)


def _backend() -> _RedisCounters | _LocalCounters:
    redis = redis_cache()
    return _RedisCounters(*redis) if redis is not None else _LocalCounters()


def counter_increment(*, integration_id: str, day: date, kind: str) -> None:
    """Count one refused or duplicate delivery. Raises the cache's connection error when Redis is down; the
    receiver catches it (a lost count must never turn into a lost event)."""
    _backend().increment(_field(str(integration_id), day, kind))


def counters_pending(*, integration_id: str, days: list[date]) -> dict[tuple[date, str], int]:
    """Counts not flushed to the database yet, for one integration and the given days."""
    keys = [(day, kind) for day in days for kind in KINDS]
    values = _backend().pending([_field(str(integration_id), day, kind) for day, kind in keys])
    return dict(zip(keys, values, strict=True))


def counters_take() -> Counter:
    """Remove and return every count recorded since the last call: {(integration id, day, kind): n}."""
    return _backend().take()


def counters_give_back(counts: Counter) -> None:
    """Put counts back (the flush could not store them), so they are flushed next time."""
    if counts:
        _backend().give_back(counts)

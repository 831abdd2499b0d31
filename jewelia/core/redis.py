"""One Redis client per process and cache backend, reused by the hot paths (API-key authentication, the webhook
receiver's nudge and counters).

Django's `RedisCache` builds a new `redis.Redis` object for every operation, and building one fills its table
of response callbacks: about as much CPU as the round trip itself, on every call. The hot paths reuse one client
per backend instead; redis clients are thread-safe and share the cache's connection pool, so nothing else
changes. Keys get the cache's prefix and version (`backend.make_key`), so they are the keys
`django.core.cache.cache` would use.
"""

from __future__ import annotations

import weakref
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cache_client(backend: RedisCache) -> Any:
    """The process's reused client for `backend` (made on first use)."""
    client = _CLIENTS.get(backend)
    if client is None:
        client = _CLIENTS[backend] = backend._cache.get_client(write=True)
    return client


def redis_cache() -> tuple[Any, RedisCache] | None:
    """(client, backend) when the default cache is Redis, else None (local memory: use the cache API)."""
    backend = caches["default"]  # the backend itself: `django.core.cache.cache` is a proxy, never a RedisCache
    if not isinstance(backend, RedisCache):
        return None
    return cache_client(backend), backend

"""What API-key authentication keeps in memory and in the cache: key rows, rate-limit windows, usage counters.

The hot path makes no database write and, in the steady state, one Redis round trip per request:

- key rows are kept in each process (`_local_rows`) and, shared, in the cache; a database read by the unique
  public id happens only when neither has the row;
- every change to a key stores the fresh row and bumps the key's *version* in the cache (`key_publish`); the
  request's single round trip (`admit`, a Lua script) reads that version, so a process notices a revocation on
  the very next request and reloads the row, while an unchanged key costs nothing extra;
- the same round trip judges the request against the key's rate limit (`ratelimit`: a sliding-window counter
  over the key's counts in this and the previous one-minute window; only an admitted request is counted),
  counts it in the usage counters, and notes when and from where the key was last used. Errors are counted
  after the response (`count_error`, only for 4xx/5xx). The periodic flush (`services.api_key_usage_flush`)
  moves usage into `ApiKeyUsage` rows; a crash loses at most the counts since the last flush.

With Redis as the cache (production) everything shared lives in Redis, for every web process. The store uses
one client per process on the cache's own connection pool: Django's cache API builds a new `redis.Redis`
object for every call, which costs more than the round trip itself. Without Redis (a laptop, the test suite)
the local-memory cache is used under a lock, which is correct for one process only.
"""

import copy
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from jewelia.core.redis import cache_client

from .models import ApiKey
from .ratelimit import WINDOW_MS, WINDOW_SECONDS, fits

_ROW = "apikeys:key:{public_id}"
_VERSION = "apikeys:version:{public_id}"
_RATE = "apikeys:rate:{key_id}:{window}"
_USAGE = "apikeys:usage"
_LAST_USED = "apikeys:last_used"

Use = tuple[datetime, str | None]  # when and from which address a key was used


@dataclass(frozen=True)
class Admission:
    """What the cache answered for one request: the key's current version, whether the request fits the key's
    rate limit (then it was counted in this window), and the key's counts in the previous and this window
    (this request included when admitted)."""

    version: int
    admitted: bool
    previous: int
    current: int


# A window's counter lives until the next window ends, when it stops weighing in the estimate.
_RATE_TTL = 2 * WINDOW_SECONDS


# -- the key's row: process memory, then the shared cache, then the database ----------------------------------------

_local_rows: dict[str, tuple[ApiKey, int, float]] = {}
_LOCAL_ROWS_MAX = 10_000


def key_lookup(public_id: str, *, fresh: bool = False) -> tuple[ApiKey | None, int]:
    """The key with `public_id` (a private copy) and the version it was loaded at; (None, 0) when unknown."""
    ttl = settings.APIKEYS_KEY_CACHE_SECONDS
    entry = None if fresh else _local_rows.get(public_id)
    if entry is None or time.monotonic() - entry[2] > ttl:
        key, version = key_store().load(public_id)
        if key is None or ttl <= 0:
            _local_rows.pop(public_id, None)
            return key, version
        if len(_local_rows) >= _LOCAL_ROWS_MAX:
            _local_rows.clear()
        entry = _local_rows[public_id] = (key, version, time.monotonic())
    # A copy, so that nothing a request does to `request.auth` reaches the next request.
    return copy.copy(entry[0]), entry[1]


def key_publish(key: ApiKey) -> None:
    """Share a changed key (revoked, new scopes, rotated): every process uses the new row from its next request."""
    key_store().publish(key)


# -- usage batches -------------------------------------------------------------------------------------------------


@dataclass
class UsageBatch:
    """Counts taken out of the cache by one flush: {(key id, day): [requests, errors]} and the latest use."""

    counts: dict[tuple[int, date], list[int]] = field(default_factory=dict)
    last_used: dict[int, tuple[datetime, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts or self.last_used)


def _counter_field(key_id: int, day: date, kind: str) -> str:
    return f"{key_id}:{day:%Y%m%d}:{kind}"


def _last_used_value(used: Use) -> str:
    when, ip = used
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


# -- Redis ---------------------------------------------------------------------------------------------------------

# KEYS: version, this rate window, the previous rate window, usage hash, last-used hash.
# ARGV: window TTL, request counter field, key id, last-used value ('' when the key is refused), expected version,
#       rate limit, milliseconds since this window began, window length in milliseconds.
# The admission test is `ratelimit.fits`, in integers: previous * (W - elapsed) < (limit - current) * W.
_ADMIT_LUA = """
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local counts = redis.call('MGET', KEYS[2], KEYS[3])
local current = tonumber(counts[1] or '0')
local previous = tonumber(counts[2] or '0')
local span = tonumber(ARGV[8])
local admitted = 0
if previous * (span - tonumber(ARGV[7])) < (tonumber(ARGV[6]) - current) * span then
  current = redis.call('INCR', KEYS[2])
  if current == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
  admitted = 1
end
redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
if ARGV[4] ~= '' and version == tonumber(ARGV[5]) then redis.call('HSET', KEYS[5], ARGV[3], ARGV[4]) end
return {version, admitted, previous, current}
"""


class RedisStore:
    def __init__(self, backend: RedisCache):
        self.client = cache_client(backend)  # the process's reused client (jewelia.core.redis)
        self.admit_script = self.client.register_script(_ADMIT_LUA)
        self.backend = backend
        self.serializer = backend._cache._serializer
        self.usage_key = backend.make_key(_USAGE)
        self.last_used_key = backend.make_key(_LAST_USED)

    def _name(self, template: str, **parts) -> str:
        return self.backend.make_key(template.format(**parts))

    def load(self, public_id: str) -> tuple[ApiKey | None, int]:
        # The version is read before the row: if a change lands in between, the version is the older one and
        # the next request reloads. The database row is shared with add-if-absent, so a change's fresher row wins.
        row_name = self._name(_ROW, public_id=public_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self._name(_VERSION, public_id=public_id))
        pipe.get(row_name)
        version, value = pipe.execute()
        version = int(version or 0)
        if value is not None:
            return self.serializer.loads(value), version
        key = ApiKey.objects.filter(public_id=public_id).first()
        if key is not None and settings.APIKEYS_KEY_CACHE_SECONDS > 0:
            self.client.set(row_name, self.serializer.dumps(key), ex=settings.APIKEYS_KEY_CACHE_SECONDS, nx=True)
        return key, version

    def publish(self, key: ApiKey) -> None:
        row_name = self._name(_ROW, public_id=key.public_id)
        pipe = self.client.pipeline(transaction=True)
        if settings.APIKEYS_KEY_CACHE_SECONDS > 0:
            pipe.set(row_name, self.serializer.dumps(key), ex=settings.APIKEYS_KEY_CACHE_SECONDS)
        else:
            pipe.delete(row_name)
        pipe.incr(self._name(_VERSION, public_id=key.public_id))
        pipe.execute()

    def admit(
        self,
        *,
        key_id: int,
        public_id: str,
        version: int,
        limit: int,
        window: int,
        elapsed_ms: int,
        day: date,
        used: Use | None,
    ) -> Admission:
        current_version, admitted, previous, current = self.admit_script(
            keys=[
                self._name(_VERSION, public_id=public_id),
                self._name(_RATE, key_id=key_id, window=window),
                self._name(_RATE, key_id=key_id, window=window - 1),
                self.usage_key,
                self.last_used_key,
            ],
            args=[
                _RATE_TTL,
                _counter_field(key_id, day, "r"),
                key_id,
                _last_used_value(used) if used else "",
                version,
                limit,
                elapsed_ms,
                WINDOW_MS,
            ],
        )
        return Admission(
            version=int(current_version), admitted=bool(admitted), previous=int(previous), current=int(current)
        )

    def touch(self, *, key_id: int, used: Use) -> None:
        self.client.hset(self.last_used_key, str(key_id), _last_used_value(used))

    def count_error(self, *, key_id: int, day: date) -> None:
        self.client.hincrby(self.usage_key, _counter_field(key_id, day, "e"), 1)

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
        for key_id, (when, ip) in batch.last_used.items():
            pipe.hsetnx(self.last_used_key, str(key_id), _last_used_value((when, ip)))
        pipe.execute()


# -- any other cache (local memory) --------------------------------------------------------------------------------

_local_lock = threading.Lock()


class LocalStore:
    """The same operations on Django's cache API, under a process lock: correct for one process only."""

    def load(self, public_id: str) -> tuple[ApiKey | None, int]:
        version = cache.get(_VERSION.format(public_id=public_id), 0)
        key = cache.get(_ROW.format(public_id=public_id))
        if key is None:
            key = ApiKey.objects.filter(public_id=public_id).first()
            if key is not None:
                cache.add(_ROW.format(public_id=public_id), key, timeout=settings.APIKEYS_KEY_CACHE_SECONDS)
        return key, version

    def publish(self, key: ApiKey) -> None:
        with _local_lock:
            cache.set(_ROW.format(public_id=key.public_id), key, timeout=settings.APIKEYS_KEY_CACHE_SECONDS)
            name = _VERSION.format(public_id=key.public_id)
            cache.set(name, cache.get(name, 0) + 1, timeout=None)

    def admit(
        self,
        *,
        key_id: int,
        public_id: str,
        version: int,
        limit: int,
        window: int,
        elapsed_ms: int,
        day: date,
        used: Use | None,
    ) -> Admission:
        with _local_lock:
            current_version = cache.get(_VERSION.format(public_id=public_id), 0)
            rate, previous_rate = (_RATE.format(key_id=key_id, window=number) for number in (window, window - 1))
            counts = cache.get_many([rate, previous_rate])
            current, previous = counts.get(rate, 0), counts.get(previous_rate, 0)
            admitted = fits(limit=limit, previous=previous, current=current, elapsed_ms=elapsed_ms)
            if admitted:
                current = 1 if cache.add(rate, 1, timeout=_RATE_TTL) else cache.incr(rate)
            self._add({_counter_field(key_id, day, "r"): 1})
            if used is not None and current_version == version:
                self._set_last_used(key_id, used)
        return Admission(version=current_version, admitted=admitted, previous=previous, current=current)

    def touch(self, *, key_id: int, used: Use) -> None:
        with _local_lock:
            self._set_last_used(key_id, used)

    def count_error(self, *, key_id: int, day: date) -> None:
        with _local_lock:
            self._add({_counter_field(key_id, day, "e"): 1})

    def drain(self) -> UsageBatch:
        with _local_lock:
            counters = cache.get(_USAGE) or {}
            last_used = cache.get(_LAST_USED) or {}
            cache.delete_many([_USAGE, _LAST_USED])
        return _batch_from(counters, last_used)

    def restore(self, batch: UsageBatch) -> None:
        with _local_lock:
            amounts = {}
            for (key_id, day), (requests, errors) in batch.counts.items():
                amounts[_counter_field(key_id, day, "r")] = requests
                amounts[_counter_field(key_id, day, "e")] = errors
            self._add(amounts)
            last_used = cache.get(_LAST_USED) or {}
            for key_id, used in batch.last_used.items():
                last_used.setdefault(str(key_id), _last_used_value(used))
            cache.set(_LAST_USED, last_used, timeout=None)

    @staticmethod
    def _add(amounts: dict[str, int]) -> None:
        counters = cache.get(_USAGE) or {}
        for name, amount in amounts.items():
            counters[name] = counters.get(name, 0) + amount
        cache.set(_USAGE, counters, timeout=None)

    @staticmethod
    def _set_last_used(key_id: int, used: Use) -> None:
        last_used = cache.get(_LAST_USED) or {}
        last_used[str(key_id)] = _last_used_value(used)
        cache.set(_LAST_USED, last_used, timeout=None)


_redis_stores: "weakref.WeakKeyDictionary[RedisCache, RedisStore]" = weakref.WeakKeyDictionary()


def key_store() -> RedisStore | LocalStore:
    """The store for the default cache; a Redis store (and its client) is made once per cache connection."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return LocalStore()
    store = _redis_stores.get(backend)
    if store is None:
        store = _redis_stores[backend] = RedisStore(backend)
    return store

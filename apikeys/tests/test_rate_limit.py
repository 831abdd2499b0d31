"""The per-key rate limit (apikeys/ratelimit.py): a sliding-window counter judged in authentication's cache call.

Every test taking the `store` fixture runs twice: on the local-memory store (the defaults) and on the Redis
store and its Lua script (marked `services`, so it runs when PostgreSQL and Redis are configured). Time is the
`clock` fixture's; rate-limit windows are whole epoch minutes, and `at(seconds)` puts the clock that many
seconds after the start of the test's first minute (60.1 is just inside the next window).
"""

import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from apikeys.cache import LocalStore, RedisStore, key_store
from apikeys.ratelimit import WINDOW_MS, RateDecision, fits, wait_ms, window_position
from jewelia.core.testing import assert_error

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

URL = "/api/api-keys"
ROOT = Path(__file__).resolve().parents[2]
REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "apikeys-rate-limit-tests"}


@pytest.fixture(params=["locmem", pytest.param("redis", marks=pytest.mark.services)])
def store(request, settings):
    """The test's cache: local memory, or Redis (the Lua script). Both must follow the same algorithm."""
    redis = request.param == "redis"
    settings.CACHES = {"default": {"BACKEND": REDIS_BACKEND, "LOCATION": settings.REDIS_URL} if redis else LOCMEM}
    cache.clear()
    store = key_store()
    assert isinstance(store, RedisStore if redis else LocalStore)
    return store


@pytest.fixture
def at(clock):
    start = clock.now.replace(second=0, microsecond=0)

    def move(seconds: float) -> None:
        clock.now = start + timedelta(seconds=seconds)

    return move


def statuses(client, count: int) -> list[int]:
    return [client.get(URL).status_code for _ in range(count)]


def admitted(client, count: int) -> int:
    """How many of `count` requests made now get through (the rest are 429s)."""
    codes = statuses(client, count)
    assert set(codes) <= {200, 429}, codes
    return codes.count(200)


# -- over the limit: 429, Retry-After -------------------------------------------------------------------------------


def test_requests_over_the_limit_get_429_with_retry_after(store, clock):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=3)
    client = key_client(raw)
    assert statuses(client, 3) == [200, 200, 200]
    response = client.get(URL)
    error = assert_error(response, 429, "rate_limited")
    # The three requests made 5 s into the minute weigh 3 x (60 s - t) / 60 s in the next window: a fourth fits
    # as soon as that drops below 3, 1 ms into it, which is 55.001 s away.
    assert response["Retry-After"] == "56"
    assert error["message"] == "This API key is limited to 3 requests per minute."
    assert error["details"] == {"retry_after": 56, "limit_per_minute": 3}


def test_a_request_is_admitted_again_exactly_when_retry_after_says(store, clock, at):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=3)
    client = key_client(raw)
    at(5)
    statuses(client, 3)
    assert client.get(URL)["Retry-After"] == "56"
    at(5 + 55)
    response = client.get(URL)
    assert (response.status_code, response["Retry-After"]) == (429, "1")
    at(5 + 56)
    assert client.get(URL).status_code == 200


def test_retry_after_counts_the_previous_window_sliding_out(store, at):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=10)
    client = key_client(raw)
    at(59.9)
    assert admitted(client, 10) == 10
    at(60.1)
    assert admitted(client, 1) == 1  # 10 x 59.9/60 = 9.98 < 10: the share that slid out is one request
    response = client.get(URL)
    # Now 9.98 + 1: the next fits when 10 x (60 - t)/60 < 9, at t = 6.001 s, 5.901 s from now.
    assert (response.status_code, response["Retry-After"]) == (429, "6")
    at(66.0)
    assert client.get(URL).status_code == 429  # exactly 9 + 1: not below the limit yet
    at(66.1)
    assert client.get(URL).status_code == 200


def test_retry_after_does_not_grow_while_a_client_keeps_retrying(store, clock):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=2)
    client = key_client(raw)
    statuses(client, 2)
    refusals = [client.get(URL) for _ in range(5)]
    assert [(r.status_code, r["Retry-After"]) for r in refusals] == [(429, "56")] * 5
    clock.advance(seconds=56)
    assert client.get(URL).status_code == 200


# -- the sliding window ------------------------------------------------------------------------------------------


def test_the_limit_cannot_be_spent_twice_across_a_window_boundary(store, at):
    """A fixed window admitted the whole limit at 59.9 s and again at 60.1 s."""
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=20)
    client = key_client(raw)
    at(59.9)
    assert admitted(client, 20) == 20
    at(60.1)
    assert admitted(client, 20) == 1  # 20 x 59.9/60 = 19.97 of the last 60 s: one more fits, not 20


def test_across_a_boundary_only_the_share_that_slid_out_is_admitted(store, clock):
    """The limit is `limit x` the fraction of the previous window that left the last 60 s (0.1 s here)."""
    key, _ = create_key(scopes=["api_keys:read"], rate_limit_per_minute=1200)
    window, _ = window_position(clock.now)

    def admit(elapsed_ms: int) -> bool:
        number, elapsed = divmod(window * WINDOW_MS + elapsed_ms, WINDOW_MS)
        return store.admit(
            key_id=key.pk,
            public_id=key.public_id,
            version=0,
            limit=1200,
            window=number,
            elapsed_ms=elapsed,
            day=date.today(),
            used=None,
        ).admitted

    assert sum(admit(59_900) for _ in range(1200)) == 1200
    assert sum(admit(60_100) for _ in range(1200)) == 2  # 1200 x 0.1 / 60


def test_the_limit_comes_back_gradually_as_the_previous_window_slides_out(store, at):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=10)
    client = key_client(raw)
    at(59.9)
    assert admitted(client, 10) == 10
    at(60.1)
    assert admitted(client, 10) == 1
    at(66.5)  # the ten weigh 10 x 53.5/60 = 8.9, plus 1 counted: one more fits
    assert admitted(client, 10) == 1
    at(90)  # 10 x 30/60 = 5 plus 2 counted: three more
    assert admitted(client, 10) == 3
    at(120)  # the next window: this one's 5 at full weight
    assert admitted(client, 10) == 5
    at(150)  # 5 x 30/60 = 2.5 plus 5 counted: three more, each admitted while the estimate is below 10
    assert admitted(client, 10) == 3
    at(240)  # two quiet minutes later: the whole limit
    assert admitted(client, 12) == 10


def test_a_client_that_keeps_retrying_is_admitted_at_its_limit_and_never_locked_out(store, at):
    """Refused requests are not counted: a client retrying every 2 s gets its 3 a minute, every minute."""
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=3)
    client = key_client(raw)
    admitted_per_minute = [0] * 5
    for second in range(0, 300, 2):
        at(second)
        if client.get(URL).status_code == 200:
            admitted_per_minute[second // 60] += 1
    assert admitted_per_minute == [3, 3, 3, 3, 3]


def test_each_key_has_its_own_limit(store, clock):
    _, busy = create_key(scopes=["api_keys:read"], rate_limit_per_minute=1)
    _, quiet = create_key(scopes=["api_keys:read"], rate_limit_per_minute=1)
    key_client(busy).get(URL)
    assert key_client(busy).get(URL).status_code == 429
    assert key_client(quiet).get(URL).status_code == 200


def test_requests_refused_for_a_missing_scope_count_towards_the_limit(store, clock):
    _, raw = create_key(scopes=["orders:read"], rate_limit_per_minute=1)
    client = key_client(raw)
    assert client.get(URL).status_code == 403
    assert client.get(URL).status_code == 429


def test_requests_not_made_with_a_key_are_not_rate_limited(store, staff_client):
    assert {staff_client.get(URL).status_code for _ in range(5)} == {200}


@pytest.mark.services
def test_the_limit_is_shared_with_other_processes(clock):
    """Another process (another web worker) spends the key's budget in Redis; this process then gets 429."""
    key, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=5)
    window, elapsed_ms = window_position(clock.now)
    script = (
        "import datetime, django; django.setup();"
        "from apikeys.cache import key_store;"
        f"[key_store().admit(key_id={key.pk}, public_id={key.public_id!r}, version=0, limit=5, window={window},"
        f" elapsed_ms={elapsed_ms}, day=datetime.date.today(), used=None) for _ in range(5)]"
    )
    env = {"DJANGO_SETTINGS_MODULE": "jewelia.settings.test", "REDIS_URL": settings.REDIS_URL, "PATH": ""}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    assert key_client(raw).get(URL).status_code == 429


# -- the arithmetic ----------------------------------------------------------------------------------------------


def test_windows_are_epoch_minutes_in_whole_milliseconds(clock):
    start = clock.now.replace(second=0, microsecond=0)
    window, elapsed = window_position(start + timedelta(seconds=59.9))
    assert (window, elapsed) == (int(start.timestamp()) // 60, 59_900)
    assert window_position(start + timedelta(seconds=60.1)) == (window + 1, 100)


def test_wait_ms_is_the_first_moment_a_request_fits():
    def fits_after(limit, previous, current, elapsed_ms, wait):
        moment = elapsed_ms + wait
        if moment < WINDOW_MS:
            return fits(limit=limit, previous=previous, current=current, elapsed_ms=moment)
        if moment < 2 * WINDOW_MS:  # this window has become the previous one
            return fits(limit=limit, previous=current, current=0, elapsed_ms=moment - WINDOW_MS)
        return True

    rng = random.Random(7)
    for _ in range(20_000):
        limit = rng.choice([1, 2, 3, 10, 600, 10_000_000])
        previous, current = rng.randint(0, limit + 2), rng.randint(0, limit + 1)  # above the limit: it was lowered
        elapsed = rng.randrange(WINDOW_MS)
        wait = wait_ms(limit=limit, previous=previous, current=current, elapsed_ms=elapsed)
        assert fits_after(limit, previous, current, elapsed, wait)
        assert wait == 0 or not fits_after(limit, previous, current, elapsed, wait - 1)


def test_retry_after_is_whole_seconds_and_at_least_one():
    decision = RateDecision(limit=10, admitted=False, previous=10, current=1, elapsed_ms=100)
    assert decision.retry_after == 6  # 5.901 s
    almost = RateDecision(limit=10, admitted=False, previous=10, current=1, elapsed_ms=6_000)
    assert almost.retry_after == 1  # 1 ms

"""The concurrency limiter (`integrations.ratelimit`, added for QuickBooks' 10-requests-in-flight limit, sheet §5):
leased slots per key in-process and in Redis, waiting for a slot, and the QuickBooks client holding one per
request so that many workers never exceed the limit at the sandbox."""

import random
import threading
import uuid

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from integrations.errors import RateLimitedError
from integrations.providers.quickbooks.client import MAX_CONCURRENT
from integrations.ratelimit import (
    LocalConcurrencyLimiter,
    RedisConcurrencyLimiter,
    concurrency_slot,
    get_concurrency_limiter,
)
from integrations.sandbox.testing import FakeClock
from integrations.tests.providers import test_quickbooks as qb_fixtures
from integrations.tests.providers.test_quickbooks import qb_connect

# The provider fixture, shared with test_quickbooks.py (the sandbox fixtures come from conftest).
provider = qb_fixtures.provider


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def limiter(clock):
    return LocalConcurrencyLimiter(clock=clock.monotonic)


def take(limiter, n, *, key="realm-1", limit=3, lease=10.0):
    return [limiter.try_acquire(key, limit, lease=lease) for _ in range(n)]


# --- in-process slots ---------------------------------------------------------------------------------------------


def test_no_more_slots_than_the_limit_are_handed_out(limiter):
    tokens = take(limiter, 4)

    assert all(tokens[:3]) and tokens[3] is None
    assert limiter.in_flight("realm-1") == 3


def test_a_released_slot_can_be_taken_again(limiter):
    tokens = take(limiter, 3)

    limiter.release("realm-1", tokens[0])

    again = take(limiter, 2)
    assert again[0] is not None and again[1] is None
    assert limiter.in_flight("realm-1") == 3


def test_slots_of_different_keys_do_not_count_against_each_other(limiter):
    take(limiter, 3, key="realm-1")

    assert all(take(limiter, 3, key="realm-2"))


def test_a_slot_whose_holder_died_frees_itself_when_its_lease_ends(limiter, clock):
    take(limiter, 3, lease=30.0)
    clock.now += 29.0
    assert take(limiter, 1) == [None]

    clock.now += 1.5

    assert all(take(limiter, 3))


def test_releasing_an_unknown_or_expired_slot_is_harmless(limiter):
    limiter.release("realm-1", "no-such-token")
    limiter.release("never-used", "x")

    assert limiter.in_flight("realm-1") == 0


# --- waiting for a slot --------------------------------------------------------------------------------------------


def test_a_caller_waits_for_a_slot_and_holds_it_for_the_block(limiter, clock):
    held = take(limiter, 3)

    def free_one(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 2:
            limiter.release("realm-1", held[0])

    with concurrency_slot(
        limiter, "realm-1", 3, lease=10, max_wait=5, sleep=free_one, clock=clock.monotonic, poll=0.05
    ) as waited:
        assert limiter.in_flight("realm-1") == 3
    assert clock.sleeps == [0.05, 0.1]
    assert waited == pytest.approx(0.15)
    assert limiter.in_flight("realm-1") == 2


def test_a_caller_that_waited_too_long_hands_the_call_back_as_rate_limited(limiter, clock):
    take(limiter, 3)

    slot = concurrency_slot(limiter, "realm-1", 3, lease=10, max_wait=1.0, sleep=clock.sleep, clock=clock.monotonic)

    with pytest.raises(RateLimitedError, match="all 3 concurrent request slots for realm-1") as caught, slot:
        pytest.fail("must not run without a slot")
    assert caught.value.retry_after == 1.0
    assert sum(clock.sleeps) <= 1.0
    assert clock.sleeps[:4] == [0.05, 0.1, 0.2, 0.4]


def test_the_slot_is_released_when_the_block_raises(limiter, clock):
    slot = concurrency_slot(limiter, "realm-1", 3, lease=10, max_wait=1, sleep=clock.sleep, clock=clock.monotonic)

    with pytest.raises(ZeroDivisionError), slot:
        1 / 0  # noqa: B018

    assert limiter.in_flight("realm-1") == 0


# --- Redis ------------------------------------------------------------------------------------------------------------


def unreachable_redis() -> redis.Redis:
    return redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def test_when_redis_is_unreachable_slots_come_from_this_process(caplog, clock):
    limiter = RedisConcurrencyLimiter(unreachable_redis(), fallback=LocalConcurrencyLimiter(clock=clock.monotonic),
                                      clock=clock.monotonic)  # fmt: skip

    tokens = [limiter.try_acquire("k", 2, lease=5) for _ in range(3)]
    limiter.release("k", tokens[0])

    assert [t is not None for t in tokens] == [True, True, False]
    assert tokens[0].startswith("local:")
    assert limiter.fallback.in_flight("k") == 1
    assert caplog.text.count("Redis unavailable") == 1  # tried once, then the fallback for 30 s


def test_the_process_concurrency_limiter_is_local_without_redis_and_in_redis_with_it(settings):
    settings.REDIS_URL = ""
    assert isinstance(get_concurrency_limiter(), LocalConcurrencyLimiter)
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    assert isinstance(get_concurrency_limiter(), RedisConcurrencyLimiter)


@pytest.fixture
def redis_client(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.mark.services
def test_redis_slots_are_shared_by_every_limiter_on_the_same_redis(redis_client, settings):
    key = f"test-{uuid.uuid4().hex}"
    one, other = (
        RedisConcurrencyLimiter(redis_client),
        RedisConcurrencyLimiter(redis.Redis.from_url(settings.REDIS_URL)),
    )

    mine = [one.try_acquire(key, 3, lease=5) for _ in range(2)]
    theirs = [other.try_acquire(key, 3, lease=5) for _ in range(2)]
    other.release(key, mine[0])  # any process may give a slot back with its token

    assert all(mine) and theirs[0] and theirs[1] is None
    assert one.try_acquire(key, 3, lease=5) is not None


@pytest.mark.services
def test_a_redis_slot_frees_itself_when_its_lease_ends(redis_client):
    import time

    key = f"test-{uuid.uuid4().hex}"
    limiter = RedisConcurrencyLimiter(redis_client)
    assert limiter.try_acquire(key, 1, lease=0.2)
    assert limiter.try_acquire(key, 1, lease=0.2) is None

    time.sleep(0.3)

    assert limiter.try_acquire(key, 1, lease=0.2) is not None
    assert 0 < redis_client.pttl(f"jewelia:concurrency:{key}") <= 1200


# --- the QuickBooks client -----------------------------------------------------------------------------------------


def test_the_sandbox_answers_429_past_ten_requests_in_flight(make_qb_sandbox):
    sandbox = make_qb_sandbox(latency=0.3)
    url = f"{sandbox.url}/v3/company/{sandbox.realm_id}/query?minorversion=75"
    headers = {"Authorization": f"Bearer {sandbox.credentials()['access_token']}"}
    statuses = []

    def call():
        statuses.append(requests.post(url, data=b"SELECT COUNT(*) FROM Item", headers=headers, timeout=5).status_code)

    threads = [threading.Thread(target=call) for _ in range(14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sandbox.max_in_flight > 10
    assert statuses.count(429) >= 1 and statuses.count(200) >= 10


def test_twenty_workers_calling_at_once_never_exceed_the_limit_and_all_succeed(provider, make_qb_sandbox):
    sandbox = make_qb_sandbox(latency=0.05, realm_id=str(random.randrange(10**15, 10**16)))
    connection = qb_connect(provider, sandbox, rate_limiting=True)
    errors = []

    def work():
        try:
            provider.check_connection(connection)
        except Exception as exc:  # collected: a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(sandbox.requests_to(r"/query$")) == 20  # no 429, so no retries
    assert 1 < sandbox.max_in_flight <= MAX_CONCURRENT


def test_without_client_side_limiting_no_slot_is_taken(provider, make_qb_sandbox):
    sandbox = make_qb_sandbox()
    connection = qb_connect(provider, sandbox, rate_limiting=False)

    client = provider.client(connection)

    assert not hasattr(client, "_concurrency")
    assert isinstance(client.session, requests.Session)

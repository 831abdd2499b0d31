"""The client-side rate limiter: a token bucket per integration, shared by threads, processes and (in Redis) hosts."""

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from integrations.providers.base import RateLimit
from integrations.ratelimit import LocalRateLimiter, RedisRateLimiter, get_rate_limiter
from integrations.sandbox.testing import FakeClock

ROOT = Path(__file__).resolve().parents[2]
RATE = RateLimit(requests=2, per_seconds=1.0, burst=3)  # 3 at once, then one every 0.5 s
FAST = RateLimit(requests=20, per_seconds=1.0, burst=5)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def limiter(clock):
    return LocalRateLimiter(clock=clock.monotonic)


def take(limiter, n, *, key="k", rate=RATE, max_wait=60.0):
    return [limiter.acquire(key, rate, max_wait=max_wait) for _ in range(n)]


def test_a_burst_goes_at_once_then_calls_are_spaced_at_the_refill_rate(limiter):
    assert take(limiter, 5) == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_reserved_slots_are_honoured_as_time_passes(limiter, clock):
    take(limiter, 5)
    clock.now += 1.0  # the two reserved calls have now gone

    assert take(limiter, 2) == [0.5, 1.0]


def test_an_idle_bucket_refills_only_up_to_its_burst(limiter, clock):
    take(limiter, 3)
    clock.now += 3600

    assert take(limiter, 4) == [0.0, 0.0, 0.0, 0.5]


def test_a_wait_longer_than_the_caller_accepts_reserves_nothing(limiter):
    take(limiter, 3)

    assert limiter.acquire("k", RATE, max_wait=0.1) == 0.5
    assert limiter.acquire("k", RATE, max_wait=10) == 0.5  # the refused call did not take the slot


def test_buckets_are_per_key(limiter):
    take(limiter, 3, key="shop-a")

    assert take(limiter, 1, key="shop-b") == [0.0]


def test_defer_pauses_everyone_then_lets_one_call_go_and_the_rest_follow_at_the_rate(limiter):
    take(limiter, 1)
    limiter.defer("k", RATE, 2.0)

    assert take(limiter, 3) == [2.0, 2.5, 3.0]


def test_a_shorter_defer_never_shortens_a_longer_one(limiter):
    limiter.defer("k", RATE, 5.0)
    limiter.defer("k", RATE, 1.0)

    assert take(limiter, 1) == [5.0]


def run_together(limiter, workers: int, seconds: float) -> list[list[float]]:
    """Each worker takes tokens (sleeping the waits for real) until `seconds` have passed; their call times."""
    start = time.monotonic() + 0.05
    stamps: list[list[float]] = [[] for _ in range(workers)]

    def work(mine: list[float]) -> None:
        while time.monotonic() < start:
            time.sleep(0.001)
        while True:
            time.sleep(limiter.acquire("shared", FAST, max_wait=5.0))
            now = time.monotonic()
            if now >= start + seconds:
                return
            mine.append(now)

    threads = [threading.Thread(target=work, args=(mine,)) for mine in stamps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stamps


def test_two_threads_sharing_the_limiter_together_stay_within_the_limit():
    stamps = run_together(LocalRateLimiter(), workers=2, seconds=1.0)

    total = sum(len(s) for s in stamps)
    assert total <= 5 + 20 * 1.0 + 1  # burst + refill over the window (+1 for the clock's edge)
    assert total >= 18  # and the limit is used, not starved
    assert all(len(s) >= 3 for s in stamps)


def unreachable_redis(**kwargs) -> redis.Redis:
    with socket_closed_port() as port:
        return redis.Redis(port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0), **kwargs)


def test_when_redis_is_unreachable_the_limiter_falls_back_to_this_process(caplog, clock):
    client = unreachable_redis()
    limiter = RedisRateLimiter(client, fallback=LocalRateLimiter(clock=clock.monotonic), clock=clock.monotonic)

    assert take(limiter, 4) == [0.0, 0.0, 0.0, 0.5]
    assert caplog.text.count("Redis unavailable") == 1  # tried once, then the fallback for the next 30 s


def test_redis_is_tried_again_after_the_fallback_interval(caplog, clock):
    limiter = RedisRateLimiter(unreachable_redis(), retry_after_error=30.0, clock=clock.monotonic)
    take(limiter, 1)
    clock.now += 31

    take(limiter, 1)

    assert caplog.text.count("Redis unavailable") == 2


def test_the_process_limiter_is_local_without_redis_and_in_redis_with_it(settings):
    settings.REDIS_URL = ""
    assert isinstance(get_rate_limiter(), LocalRateLimiter)
    assert get_rate_limiter() is get_rate_limiter()

    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    assert isinstance(get_rate_limiter(), RedisRateLimiter)


class socket_closed_port:
    def __enter__(self) -> int:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def __exit__(self, *exc) -> None:
        pass


# --- Redis: the bucket every worker on every host shares ------------------------------------------------------------
@pytest.fixture
def redis_url(settings):
    """The configured Redis, on a database of its own: the suite's cache clearing (FLUSHDB of the cache's
    database, by this or a parallel test run) must not reset a bucket in the middle of a measurement."""
    return urlunsplit(urlsplit(settings.REDIS_URL)._replace(path="/15"))


@pytest.fixture
def redis_limiter(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield RedisRateLimiter(client)
    for key in client.scan_iter("jewelia:ratelimit:test-*"):
        client.delete(key)


@pytest.mark.services
def test_the_redis_bucket_bursts_then_spaces_calls(redis_limiter):
    key = f"test-{uuid.uuid4().hex}"
    waits = [redis_limiter.acquire(key, RATE, max_wait=60) for _ in range(5)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.45 < waits[3] <= 0.5 and 0.95 < waits[4] <= 1.0  # Redis's clock moved a little between calls


@pytest.mark.services
def test_a_redis_defer_is_seen_by_every_client(redis_limiter, redis_url):
    key = f"test-{uuid.uuid4().hex}"
    other = RedisRateLimiter(redis.Redis.from_url(redis_url))

    redis_limiter.defer(key, RATE, 3.0)

    assert 2.9 < other.acquire(key, RATE, max_wait=60) <= 3.0


_WORKER = """
import json, sys, time
import redis
from integrations.providers.base import RateLimit
from integrations.ratelimit import RedisRateLimiter

url, key, start, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
limiter = RedisRateLimiter(redis.Redis.from_url(url))
rate = RateLimit(requests=20, per_seconds=1.0, burst=5)
while time.time() < start:
    time.sleep(0.001)
stamps = []
while True:
    time.sleep(limiter.acquire(key, rate, max_wait=5.0))
    now = time.time()
    if now >= start + seconds:
        break
    stamps.append(now)
print(json.dumps(stamps))
"""


@pytest.mark.services
def test_two_processes_sharing_the_redis_limiter_together_stay_within_the_limit(redis_limiter, redis_url):
    key = f"test-{uuid.uuid4().hex}"
    start = time.time() + 1.5  # both processes are up and waiting by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, key, str(start), "1.0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    stamps = [json.loads(p.communicate(timeout=30)[0]) for p in processes]

    total = sum(len(s) for s in stamps)
    assert total <= 5 + 20 * 1.0 + 1
    assert total >= 18
    assert all(len(s) >= 3 for s in stamps)


def test_limiter_warnings_name_no_secrets(caplog):
    caplog.set_level(logging.WARNING)

    RedisRateLimiter(unreachable_redis(password="hunter2-secret")).defer("k", RATE, 1.0)

    assert "hunter2-secret" not in caplog.text

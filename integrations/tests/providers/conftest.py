"""Fixtures for provider tests: the sandboxes, a fake clock, and HTTP seams that never really sleep."""

import pytest

from integrations.http import RetryPolicy, http_overrides
from integrations.ratelimit import LocalRateLimiter
from integrations.sandbox.testing import FakeClock  # the sandboxes' fixtures come from integrations/tests/conftest.py


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_time(clock):
    """Every HTTP client in the test sleeps on `clock` (recorded, instant), jitters at exactly half the
    backoff ceiling, and rate-limits against an in-process bucket on the same clock."""
    policy = RetryPolicy(max_attempts=4, max_wait=30.0, backoff_base=0.5, backoff_cap=30.0, read_timeout=5.0)
    with http_overrides(
        sleep=clock.sleep,
        clock=clock.monotonic,
        random=lambda: 0.5,
        limiter=LocalRateLimiter(clock=clock.monotonic),
        policy=policy,
    ):
        yield clock

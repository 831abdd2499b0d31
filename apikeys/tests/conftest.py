from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from .factories import create_key


class Clock:
    """A controllable `timezone.now()`: every apikeys module reads time through it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    # Five seconds into a minute, so a test's requests share one rate-limit window.
    clock = Clock(datetime.now(UTC).replace(second=5, microsecond=0))
    monkeypatch.setattr("django.utils.timezone.now", clock)
    return clock


def key_client(raw: str, *, header: str = "bearer", ip: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    else:
        client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def admin_key(db):
    """A key holding every api_keys scope: (row, key)."""
    return create_key(name="Key manager")

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import assert_error, key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

URL = "/api/api-keys"
ROOT = Path(__file__).resolve().parents[2]


def test_requests_over_the_limit_get_429_with_retry_after(clock):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=3)
    client = key_client(raw)
    assert [client.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(URL)
    error = assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "55"  # the clock is 5 s into the minute
    assert error["details"] == {"retry_after": 55, "limit_per_minute": 3}


def test_key_recovers_when_the_next_window_starts(clock):
    _, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=2)
    client = key_client(raw)
    for _ in range(3):
        client.get(URL)
    clock.advance(seconds=54)
    assert client.get(URL).status_code == 429
    clock.advance(seconds=1)
    assert client.get(URL).status_code == 200


def test_each_key_has_its_own_limit(clock):
    _, busy = create_key(scopes=["api_keys:read"], rate_limit_per_minute=1)
    _, quiet = create_key(scopes=["api_keys:read"], rate_limit_per_minute=1)
    key_client(busy).get(URL)
    assert key_client(busy).get(URL).status_code == 429
    assert key_client(quiet).get(URL).status_code == 200


def test_requests_refused_for_a_missing_scope_count_towards_the_limit(clock):
    _, raw = create_key(scopes=["orders:read"], rate_limit_per_minute=1)
    client = key_client(raw)
    assert client.get(URL).status_code == 403
    assert client.get(URL).status_code == 429


@pytest.mark.services
def test_the_limit_is_shared_with_other_processes(clock):
    """Another process (another web worker) spends the key's budget in Redis; this process then gets 429."""
    key, raw = create_key(scopes=["api_keys:read"], rate_limit_per_minute=5)
    window = int(clock.now.timestamp() // 60)
    script = (
        "import datetime, django; django.setup();"
        "from apikeys.cache import key_store;"
        f"[key_store().admit(key_id={key.pk}, public_id={key.public_id!r}, version=0, window={window}, ttl=120,"
        " day=datetime.date.today(), used=None) for _ in range(5)]"
    )
    env = {"DJANGO_SETTINGS_MODULE": "jewelia.settings.test", "REDIS_URL": settings.REDIS_URL, "PATH": ""}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    assert key_client(raw).get(URL).status_code == 429

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.connection import AbstractConnection
from rest_framework.test import APIClient

from apikeys import tokens
from apikeys.authentication import ApiKeyPrincipal
from apikeys.cache import RedisStore, key_store
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke, api_key_update, api_key_usage_flush
from jewelia.core.actors import Actor
from jewelia.core.testing import assert_error

from .conftest import key_client
from .factories import create_key

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]

URL = "/api/test/orders-scoped/"


def _without_request_id(response) -> dict:
    error = dict(response.json()["error"])
    error.pop("request_id")
    return error


def test_bearer_key_authenticates_and_the_key_is_the_actor():
    key, raw = create_key(name="Shop sync", scopes=["orders:read"])
    response = key_client(raw).get(URL)
    assert response.status_code == 200
    assert response.json() == {"actor": ["api_key", str(key.pk), "Shop sync"], "user": f"api-key:{key.identifier}"}


def test_x_api_key_header_authenticates():
    key, raw = create_key(scopes=["orders:read"])
    response = key_client(raw, header="x-api-key").get(URL)
    assert response.status_code == 200
    assert response.json()["actor"][:2] == ["api_key", str(key.pk)]


def test_missing_credentials_get_401_with_www_authenticate(api_client):
    response = api_client.get(URL)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "raw",
    ["not-a-key", "jwl_", "Bearer", "jwl_AbCdEfGh1234_" + "a" * 49],
    ids=["garbage", "prefix-only", "scheme-word", "bad-checksum"],
)
def test_malformed_key_gets_401_without_touching_the_database(raw):
    with CaptureQueriesContext(connection) as queries:
        response = key_client(raw).get(URL)
    error = assert_error(response, 401, "authentication_failed")
    assert error["message"] == "Invalid API key."
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert len(queries) == 0


def test_truncated_real_key_gets_401_without_touching_the_database():
    _, raw = create_key(scopes=["orders:read"])
    with CaptureQueriesContext(connection) as queries:
        response = key_client(raw[:-1]).get(URL)
    assert_error(response, 401, "authentication_failed")
    assert len(queries) == 0


def test_unknown_key_gets_401():
    raw = tokens.generate(tokens.new_public_id())
    response = key_client(raw).get(URL)
    error = assert_error(response, 401, "authentication_failed")
    assert error["message"] == "Invalid API key."
    assert error["details"] == {"reason": "invalid"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_wrong_secret_for_a_real_identifier_looks_exactly_like_an_unknown_key():
    key, _ = create_key(scopes=["orders:read"])
    wrong_secret = tokens.generate(key.public_id)
    unknown = tokens.generate(tokens.new_public_id())
    assert _without_request_id(key_client(wrong_secret).get(URL)) == _without_request_id(key_client(unknown).get(URL))


def test_expired_key_gets_401(clock):
    _, raw = create_key(scopes=["orders:read"], expires_at=clock.now + timedelta(hours=1))
    clock.advance(hours=1)
    error = assert_error(key_client(raw).get(URL), 401, "authentication_failed")
    assert error["message"] == "This API key has expired."
    assert error["details"] == {"reason": "expired"}


def test_key_works_until_its_expiry(clock):
    _, raw = create_key(scopes=["orders:read"], expires_at=clock.now + timedelta(hours=1))
    clock.advance(minutes=59, seconds=59)
    assert key_client(raw).get(URL).status_code == 200


def test_revoked_key_gets_401_on_its_next_request(django_capture_on_commit_callbacks):
    key, raw = create_key(scopes=["orders:read"])
    client = key_client(raw)
    assert client.get(URL).status_code == 200  # the row is now cached
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(key=key, actor=Actor.system("tests"))
    response = client.get(URL)
    error = assert_error(response, 401, "authentication_failed")
    assert error["details"] == {"reason": "revoked"}
    assert "WWW-Authenticate" in response


def test_key_from_an_address_outside_its_networks_gets_401():
    _, raw = create_key(scopes=["orders:read"], allowed_networks=["203.0.113.0/24", "2001:db8::/32"])
    error = assert_error(key_client(raw, ip="198.51.100.7").get(URL), 401, "authentication_failed")
    assert error["details"] == {"reason": "ip_not_allowed"}


@pytest.mark.parametrize("ip", ["203.0.113.9", "2001:db8::1"])
def test_key_from_an_allowed_network_authenticates(ip):
    _, raw = create_key(scopes=["orders:read"], allowed_networks=["203.0.113.0/24", "2001:db8::/32"])
    assert key_client(raw, ip=ip).get(URL).status_code == 200


def test_allow_list_uses_the_forwarded_address_only_behind_trusted_proxies(settings):
    _, raw = create_key(scopes=["orders:read"], allowed_networks=["203.0.113.0/24"])
    client = key_client(raw, ip="10.0.0.2")
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert client.get(URL, **forwarded).status_code == 401
    settings.APIKEYS_TRUSTED_PROXY_COUNT = 1
    assert client.get(URL, **forwarded).status_code == 200
    # A client cannot smuggle an allowed address in front of what the proxy appended.
    assert client.get(URL, HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7").status_code == 401


def test_cached_key_row_authenticates_without_database_queries():
    _, raw = create_key(scopes=["orders:read"])
    client = key_client(raw)
    with CaptureQueriesContext(connection) as first:
        client.get(URL)
    with CaptureQueriesContext(connection) as second:
        assert client.get(URL).status_code == 200
    assert [query["sql"].split(" ")[0] for query in first] == ["SELECT"]
    assert len(second) == 0


@pytest.mark.services
def test_a_request_with_a_cached_key_costs_one_redis_round_trip(monkeypatch):
    """The benchmarked hot path: verify, judge the rate limit and count usage in one Lua call, no other I/O."""
    assert isinstance(key_store(), RedisStore)
    _, raw = create_key(scopes=["orders:read"])
    client = key_client(raw)
    assert client.get(URL).status_code == 200  # caches the row here and in Redis, loads the Lua script
    sent = []
    send = AbstractConnection.send_packed_command

    def counted(connection, command, check_health=True):
        sent.append(command)
        return send(connection, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL).status_code == 200
        assert len(sent) == 1
        assert_error(key_client(raw[:-1]).get(URL), 401, "authentication_failed")  # refused before any lookup
        assert len(sent) == 1
    assert len(queries) == 0


def test_staff_basic_auth_still_works(staff_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic c3RhZmY6cHc=")  # staff:pw
    assert client.get(URL).status_code == 200


def test_staff_session_still_works(staff_user):
    client = APIClient()
    client.login(username="staff", password="pw")
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json()["actor"] == ["user", str(staff_user.pk), "staff"]


def test_a_change_made_elsewhere_replaces_this_process_cached_row(clock, django_capture_on_commit_callbacks):
    key, raw = create_key(name="Before", scopes=["orders:read"])
    client = key_client(raw, ip="203.0.113.1")
    assert client.get(URL).json()["actor"][2] == "Before"  # cached in this process
    with django_capture_on_commit_callbacks(execute=True):
        api_key_update(key=key, actor=Actor.system("tests"), name="After")
    clock.advance(seconds=10)
    assert client.get(URL).json()["actor"][2] == "After"
    api_key_usage_flush()
    key.refresh_from_db()
    assert key.last_used_at == clock.now


def test_with_row_caching_off_every_request_reads_the_database(settings):
    settings.APIKEYS_KEY_CACHE_SECONDS = 0
    key, raw = create_key(scopes=["orders:read"])
    client = key_client(raw)
    assert client.get(URL).status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # behind the services' back
    assert_error(client.get(URL), 401, "authentication_failed")


def test_request_user_is_an_authenticated_non_staff_principal():
    key, raw = create_key(scopes=["orders:read"])
    response = key_client(raw).get(URL)
    assert response.json()["user"] == f"api-key:{key.identifier}"
    principal = ApiKeyPrincipal(key)
    assert (principal.is_authenticated, principal.is_anonymous, principal.is_active) == (True, False, True)
    assert (principal.is_staff, principal.is_superuser, principal.has_perm("apikeys.view_apikey")) == (
        False,
        False,
        False,
    )


def test_unreachable_cache_refuses_key_requests_with_503(monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from apikeys import authentication

    _, raw = create_key(scopes=["orders:read"])

    def unreachable(public_id, *, fresh=False):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(authentication, "key_lookup", unreachable)
    error = assert_error(key_client(raw).get(URL), 503, "service_unavailable")
    assert error["message"] == "API keys cannot be checked right now; retry shortly."

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys import services
from apikeys.models import ApiKey, ApiKeyUsage
from apikeys.services import usage as usage_service
from apikeys.tasks import flush_usage

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

URL = "/api/api-keys"


def _usage(key) -> list[tuple[date, int, int]]:
    return list(
        ApiKeyUsage.objects.filter(api_key=key).order_by("date").values_list("date", "request_count", "error_count")
    )


def test_requests_and_errors_are_counted_after_a_flush(clock):
    key, raw = create_key(scopes=["api_keys:read"])
    client = key_client(raw, ip="198.51.100.4")
    client.get(URL)
    client.get(URL)
    client.get(f"{URL}/999999")  # 404
    client.post(URL, {}, format="json")  # 403: no api_keys:write
    assert _usage(key) == []
    assert flush_usage.delay().get() == 4
    assert _usage(key) == [(clock.now.date(), 4, 2)]
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (clock.now, "198.51.100.4")


def test_counting_a_request_writes_nothing_to_the_database(clock):
    _, raw = create_key(scopes=["api_keys:read"])
    client = key_client(raw)
    client.get(f"{URL}/999999")  # caches the key row
    with CaptureQueriesContext(connection) as queries:
        client.get(f"{URL}/999999")
    assert [query["sql"].split(" ")[0] for query in queries] == ["SELECT"]  # the view's own lookup


def test_a_second_flush_adds_only_new_requests(clock):
    key, raw = create_key(scopes=["api_keys:read"])
    client = key_client(raw)
    client.get(URL)
    services.api_key_usage_flush()
    assert services.api_key_usage_flush() == 0
    client.get(URL)
    client.get(URL)
    services.api_key_usage_flush()
    assert _usage(key) == [(clock.now.date(), 3, 0)]


def test_requests_land_on_their_own_utc_day(clock):
    key, raw = create_key(scopes=["api_keys:read"])
    client = key_client(raw)
    clock.now = clock.now.replace(hour=23, minute=59, second=50)
    client.get(URL)
    clock.advance(seconds=20)
    client.get(URL)
    client.get(URL)
    services.api_key_usage_flush()
    first = clock.now.date() - timedelta(days=1)
    assert _usage(key) == [(first, 1, 0), (clock.now.date(), 2, 0)]


def test_counts_survive_a_failed_database_write(clock, monkeypatch):
    key, raw = create_key(scopes=["api_keys:read"])
    key_client(raw).get(URL)

    def broken(batch):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(usage_service, "_write_usage", broken)
    with pytest.raises(RuntimeError):
        services.api_key_usage_flush()
    monkeypatch.undo()
    assert services.api_key_usage_flush() == 1
    assert _usage(key) == [(clock.now.date(), 1, 0)]


def test_refused_requests_of_a_real_key_count_as_errors_but_not_as_use(clock, django_capture_on_commit_callbacks):
    key, raw = create_key(scopes=["api_keys:read"])
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(key=key, actor=key.as_actor())
    key_client(raw).get(URL)
    services.api_key_usage_flush()
    assert _usage(key) == [(clock.now.date(), 1, 1)]
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None


def test_last_used_never_moves_backwards(clock):
    key, raw = create_key(scopes=["api_keys:read"])
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=clock.now + timedelta(minutes=5), last_used_ip="10.0.0.1")
    key_client(raw).get(URL)
    services.api_key_usage_flush()
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (clock.now + timedelta(minutes=5), "10.0.0.1")


def test_usage_endpoint_lists_each_day_with_zeros(staff_client, clock):
    key, raw = create_key(scopes=["api_keys:read"])
    today = clock.now.date()
    ApiKeyUsage.objects.create(api_key=key, date=today - timedelta(days=2), request_count=7, error_count=1)
    key_client(raw).get(URL)
    services.api_key_usage_flush()
    body = staff_client.get(f"{URL}/{key.pk}/usage", {"days": 3}).json()
    assert body == {
        "days": 3,
        "daily": [
            {"date": str(today - timedelta(days=2)), "requests": 7, "errors": 1},
            {"date": str(today - timedelta(days=1)), "requests": 0, "errors": 0},
            {"date": str(today), "requests": 1, "errors": 0},
        ],
        "requests": 8,
        "errors": 1,
        "last_used_at": clock.now.isoformat().replace("+00:00", "Z"),
        "last_used_ip": "127.0.0.1",
    }


def test_usage_defaults_to_30_days_and_refuses_bad_days(staff_client):
    key, _ = create_key()
    assert len(staff_client.get(f"{URL}/{key.pk}/usage").json()["daily"]) == 30
    assert staff_client.get(f"{URL}/{key.pk}/usage", {"days": 0}).status_code == 400
    assert staff_client.get(f"{URL}/{key.pk}/usage", {"days": 367}).status_code == 400


def test_detail_carries_the_usage_summary(staff_client, clock):
    key, _ = create_key()
    today = clock.now.date()
    ApiKeyUsage.objects.create(api_key=key, date=today, request_count=5, error_count=2)
    ApiKeyUsage.objects.create(api_key=key, date=today - timedelta(days=29), request_count=10, error_count=0)
    ApiKeyUsage.objects.create(api_key=key, date=today - timedelta(days=30), request_count=100, error_count=100)
    assert staff_client.get(f"{URL}/{key.pk}").json()["usage"] == {
        "requests_today": 5,
        "errors_today": 2,
        "requests_last_30_days": 15,
        "errors_last_30_days": 2,
        "last_used_at": None,
        "last_used_ip": None,
    }

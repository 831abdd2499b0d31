"""After creation, neither a key nor its hash appears in any API response, log line or admin page."""

import logging

import pytest
from django.urls import reverse

from apikeys import services
from apikeys.models import ApiKey

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

URL = "/api/api-keys"


def _secrets(key: ApiKey, raw: str) -> list[str]:
    return [raw, raw[4:], raw.rsplit("_", 1)[1], key.key_hash]


def _assert_clean(text: str, key: ApiKey, raw: str) -> None:
    for secret in _secrets(key, raw):
        assert secret not in text
    assert "key_hash" not in text


def test_no_api_response_after_creation_shows_the_key_or_its_hash(staff_client, django_capture_on_commit_callbacks):
    created = staff_client.post(URL, {"name": "Shop", "scopes": ["api_keys:read", "api_keys:write"]}, format="json")
    raw = created.json()["key"]
    key = ApiKey.objects.get()
    assert key.key_hash not in created.content.decode()
    client = key_client(raw)
    responses = [
        staff_client.get(URL),
        staff_client.get(f"{URL}/{key.pk}"),
        staff_client.get(f"{URL}/{key.pk}/usage"),
        staff_client.patch(f"{URL}/{key.pk}", {"description": "changed"}, format="json"),
        client.get(URL),
        client.get(f"{URL}/{key.pk}"),
        client.post(URL, {"name": "x", "scopes": ["orders:write"]}, format="json"),  # 403
        key_client(raw[:-1]).get(URL),  # 401
        staff_client.get("/api/schema/"),
    ]
    rotated = staff_client.post(f"{URL}/{key.pk}/rotate", {"grace_period": "1h"}, format="json")
    assert rotated.status_code == 201
    responses += [rotated, staff_client.get(URL)]
    for response in responses:
        _assert_clean(response.content.decode(), key, raw)


def test_no_log_line_shows_a_key_or_its_hash(staff_client, caplog, django_capture_on_commit_callbacks):
    with caplog.at_level(logging.DEBUG):
        key, raw = create_key(name="Logged", scopes=["api_keys:read", "api_keys:write"])
        client = key_client(raw)
        client.get(URL)
        client.get(f"{URL}/424242")
        client.post(URL, {"name": "x", "scopes": ["orders:write"]}, format="json")
        key_client(raw + "x").get(URL)
        with django_capture_on_commit_callbacks(execute=True):
            new, new_raw = services.api_key_rotate(key=key, actor=key.as_actor())
            services.api_key_revoke(key=new, actor=key.as_actor())
        client.get(URL)
        services.api_key_usage_flush()
    assert caplog.records  # the actions above do log
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''} {getattr(record, 'request', '')}"
        for record in caplog.records
    )
    _assert_clean(logged, key, raw)
    _assert_clean(logged, new, new_raw)


def test_no_admin_page_after_creation_shows_the_key_or_its_hash(admin_client):
    shown = admin_client.post(
        reverse("admin:apikeys_apikey_add"),
        {"name": "Admin made", "scopes": ["orders:read"], "rate_limit_per_minute": "60"},
    )
    key = ApiKey.objects.get()
    page = shown.content.decode()
    raw = next(
        word for word in page.replace("<", " ").replace(">", " ").split() if word.startswith("jwl_") and len(word) == 66
    )
    assert key.key_hash not in page
    pages = [
        admin_client.get(reverse("admin:apikeys_apikey_changelist")),
        admin_client.get(reverse("admin:apikeys_apikey_change", args=[key.pk])),
        admin_client.get(reverse("admin:apikeys_apikey_history", args=[key.pk])),
        admin_client.get(reverse("admin:apikeys_apikey_add")),
        admin_client.get(reverse("admin:index")),
    ]
    for response in pages:
        assert response.status_code == 200
        _assert_clean(response.content.decode(), key, raw)


def test_error_reports_hide_both_key_headers(rf):
    from django.views.debug import SafeExceptionReporterFilter

    _, raw = create_key()
    request = rf.get("/api/api-keys", HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_API_KEY=raw)
    meta = SafeExceptionReporterFilter().get_safe_request_meta(request)
    assert raw not in repr(meta)

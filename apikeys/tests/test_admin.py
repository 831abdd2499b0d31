import re
from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from apikeys import tokens
from apikeys.models import ApiKey, ApiKeyUsage

from .factories import create_key

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"jwl_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}")
CHANGELIST = "admin:apikeys_apikey_changelist"


def _keys_on(response) -> list[str]:
    return KEY_PATTERN.findall(response.content.decode())


def test_creating_a_key_shows_it_once(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:apikeys_apikey_add"),
        {
            "name": "POS",
            "description": "",
            "scopes": ["orders:read", "products:read"],
            "allowed_networks": "10.0.0.0/8",
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    [raw] = _keys_on(response)
    key = ApiKey.objects.get()
    assert tokens.matches(raw, key.key_hash)
    assert (key.name, key.scopes, key.allowed_networks) == ("POS", ["orders:read", "products:read"], ["10.0.0.0/8"])
    assert (key.created_by_type, key.created_by_id) == ("user", str(admin_user.pk))
    assert _keys_on(admin_client.get(reverse("admin:apikeys_apikey_change", args=[key.pk]))) == []


def test_invalid_creation_form_shows_errors_and_creates_nothing(admin_client):
    response = admin_client.post(
        reverse("admin:apikeys_apikey_add"), {"name": "POS", "scopes": [], "allowed_networks": "not-a-net"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"scopes", "allowed_networks"}
    assert ApiKey.objects.count() == 0


def test_changelist_shows_status_scopes_and_requests_today(admin_client, clock):
    active, _ = create_key(name="Active one", scopes=["orders:read"])
    expiring, _ = create_key(name="Expiring one", expires_at=clock.now + timedelta(days=2))
    ApiKeyUsage.objects.create(api_key=active, date=clock.now.date(), request_count=321)
    ApiKeyUsage.objects.create(api_key=active, date=clock.now.date() - timedelta(days=1), request_count=999)
    response = admin_client.get(reverse(CHANGELIST))
    rows = {key.pk: key for key in response.context["cl"].result_list}
    assert rows[active.pk].requests_today == 321
    assert rows[expiring.pk].requests_today == 0
    page = response.content.decode()
    for text in (active.identifier, "orders:read", "Active", "Expiring soon", "321"):
        assert text in page


def test_changelist_filters_by_status(admin_client, clock):
    create_key(name="Fine")
    create_key(name="Soon", expires_at=clock.now + timedelta(days=2))
    response = admin_client.get(reverse(CHANGELIST), {"status": "expiring"})
    assert [key.name for key in response.context["cl"].result_list] == ["Soon"]


def _change_form(key, **overrides) -> dict:
    return {
        "name": key.name,
        "description": key.description,
        "scopes": key.scopes,
        "expires_at_0": f"{key.expires_at:%Y-%m-%d}",
        "expires_at_1": f"{key.expires_at:%H:%M:%S}",
        "allowed_networks": "\n".join(key.allowed_networks),
        "rate_limit_per_minute": str(key.rate_limit_per_minute),
        "usage-TOTAL_FORMS": "0",
        "usage-INITIAL_FORMS": "0",
        **overrides,
    }


def test_change_form_updates_through_the_service(admin_client):
    key, _ = create_key(name="Old", scopes=["orders:read"], rate_limit_per_minute=60)
    response = admin_client.post(
        reverse("admin:apikeys_apikey_change", args=[key.pk]),
        _change_form(key, name="New", scopes=["orders:read", "orders:write"], rate_limit_per_minute="30"),
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.scopes, key.rate_limit_per_minute) == ("New", ["orders:read", "orders:write"], 30)


def test_change_form_refuses_removing_the_expiry_when_a_maximum_lifetime_applies(admin_client):
    key, _ = create_key()
    before = list(ApiKey.objects.values())
    response = admin_client.post(
        reverse("admin:apikeys_apikey_change", args=[key.pk]), _change_form(key, expires_at_0="", expires_at_1="")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.keys() == {"expires_at"}
    assert list(ApiKey.objects.values()) == before


def test_revoked_key_is_read_only_in_admin(admin_client):
    key, _ = create_key()
    admin_client.post(reverse(CHANGELIST), {"action": "revoke_keys", helpers.ACTION_CHECKBOX_NAME: [key.pk]})
    response = admin_client.get(reverse("admin:apikeys_apikey_change", args=[key.pk]))
    assert response.context["adminform"].form.fields == {}


def test_revoke_action_revokes_selected_keys(admin_client, admin_user):
    first, _ = create_key()
    second, _ = create_key()
    kept, _ = create_key()
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "revoke_keys", helpers.ACTION_CHECKBOX_NAME: [first.pk, second.pk]}
    )
    assert response.status_code == 302
    assert set(ApiKey.objects.exclude(revoked_at=None).values_list("pk", flat=True)) == {first.pk, second.pk}
    assert ApiKey.objects.get(pk=first.pk).revoked_by_id == str(admin_user.pk)
    assert ApiKey.objects.get(pk=kept.pk).revoked_at is None


def test_rotate_action_asks_for_a_grace_period_then_shows_the_new_keys_once(admin_client, clock):
    old, _ = create_key(name="ERP")
    selection = {"action": "rotate_keys", helpers.ACTION_CHECKBOX_NAME: [old.pk]}
    confirm = admin_client.post(reverse(CHANGELIST), selection)
    assert confirm.status_code == 200
    assert "grace_seconds" in confirm.content.decode()
    assert ApiKey.objects.count() == 1

    done = admin_client.post(reverse(CHANGELIST), {**selection, "grace_seconds": "86400"})
    assert done.status_code == 200
    [raw] = _keys_on(done)
    new = ApiKey.objects.get(replaces=old)
    assert tokens.matches(raw, new.key_hash)
    assert ApiKey.objects.get(pk=old.pk).grace_ends_at == clock.now + timedelta(days=1)


def test_keys_cannot_be_deleted_in_admin(admin_client):
    key, _ = create_key()
    assert admin_client.get(reverse("admin:apikeys_apikey_delete", args=[key.pk])).status_code == 403
    assert ApiKey.objects.count() == 1

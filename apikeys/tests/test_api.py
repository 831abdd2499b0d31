"""`/api/api-keys/`: create, read, change, revoke, filters; and that a key cannot escalate its privileges."""

from datetime import timedelta

import pytest

from apikeys import tokens
from apikeys.models import ApiKey
from jewelia.core.testing import assert_error

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

LIST = "/api/api-keys"


def _snapshot():
    return list(ApiKey.objects.order_by("pk").values())


def test_staff_creates_a_key_and_sees_it_once(staff_client, staff_user, clock):
    response = staff_client.post(
        LIST,
        {
            "name": "Shopify sync",
            "description": "Pushes web orders",
            "scopes": ["orders:read", "orders:write"],
            "allowed_networks": ["203.0.113.7"],
            "rate_limit_per_minute": 120,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    key = ApiKey.objects.get()
    assert tokens.parse(body["key"]).public_id == key.public_id
    assert tokens.matches(body["key"], key.key_hash)
    assert body["identifier"] == f"jwl_{key.public_id}"
    assert body["scopes"] == ["orders:read", "orders:write"]
    assert body["allowed_networks"] == ["203.0.113.7/32"]
    assert body["rate_limit_per_minute"] == 120
    assert body["status"] == "active"
    assert body["created_by"] == {"type": "user", "id": str(staff_user.pk), "label": "staff"}
    assert key.expires_at == clock.now + timedelta(days=365)  # the maximum lifetime by default
    assert "key" not in staff_client.get(f"{LIST}/{key.pk}").json()


def test_create_without_trailing_slash_and_with_it_both_work(staff_client):
    for url in (LIST, LIST + "/"):
        assert staff_client.post(url, {"name": "x", "scopes": ["orders:read"]}, format="json").status_code == 201


def test_default_rate_limit_comes_from_settings(staff_client, settings):
    settings.APIKEYS_DEFAULT_RATE_LIMIT = 42
    body = staff_client.post(LIST, {"name": "x", "scopes": ["orders:read"]}, format="json").json()
    assert body["rate_limit_per_minute"] == 42


def test_no_expiry_when_no_maximum_lifetime_is_configured(staff_client, settings):
    settings.APIKEYS_MAX_LIFETIME_DAYS = 0
    body = staff_client.post(LIST, {"name": "x", "scopes": ["orders:read"]}, format="json").json()
    assert body["expires_at"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "scopes": ["orders:read", "orders:delete"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["orders:read", "orders:read"]}, "scopes"),
        ({"name": "", "scopes": ["orders:read"]}, "name"),
        ({"name": "x", "scopes": ["orders:read"], "allowed_networks": ["10.0.0.0/33"]}, "allowed_networks"),
        ({"name": "x", "scopes": ["orders:read"], "rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"name": "x", "scopes": ["orders:read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["orders:read"], "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["orders:read"], "scope": ["orders:write"]}, "scope"),
        ({"name": "x", "scopes": ["orders:read"], "revoked_at": None}, "revoked_at"),
    ],
    ids=[
        "unknown-scope",
        "no-scope",
        "duplicate-scope",
        "blank-name",
        "bad-network",
        "zero-rate",
        "past-expiry",
        "beyond-max-lifetime",
        "unknown-field",
        "read-only-field",
    ],
)
def test_bad_input_is_400_naming_the_field_and_creates_nothing(staff_client, payload, field):
    error = assert_error(staff_client.post(LIST, payload, format="json"), 400, "validation_error")
    assert field in error["details"]["fields"]
    assert ApiKey.objects.count() == 0


def test_list_shows_identifiers_and_filters_expiring_keys(staff_client, clock):
    soon, _ = create_key(name="soon", expires_at=clock.now + timedelta(days=6))
    create_key(name="later", expires_at=clock.now + timedelta(days=30))
    create_key(name="gone", expires_at=clock.now + timedelta(hours=1))
    clock.advance(hours=2)
    everything = staff_client.get(LIST).json()
    assert [item["name"] for item in everything["results"]] == ["gone", "later", "soon"]
    assert {item["status"] for item in everything["results"]} == {"expired", "active", "expiring"}
    expiring = staff_client.get(LIST, {"expiring_within": "7d"}).json()
    assert [item["id"] for item in expiring["results"]] == [soon.pk]


def test_list_filters_by_status(staff_client):
    kept, _ = create_key(name="kept")
    revoked, _ = create_key(name="revoked")
    staff_client.delete(f"{LIST}/{revoked.pk}")
    assert [item["id"] for item in staff_client.get(LIST, {"status": "revoked"}).json()["results"]] == [revoked.pk]
    assert [item["id"] for item in staff_client.get(LIST, {"status": "active"}).json()["results"]] == [kept.pk]


def test_bad_list_filter_is_400(staff_client):
    error = assert_error(staff_client.get(LIST, {"expiring_within": "soon"}), 400, "validation_error")
    assert "expiring_within" in error["details"]["fields"]


def test_patch_changes_only_the_given_fields(staff_client):
    key, _ = create_key(name="old", scopes=["orders:read"], description="d")
    response = staff_client.patch(f"{LIST}/{key.pk}", {"name": "new", "scopes": ["customers:read"]}, format="json")
    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.name, key.scopes, key.description) == ("new", ["customers:read"], "d")


def test_put_requires_name_and_scopes(staff_client):
    key, _ = create_key(name="old")
    before = _snapshot()
    error = assert_error(staff_client.put(f"{LIST}/{key.pk}", {"name": "new"}, format="json"), 400, "validation_error")
    assert "scopes" in error["details"]["fields"]
    assert _snapshot() == before


def test_new_scopes_apply_to_the_next_request(staff_client, django_capture_on_commit_callbacks):
    key, raw = create_key(scopes=["api_keys:read"])
    client = key_client(raw)
    assert client.get(LIST).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.patch(f"{LIST}/{key.pk}", {"scopes": ["orders:read"]}, format="json")
    assert_error(client.get(LIST), 403, "permission_denied")


def test_delete_revokes_and_keeps_the_row(staff_client, staff_user):
    key, _ = create_key()
    assert staff_client.delete(f"{LIST}/{key.pk}").status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert (key.revoked_by_type, key.revoked_by_id) == ("user", str(staff_user.pk))
    body = staff_client.get(f"{LIST}/{key.pk}").json()
    assert body["status"] == "revoked"
    assert body["revoked_by"] == {"type": "user", "id": str(staff_user.pk), "label": "staff"}


def test_revoking_twice_keeps_the_first_revocation(staff_client):
    key, _ = create_key()
    staff_client.delete(f"{LIST}/{key.pk}")
    first = ApiKey.objects.get().revoked_at
    assert staff_client.delete(f"{LIST}/{key.pk}").status_code == 204
    assert ApiKey.objects.get().revoked_at == first


def test_revoked_key_cannot_be_changed_or_unrevoked(staff_client):
    key, _ = create_key()
    staff_client.delete(f"{LIST}/{key.pk}")
    before = _snapshot()
    assert_error(staff_client.patch(f"{LIST}/{key.pk}", {"name": "back"}, format="json"), 409, "conflict")
    error = assert_error(
        staff_client.patch(f"{LIST}/{key.pk}", {"revoked_at": None}, format="json"), 400, "validation_error"
    )
    assert "revoked_at" in error["details"]["fields"]
    assert _snapshot() == before


def test_extending_the_expiry_allows_a_new_notice(staff_client, clock):
    key, _ = create_key(expires_at=clock.now + timedelta(days=3))
    ApiKey.objects.filter(pk=key.pk).update(expiry_notified_at=clock.now)
    later = (clock.now + timedelta(days=60)).isoformat()
    assert staff_client.patch(f"{LIST}/{key.pk}", {"expires_at": later}, format="json").status_code == 200
    assert ApiKey.objects.get().expiry_notified_at is None


def test_unknown_key_id_is_404(staff_client):
    assert_error(staff_client.get(f"{LIST}/999"), 404, "not_found")
    assert_error(staff_client.get(f"{LIST}/abc"), 404, "not_found")


# -- a key managing keys -----------------------------------------------------------------------------------------


def test_key_creates_a_key_within_its_own_scopes():
    key, raw = create_key(scopes=["api_keys:write", "orders:read"])
    response = key_client(raw).post(LIST, {"name": "child", "scopes": ["orders:read"]}, format="json")
    assert response.status_code == 201
    assert response.json()["created_by"] == {"type": "api_key", "id": str(key.pk), "label": key.name}


def test_key_cannot_create_a_key_with_a_scope_it_lacks():
    _, raw = create_key(scopes=["api_keys:write", "orders:read"])
    before = _snapshot()
    response = key_client(raw).post(LIST, {"name": "x", "scopes": ["orders:read", "orders:write"]}, format="json")
    error = assert_error(response, 403, "privilege_escalation")
    assert error["details"] == {"scopes": ["orders:write"]}
    assert _snapshot() == before


def test_key_cannot_create_a_key_that_outlives_it(clock):
    _, raw = create_key(scopes=["api_keys:write"], expires_at=clock.now + timedelta(days=10))
    before = _snapshot()
    later = (clock.now + timedelta(days=11)).isoformat()
    response = key_client(raw).post(
        LIST, {"name": "x", "scopes": ["api_keys:write"], "expires_at": later}, format="json"
    )
    error = assert_error(response, 403, "privilege_escalation")
    assert set(error["details"]) == {"expires_at"}
    assert _snapshot() == before


def test_child_of_an_expiring_key_expires_with_it_by_default(clock):
    parent, raw = create_key(scopes=["api_keys:write"], expires_at=clock.now + timedelta(days=10))
    body = key_client(raw).post(LIST, {"name": "x", "scopes": ["api_keys:write"]}, format="json").json()
    assert ApiKey.objects.get(pk=body["id"]).expires_at == parent.expires_at


def test_key_cannot_create_a_key_without_its_ip_restriction():
    _, raw = create_key(scopes=["api_keys:write"], allowed_networks=["203.0.113.0/24"])
    client = key_client(raw, ip="203.0.113.5")
    for networks in ([], ["0.0.0.0/0"], ["203.0.0.0/16"]):
        response = client.post(
            LIST, {"name": "x", "scopes": ["api_keys:write"], "allowed_networks": networks}, format="json"
        )
        assert_error(response, 403, "privilege_escalation")
    inside = {"name": "x", "scopes": ["api_keys:write"], "allowed_networks": ["203.0.113.128/25"]}
    assert client.post(LIST, inside, format="json").status_code == 201


def test_key_cannot_raise_the_rate_limit_above_its_own():
    _, raw = create_key(scopes=["api_keys:write"], rate_limit_per_minute=100)
    payload = {"name": "x", "scopes": ["api_keys:write"], "rate_limit_per_minute": 101}
    assert_error(key_client(raw).post(LIST, payload, format="json"), 403, "privilege_escalation")


def test_key_cannot_add_scopes_to_itself():
    key, raw = create_key(scopes=["api_keys:write"])
    before = _snapshot()
    response = key_client(raw).patch(f"{LIST}/{key.pk}", {"scopes": ["api_keys:write", "orders:write"]}, format="json")
    assert_error(response, 403, "privilege_escalation")
    assert _snapshot() == before


def test_key_cannot_extend_its_own_expiry(clock):
    key, raw = create_key(scopes=["api_keys:write"], expires_at=clock.now + timedelta(days=5))
    later = (clock.now + timedelta(days=50)).isoformat()
    assert_error(
        key_client(raw).patch(f"{LIST}/{key.pk}", {"expires_at": later}, format="json"), 403, "privilege_escalation"
    )
    assert ApiKey.objects.get(pk=key.pk).expires_at == key.expires_at


def test_key_cannot_change_a_more_privileged_key():
    stronger, _ = create_key(scopes=["api_keys:write", "orders:write"])
    _, raw = create_key(scopes=["api_keys:write"])
    before = _snapshot()
    response = key_client(raw).patch(f"{LIST}/{stronger.pk}", {"name": "renamed"}, format="json")
    assert_error(response, 403, "privilege_escalation")
    assert _snapshot() == before


def test_key_cannot_rotate_a_more_privileged_key_to_obtain_its_secret():
    stronger, _ = create_key(scopes=["api_keys:write", "orders:write"])
    _, raw = create_key(scopes=["api_keys:write"])
    before = _snapshot()
    assert_error(key_client(raw).post(f"{LIST}/{stronger.pk}/rotate", {}, format="json"), 403, "privilege_escalation")
    assert _snapshot() == before


def test_key_cannot_revoke_a_more_privileged_key():
    stronger, _ = create_key(scopes=["api_keys:write", "orders:write"])
    _, raw = create_key(scopes=["api_keys:write"])
    assert_error(key_client(raw).delete(f"{LIST}/{stronger.pk}"), 403, "privilege_escalation")
    assert ApiKey.objects.get(pk=stronger.pk).revoked_at is None


def test_key_can_revoke_itself(django_capture_on_commit_callbacks):
    key, raw = create_key(scopes=["api_keys:write"])
    client = key_client(raw)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"{LIST}/{key.pk}").status_code == 204
    assert_error(client.delete(f"{LIST}/{key.pk}"), 401, "authentication_failed")

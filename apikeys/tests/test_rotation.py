from datetime import timedelta

import pytest

from apikeys import tokens
from apikeys.models import ApiKey
from jewelia.core.testing import assert_error

from .conftest import key_client
from .factories import create_key

pytestmark = pytest.mark.django_db

KEYS = "/api/api-keys"


def _rotate(client, key, grace="0"):
    return client.post(f"{KEYS}/{key.pk}/rotate", {"grace_period": grace}, format="json")


def test_rotation_returns_a_new_key_with_the_same_name_scopes_and_limits(staff_client, clock):
    old, _ = create_key(
        name="ERP",
        description="nightly export",
        scopes=["api_keys:read", "orders:read"],
        allowed_networks=["203.0.113.0/24"],
        rate_limit_per_minute=77,
        expires_at=clock.now + timedelta(days=30),
    )
    clock.advance(days=10)
    response = _rotate(staff_client, old, "1d")
    assert response.status_code == 201, response.content
    body = response.json()
    new = ApiKey.objects.get(pk=body["id"])
    assert tokens.matches(body["key"], new.key_hash)
    assert new.public_id != old.public_id
    assert (new.name, new.description, new.scopes, new.allowed_networks, new.rate_limit_per_minute) == (
        "ERP",
        "nightly export",
        ["api_keys:read", "orders:read"],
        ["203.0.113.0/24"],
        77,
    )
    assert new.expires_at == clock.now + timedelta(days=30)  # the same lifetime, from now
    assert body["replaces"] == old.pk
    assert body["replaced"]["id"] == old.pk
    assert body["replaced"]["grace_ends_at"] == (clock.now + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert body["replaced"]["status"] == "grace_period"


def test_both_keys_work_during_the_grace_period_and_the_old_one_stops_after(
    staff_client, clock, django_capture_on_commit_callbacks
):
    old, old_raw = create_key(scopes=["api_keys:read"])
    old_client = key_client(old_raw)
    assert old_client.get(KEYS).status_code == 200  # cached before the rotation
    with django_capture_on_commit_callbacks(execute=True):
        new_raw = _rotate(staff_client, old, "2h").json()["key"]
    new_client = key_client(new_raw)

    clock.advance(hours=1, minutes=59)
    assert old_client.get(KEYS).status_code == 200
    assert new_client.get(KEYS).status_code == 200

    clock.advance(minutes=1)
    error = assert_error(old_client.get(KEYS), 401, "authentication_failed")
    assert error["details"] == {"reason": "rotated"}
    assert new_client.get(KEYS).status_code == 200


def test_without_a_grace_period_the_old_key_stops_at_once(staff_client, django_capture_on_commit_callbacks):
    old, old_raw = create_key(scopes=["api_keys:read"])
    assert key_client(old_raw).get(KEYS).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.post(f"{KEYS}/{old.pk}/rotate", {}, format="json").status_code == 201
    assert_error(key_client(old_raw).get(KEYS), 401, "authentication_failed")


def test_both_keys_are_listed_with_their_status(staff_client):
    old, _ = create_key(name="ERP")
    new_id = _rotate(staff_client, old, "1h").json()["id"]
    results = staff_client.get(KEYS).json()["results"]
    assert [(item["id"], item["status"], item["replaces"], item["replaced_by"]) for item in results] == [
        (new_id, "active", old.pk, None),
        (old.pk, "grace_period", None, new_id),
    ]


@pytest.mark.parametrize("grace", ["8d", "604801", "-1", "soon", True])
def test_grace_period_outside_0_to_7_days_is_400(staff_client, grace):
    old, _ = create_key()
    error = assert_error(_rotate(staff_client, old, grace), 400, "validation_error")
    assert "grace_period" in error["details"]["fields"]
    assert ApiKey.objects.count() == 1


def test_seven_days_is_the_longest_grace_period(staff_client, clock):
    old, _ = create_key()
    assert _rotate(staff_client, old, "7d").status_code == 201
    assert ApiKey.objects.get(pk=old.pk).grace_ends_at == clock.now + timedelta(days=7)


def test_a_key_can_be_rotated_only_once(staff_client):
    old, _ = create_key()
    _rotate(staff_client, old, "1h")
    assert_error(_rotate(staff_client, old, "1h"), 409, "conflict")
    assert ApiKey.objects.count() == 2


def test_a_revoked_key_cannot_be_rotated(staff_client):
    old, _ = create_key()
    staff_client.delete(f"{KEYS}/{old.pk}")
    assert_error(_rotate(staff_client, old), 409, "conflict")
    assert ApiKey.objects.count() == 1


def test_a_key_rotates_itself_and_keeps_working_during_grace(django_capture_on_commit_callbacks):
    old, raw = create_key(scopes=["api_keys:read", "api_keys:write"])
    client = key_client(raw)
    with django_capture_on_commit_callbacks(execute=True):
        response = _rotate(client, old, "1h")
    assert response.status_code == 201
    assert response.json()["created_by"] == {"type": "api_key", "id": str(old.pk), "label": old.name}
    assert client.get(KEYS).status_code == 200


def test_a_rotated_key_cannot_be_changed(staff_client):
    old, _ = create_key()
    _rotate(staff_client, old, "1h")
    assert_error(staff_client.patch(f"{KEYS}/{old.pk}", {"name": "x"}, format="json"), 409, "conflict")

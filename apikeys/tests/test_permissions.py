import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from jewelia.core.testing import assert_error

from .conftest import key_client
from .factories import create_key

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apikeys.tests.urls")]


def test_key_without_the_read_scope_gets_403_naming_it():
    _, raw = create_key(scopes=["customers:read"])
    error = assert_error(key_client(raw).get("/api/test/orders-scoped/"), 403, "permission_denied")
    assert error["message"] == "This API key lacks the orders:read scope."
    assert error["details"] == {"missing_scope": "orders:read"}


def test_read_scope_does_not_allow_writes():
    _, raw = create_key(scopes=["orders:read"])
    error = assert_error(key_client(raw).post("/api/test/orders-scoped/", {}, format="json"), 403, "permission_denied")
    assert error["details"] == {"missing_scope": "orders:write"}


def test_write_scope_does_not_allow_reads():
    _, raw = create_key(scopes=["orders:write"])
    error = assert_error(key_client(raw).get("/api/test/orders-scoped/"), 403, "permission_denied")
    assert error["details"] == {"missing_scope": "orders:read"}


def test_explicit_per_method_scope_is_required():
    _, raw = create_key(scopes=["customers:read"])
    client = key_client(raw)
    assert client.get("/api/test/explicit/").status_code == 200
    error = assert_error(client.post("/api/test/explicit/", {}, format="json"), 403, "permission_denied")
    assert error["details"] == {"missing_scope": "integrations:sync"}


def test_head_uses_the_get_scope():
    _, raw = create_key(scopes=["customers:read"])
    assert key_client(raw).head("/api/test/explicit/").status_code == 200


def test_viewset_action_scope_is_required():
    _, raw = create_key(scopes=["api_keys:write"])
    error = assert_error(key_client(raw).get("/api/api-keys/"), 403, "permission_denied")
    assert error["details"] == {"missing_scope": "api_keys:read"}


def test_custom_action_uses_its_declared_scope():
    key, raw = create_key(scopes=["api_keys:write"])
    error = assert_error(key_client(raw).get(f"/api/api-keys/{key.pk}/usage"), 403, "permission_denied")
    assert error["details"] == {"missing_scope": "api_keys:read"}


def test_view_without_a_declared_scope_is_closed_to_keys():
    _, raw = create_key(scopes=["orders:read", "api_keys:read"])
    error = assert_error(key_client(raw).get("/api/test/undeclared/"), 403, "permission_denied")
    assert error["message"] == "This endpoint declares no scope and is closed."


def test_view_without_a_declared_scope_is_closed_to_superusers(staff_client):
    assert_error(staff_client.get("/api/test/undeclared/"), 403, "permission_denied")


def test_non_staff_user_gets_403(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="clerk", password="pw"))
    assert_error(client.get("/api/api-keys/"), 403, "permission_denied")


def test_staff_without_model_permissions_gets_403(django_user_model):
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="desk", password="pw", is_staff=True))
    assert_error(client.get("/api/api-keys/"), 403, "permission_denied")


def test_staff_with_the_view_permission_can_read_but_not_create(django_user_model):
    user = django_user_model.objects.create_user(username="desk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/api-keys/").status_code == 200
    response = client.post("/api/api-keys/", {"name": "x", "scopes": ["orders:read"]}, format="json")
    assert_error(response, 403, "permission_denied")


def test_inactive_staff_gets_403(django_user_model):
    user = django_user_model.objects.create_superuser(username="gone", password="pw", is_active=False)
    client = APIClient()
    client.force_authenticate(user)
    assert_error(client.get("/api/api-keys/"), 403, "permission_denied")

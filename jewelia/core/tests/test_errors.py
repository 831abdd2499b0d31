import logging

import pytest

from jewelia.core.testing import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jewelia.core.tests.urls")]


def test_validation_error_lists_fields(api_client):
    error = assert_error(api_client.post("/api/errors/x/", {"quantity": -1}, format="json"), 400, "validation_error")
    assert "quantity" in error["details"]["fields"]


def test_malformed_json_is_parse_error(api_client):
    response = api_client.post("/api/errors/x/", data=b'{"quantity": ', content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_wrong_content_type_is_415(api_client):
    response = api_client.post("/api/errors/x/", data=b"quantity=1", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_oversized_body_is_413_before_parsing(api_client, settings):
    settings.API_MAX_BODY_BYTES = 100
    response = api_client.post("/api/errors/x/", data=b"{" + b" " * 200 + b"}", content_type="application/json")
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit_bytes": 100}


def test_conflict_carries_details(api_client):
    error = assert_error(api_client.get("/api/errors/conflict/"), 409, "conflict")
    assert error["details"] == {"allowed": ["delivered"]}


def test_rate_limited_sets_retry_after(api_client):
    response = api_client.get("/api/errors/throttled/")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "7"


def test_method_not_allowed_is_405(api_client):
    assert_error(api_client.delete("/api/errors/x/"), 405, "method_not_allowed")


def test_unauthenticated_is_401_with_shape_and_challenge(api_client):
    response = api_client.get("/api/staff-only/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_non_staff_user_is_403(api_client, django_user_model):
    user = django_user_model.objects.create_user(username="clerk", password="pw")
    api_client.force_authenticate(user)
    assert_error(api_client.get("/api/staff-only/"), 403, "permission_denied")


def test_unexpected_error_is_generic_500_and_logged(api_client, caplog):
    with caplog.at_level(logging.ERROR, logger="jewelia.api"):
        response = api_client.get("/api/errors/boom/", HTTP_X_REQUEST_ID="req-123")
    error = assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.content.decode()
    assert error["request_id"] == "req-123"
    assert any("hunter2" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_request_id_is_echoed_or_generated(api_client):
    assert api_client.get("/api/errors/ok/", HTTP_X_REQUEST_ID="abc-1").headers["X-Request-ID"] == "abc-1"
    generated = api_client.get("/api/errors/ok/").headers["X-Request-ID"]
    assert len(generated) == 32


def test_unsafe_request_id_is_replaced(api_client):
    response = api_client.get("/api/errors/ok/", HTTP_X_REQUEST_ID="evil\nline")
    assert response.headers["X-Request-ID"] != "evil\nline"

"""Helpers for the apps' tests (imported by tests only)."""

from typing import Any


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is the API's one error shape (DESIGN.md rule 6) with this status and code; return the
    error object (code, message, details, request_id) for further checks."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    if response.has_header("X-Request-ID"):
        assert error["request_id"] == response["X-Request-ID"]
    return error

"""Chunked request bodies (no Content-Length): gunicorn decodes them and marks the stream as terminated, but
Django only reads up to a Content-Length, so without the body-size middleware they would arrive empty."""

import io
import json

import pytest

from orders.models import Customer

pytestmark = pytest.mark.django_db


def chunked(body: bytes, content_type: str = "application/json") -> dict:
    """The WSGI environ a server gives a chunked request: no CONTENT_LENGTH, a terminated input stream."""
    return {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
    }


def test_chunked_api_body_is_read_whole(staff_client):
    body = json.dumps({"name": "Chunked Customer", "email": "chunked@example.com"}).encode()
    response = staff_client.generic("POST", "/api/customers/", content_type="application/json", **chunked(body))
    assert response.status_code == 201, response.content
    assert Customer.objects.get().email == "chunked@example.com"


def test_chunked_api_body_over_the_limit_is_413_and_creates_nothing(staff_client, settings):
    settings.API_MAX_BODY_BYTES = 100
    body = json.dumps({"name": "x" * 200, "email": "big@example.com"}).encode()
    response = staff_client.generic("POST", "/api/customers/", content_type="application/json", **chunked(body))
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit_bytes": 100}
    assert not Customer.objects.exists()


def test_unterminated_stream_without_length_is_left_alone(staff_client):
    """Without the server's word that the stream ends (wsgi.input_terminated), reading it could block forever:
    the body is then treated as empty, as Django does, and the request fails validation rather than hanging."""
    environ = {**chunked(b'{"name": "Never Read"}'), "wsgi.input_terminated": False}
    response = staff_client.generic("POST", "/api/customers/", content_type="application/json", **environ)
    assert response.status_code == 400
    assert not Customer.objects.exists()

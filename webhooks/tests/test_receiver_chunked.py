"""A provider that delivers with `Transfer-Encoding: chunked` (no Content-Length) is verified against the whole
body, not an empty one (jewelia.core.middleware reads such bodies up to the receiver's limit)."""

import io

from webhooks.models import WebhookEvent
from webhooks.tests.conftest import SECRET, receiver_url
from webhooks.tests.fakes import delivery, event


def _post_chunked(client, integration, body: bytes, headers: dict[str, str]):
    headers = dict(headers)
    content_type = headers.pop("Content-Type")
    environ = {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
    }
    return client.generic("POST", receiver_url(integration), content_type=content_type, headers=headers, **environ)


def test_chunked_delivery_is_verified_and_stored(client, integration):
    body, headers = delivery(event("customer.updated", {"id": 7, "name": "Ada"}, event_id="fk_chunked"), SECRET)
    response = _post_chunked(client, integration, body, headers)
    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(integration=integration)
    assert (bytes(stored.raw_body), stored.provider_event_id, stored.signature_valid) == (body, "fk_chunked", True)


def test_chunked_delivery_over_the_limit_is_413_and_nothing_is_stored(client, integration, settings):
    settings.WEBHOOKS_MAX_BODY_BYTES = 64
    body, headers = delivery(event("customer.updated", {"id": 7, "name": "x" * 200}, event_id="fk_big"), SECRET)
    response = _post_chunked(client, integration, body, headers)
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit_bytes": 64}
    assert not WebhookEvent.objects.exists()

"""The receiver: routing, limits, content types, fail-closed verification, de-duplication, held events."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jewelia.core.testing import assert_error
from webhooks.models import WebhookEvent
from webhooks.selectors import webhook_counters_get
from webhooks.services import webhook_secret_set
from webhooks.tests.conftest import SECRET, receiver_url
from webhooks.tests.fakes import SIGNATURE_HEADER, delivery, event

pytestmark = pytest.mark.django_db


def _today_counts(integration) -> dict:
    today = timezone.now().date()
    return webhook_counters_get(integration=integration, days=[today])[today]


def test_authentic_delivery_is_stored_pending_with_its_raw_body_and_parsed_payload(integration, post_delivery):
    payload = event("customer.updated", {"id": 7, "name": "Ada", "email": "ada@example.com"}, event_id="fk_1")
    body, headers = delivery(payload, SECRET)

    response = post_delivery(integration, body, headers)

    assert response.status_code == 200
    assert response.json() == {"received": True, "status": "pending"}
    stored = WebhookEvent.objects.get()
    assert (stored.integration_id, stored.provider_event_id, stored.event_type) == (
        integration.pk,
        "fk_1",
        "customer.updated",
    )
    assert (stored.status, stored.signature_valid, stored.manual, stored.attempts) == ("pending", True, False, 0)
    assert bytes(stored.raw_body) == body
    assert stored.payload == payload
    assert stored.occurred_at.isoformat() == "2026-05-01T12:00:00+00:00"
    assert stored.headers[SIGNATURE_HEADER] == headers[SIGNATURE_HEADER]
    assert stored.headers["X-Fake-Topic"] == "test"


def test_stored_headers_leave_out_credentials_a_caller_sent_along(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {}), SECRET)
    headers.update({"Authorization": "Bearer jwl_secret", "Cookie": "sessionid=abc", "X-Api-Key": "jwl_x"})

    assert post_delivery(integration, body, headers).status_code == 200

    stored_names = {name.lower() for name in WebhookEvent.objects.get().headers}
    assert not stored_names & {"authorization", "cookie", "x-api-key"}
    assert "x-fake-hmac" in stored_names


def test_unknown_integration_gets_404_in_the_error_shape(client, fake_provider):
    response = client.post(f"/api/webhooks/{uuid.uuid4()}/", data=b"{}", content_type="application/json")

    assert_error(response, 404, "not_found")


def test_get_is_refused_with_405(client, integration):
    response = client.get(receiver_url(integration))

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


@override_settings(WEBHOOKS_MAX_BODY_BYTES=200)
def test_body_declared_over_the_limit_gets_413_and_nothing_is_stored(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {"note": "x" * 300}), SECRET)

    error = assert_error(post_delivery(integration, body, headers), 413, "payload_too_large")

    assert error["details"] == {"limit_bytes": 200}
    assert WebhookEvent.objects.count() == 0


@override_settings(WEBHOOKS_MAX_BODY_BYTES=200)
def test_body_exactly_at_the_limit_is_accepted(integration, post_delivery):
    payload = event("customer.updated", {}, event_id="fk_limit")
    base = len(delivery(payload, SECRET)[0])
    payload["pad"] = "x" * (200 - base - len(',"pad":""'))
    body, headers = delivery(payload, SECRET)
    assert len(body) == 200

    assert post_delivery(integration, body, headers).status_code == 200


def test_wrong_content_type_gets_415_naming_the_expected_one(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {}), SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"

    error = assert_error(post_delivery(integration, body, headers), 415, "unsupported_media_type")

    assert error["details"] == {"expected": ["application/json"]}
    assert WebhookEvent.objects.count() == 0


def test_integration_without_a_secret_refuses_every_delivery(make_integration, post_delivery):
    integration = make_integration(secret=None)
    body, headers = delivery(event("customer.updated", {}), "any-secret-at-all")

    assert_error(post_delivery(integration, body, headers), 401, "invalid_signature")

    assert WebhookEvent.objects.count() == 0
    assert _today_counts(integration)["rejected_signatures"] == 1


def test_bad_signature_gets_401_stores_nothing_and_is_counted(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {}), "not-the-secret")

    error = assert_error(post_delivery(integration, body, headers), 401, "invalid_signature")

    assert error["message"] == "The webhook signature could not be verified."
    assert WebhookEvent.objects.count() == 0
    assert _today_counts(integration) == {"rejected_signatures": 1, "duplicates": 0}


def test_tampered_body_gets_401(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {"name": "Ada"}), SECRET)

    response = post_delivery(integration, body.replace(b"Ada", b"Eve"), headers)

    assert_error(response, 401, "invalid_signature")
    assert WebhookEvent.objects.count() == 0


def test_missing_signature_header_gets_401(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {}), SECRET)
    del headers[SIGNATURE_HEADER]

    assert_error(post_delivery(integration, body, headers), 401, "invalid_signature")


def test_rejections_are_logged_once_a_minute_per_integration(integration, post_delivery, caplog):
    body, headers = delivery(event("customer.updated", {}), "forged")

    with caplog.at_level(logging.WARNING, logger="jewelia.security.webhooks"):
        for _ in range(5):
            post_delivery(integration, body, headers)

    lines = [r for r in caplog.records if r.name == "jewelia.security.webhooks"]
    assert len(lines) == 1
    assert str(integration.pk) in lines[0].getMessage()
    assert _today_counts(integration)["rejected_signatures"] == 5


def test_duplicate_delivery_answers_200_is_counted_and_stored_once(integration, post_delivery):
    body, headers = delivery(event("customer.updated", {}, event_id="fk_dup"), SECRET)

    first = post_delivery(integration, body, headers)
    second = post_delivery(integration, body, headers)

    assert first.json() == {"received": True, "status": "pending"}
    assert second.status_code == 200
    assert second.json() == {"received": True, "duplicate": True}
    assert WebhookEvent.objects.filter(provider_event_id="fk_dup").count() == 1
    assert _today_counts(integration)["duplicates"] == 1


def test_same_event_id_for_two_integrations_is_two_events(make_integration, deliver):
    first, second = make_integration(name="Shop A"), make_integration(name="Shop B")
    payload = event("customer.updated", {}, event_id="fk_shared")

    assert deliver(first, payload).json()["status"] == "pending"
    assert deliver(second, payload).json()["status"] == "pending"

    assert WebhookEvent.objects.filter(provider_event_id="fk_shared").count() == 2


def test_authentic_body_that_is_not_json_is_stored_failed_and_answered_400(integration, post_delivery):
    body, headers = delivery(b"<xml>not json</xml>", SECRET)

    error = assert_error(post_delivery(integration, body, headers), 400, "invalid_payload")

    assert error["details"]["reason"].startswith("body is not valid JSON")
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.payload, bytes(stored.raw_body)) == ("failed", None, body)
    assert stored.last_error.startswith("Unparsable delivery: body is not valid JSON")
    assert stored.next_attempt_at is None


def test_the_same_unparsable_body_retried_is_stored_once(integration, post_delivery):
    body, headers = delivery(b"not json", SECRET)

    post_delivery(integration, body, headers)
    response = post_delivery(integration, body, headers)

    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize("status", ["paused", "draft", "disconnected"])
def test_integration_not_active_still_stores_events_as_held(make_integration, deliver, status):
    integration = make_integration()
    type(integration).objects.filter(pk=integration.pk).update(status=status)

    response = deliver(integration, event("customer.updated", {}))

    assert response.json() == {"received": True, "status": "held"}
    assert WebhookEvent.objects.get().status == "held"


def test_previous_secret_verifies_during_the_rotation_window(integration, deliver):
    webhook_secret_set(integration=integration, secret="fk_secret_next_0002")

    assert deliver(integration, event("customer.updated", {}), secret=SECRET).status_code == 200
    assert deliver(integration, event("customer.updated", {}), secret="fk_secret_next_0002").status_code == 200


@override_settings(WEBHOOKS_SECRET_ROTATION_HOURS=2)
def test_previous_secret_is_refused_after_the_rotation_window(integration, deliver):
    webhook_secret_set(integration=integration, secret="fk_secret_next_0002", now=timezone.now() - timedelta(hours=3))

    assert deliver(integration, event("customer.updated", {}), secret=SECRET).status_code == 401
    assert deliver(integration, event("customer.updated", {}), secret="fk_secret_next_0002").status_code == 200


def test_a_stored_delivery_costs_two_queries(integration, post_delivery, django_assert_num_queries):
    post_delivery(integration, *delivery(event("customer.updated", {}), SECRET))  # warm the secret cache
    body, headers = delivery(event("customer.updated", {}), SECRET)

    with django_assert_num_queries(2):  # the integration row; one INSERT ... ON CONFLICT DO NOTHING
        assert post_delivery(integration, body, headers).status_code == 200


def test_a_duplicate_costs_the_same_two_queries(integration, post_delivery, django_assert_num_queries):
    body, headers = delivery(event("customer.updated", {}), SECRET)
    post_delivery(integration, body, headers)

    with django_assert_num_queries(2):
        assert post_delivery(integration, body, headers).json() == {"received": True, "duplicate": True}


def test_with_the_target_cache_a_delivery_costs_one_query(
    integration, post_delivery, settings, django_assert_num_queries
):
    settings.WEBHOOKS_TARGET_CACHE_SECONDS = 60
    post_delivery(integration, *delivery(event("customer.updated", {}), SECRET))
    body, headers = delivery(event("customer.updated", {}), SECRET)

    with django_assert_num_queries(1):
        assert post_delivery(integration, body, headers).status_code == 200


def test_a_held_event_stored_from_a_stale_cache_is_released_by_the_sweeper(
    make_integration, deliver, settings, django_capture_on_commit_callbacks
):
    from webhooks.services import webhook_events_sweep

    settings.WEBHOOKS_TARGET_CACHE_SECONDS = 60
    integration = make_integration(status="paused")
    deliver(integration, event("customer.updated", {"id": 1, "name": "A", "email": "a@example.com"}))
    type(integration).objects.filter(pk=integration.pk).update(status="active")  # resumed; this process cached "paused"
    deliver(integration, event("customer.updated", {"id": 2, "name": "B", "email": "b@example.com"}))
    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["held", "held"]

    with django_capture_on_commit_callbacks(execute=True):
        result = webhook_events_sweep()

    assert len(result["released"]) == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.django_db(transaction=True)  # the foreign key is checked when the INSERT commits
def test_delivery_for_an_integration_deleted_meanwhile_gets_404(integration, post_delivery, settings):
    settings.WEBHOOKS_TARGET_CACHE_SECONDS = 60
    post_delivery(integration, *delivery(event("customer.updated", {}), SECRET))
    type(integration).objects.filter(pk=integration.pk).delete()

    response = post_delivery(integration, *delivery(event("customer.updated", {}), SECRET))

    assert_error(response, 404, "not_found")

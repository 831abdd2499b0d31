"""The webhook events API: list and detail, hand-made events, single and bulk replay, and their scopes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys.tests.factories import create_key
from jewelia.core.testing import assert_error
from orders.models import Customer
from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_drain
from webhooks.tests.fakes import event

pytestmark = pytest.mark.django_db


def key_client(*scopes: str) -> APIClient:
    _, raw = create_key(scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def reader():
    return key_client("webhooks:read")


@pytest.fixture
def writer():
    return key_client("webhooks:read", "webhooks:write")


def _url(integration, suffix: str = "") -> str:
    return f"/api/integrations/{integration.pk}/webhooks{suffix}"


@pytest.fixture
def events(integration, deliver):
    """Three processed, one dead and one ignored event, received a minute apart (oldest first)."""
    payloads = [
        event("customer.updated", {"id": i, "name": f"C{i}", "email": f"c{i}@example.com"}, event_id=f"fk_ok_{i}")
        for i in range(3)
    ] + [event("broken", {}, event_id="fk_dead"), event("shop.redacted", {}, event_id="fk_ignored")]
    for payload in payloads:
        deliver(integration, payload)
    webhook_events_drain()
    start = timezone.now() - timedelta(hours=1)
    for minutes, payload in enumerate(payloads):
        WebhookEvent.objects.filter(provider_event_id=payload["id"]).update(
            received_at=start + timedelta(minutes=minutes)
        )
    return {p["id"]: WebhookEvent.objects.get(provider_event_id=p["id"]) for p in payloads}


def test_list_shows_events_newest_first_without_payloads(integration, events, reader):
    response = reader.get(_url(integration))

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["event_id"] for r in results] == ["fk_ignored", "fk_dead", "fk_ok_2", "fk_ok_1", "fk_ok_0"]
    assert "payload" not in results[0] and "body" not in results[0] and "headers" not in results[0]
    assert results[1]["status"] == "dead"
    assert results[1]["last_error"] == "The payload cannot be used: the object has no id"


def test_list_filters_by_status_type_and_received_range(integration, events, reader):
    by_status = reader.get(_url(integration), {"status": "dead,ignored"}).json()["results"]
    by_type = reader.get(_url(integration), {"type": "broken"}).json()["results"]
    in_range = reader.get(
        _url(integration),
        {
            "received_after": events["fk_ok_1"].received_at.isoformat(),
            "received_before": events["fk_dead"].received_at.isoformat(),
        },
    ).json()["results"]

    assert {r["event_id"] for r in by_status} == {"fk_dead", "fk_ignored"}
    assert [r["event_id"] for r in by_type] == ["fk_dead"]
    assert [r["event_id"] for r in in_range] == ["fk_ok_2", "fk_ok_1"]


def test_list_filters_hand_made_events_from_deliveries(integration, events, writer):
    made = writer.post(_url(integration), {"type": "customer.updated", "payload": {"no": "id"}}, format="json").json()

    manual = writer.get(_url(integration), {"manual": "true"}).json()["results"]
    delivered = writer.get(_url(integration), {"manual": "false"}).json()["results"]

    assert [r["event_id"] for r in manual] == [made["event_id"]]
    assert {r["event_id"] for r in delivered} == set(events)


def test_list_refuses_an_unknown_status(integration, reader):
    error = assert_error(reader.get(_url(integration), {"status": "lost"}), 400, "validation_error")

    assert "status" in error["details"]["fields"]


def test_detail_shows_payload_headers_and_body(integration, events, reader):
    stored = events["fk_ok_0"]

    response = reader.get(_url(integration, f"/{stored.pk}"))

    assert response.status_code == 200
    detail = response.json()
    assert detail["payload"]["object"] == {"id": 0, "name": "C0", "email": "c0@example.com"}
    assert detail["body"] == bytes(stored.raw_body).decode()
    assert detail["headers"]["X-Fake-Topic"] == "test"
    assert (detail["integration"], detail["status"], detail["result"]) == (
        str(integration.pk),
        "processed",
        "customers: 1 created, 0 updated, 0 unchanged",
    )


def test_detail_of_another_integrations_event_is_404(make_integration, events, reader):
    other = make_integration(name="Other shop")

    assert_error(reader.get(_url(other, f"/{events['fk_ok_0'].pk}")), 404, "not_found")


def test_unknown_integration_is_404(reader, fake_provider):
    assert_error(reader.get("/api/integrations/00000000-0000-0000-0000-000000000000/webhooks"), 404, "not_found")


def test_reading_needs_the_read_scope(integration):
    error = assert_error(key_client("webhooks:write").get(_url(integration)), 403, "permission_denied")

    assert error["details"] == {"missing_scope": "webhooks:read"}


def test_replaying_needs_the_write_scope(integration, events, reader):
    error = assert_error(reader.post(_url(integration, f"/{events['fk_dead'].pk}/replay")), 403, "permission_denied")

    assert error["details"] == {"missing_scope": "webhooks:write"}
    assert WebhookEvent.objects.get(pk=events["fk_dead"].pk).status == "dead"


def test_manual_event_is_marked_manual_and_processed_like_a_delivery(
    integration, writer, django_capture_on_commit_callbacks
):
    payload = event("customer.updated", {"id": 9, "name": "Grace", "email": "grace@example.com"}, event_id="fk_by_hand")

    with django_capture_on_commit_callbacks(execute=True):
        response = writer.post(_url(integration), {"type": "customer.updated", "payload": payload}, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["manual"], created["signature_valid"], created["event_id"]) == (True, None, "fk_by_hand")
    stored = WebhookEvent.objects.get(pk=created["id"])
    assert (stored.status, stored.created_by_type) == ("processed", "api_key")
    assert Customer.objects.get().name == "Grace"


def test_manual_event_without_an_id_in_its_payload_gets_one(integration, writer):
    response = writer.post(_url(integration), {"type": "customer.updated", "payload": {"no": "id"}}, format="json")

    assert response.status_code == 201
    assert response.json()["event_id"].startswith("manual:")


def test_manual_event_of_a_type_nobody_handles_is_refused(integration, writer):
    error = assert_error(
        writer.post(_url(integration), {"type": "shop.redacted", "payload": {}}, format="json"), 400, "validation_error"
    )

    assert "type" in error["details"]["fields"]
    assert WebhookEvent.objects.count() == 0


def test_manual_event_whose_payload_is_another_type_is_refused(integration, writer):
    payload = event("order.updated", {}, event_id="fk_x")

    response = writer.post(_url(integration), {"type": "customer.updated", "payload": payload}, format="json")

    assert_error(response, 400, "validation_error")


def test_manual_event_already_received_is_a_conflict_pointing_at_it(integration, events, writer):
    payload = event("customer.updated", {"id": 0, "name": "C0", "email": "c0@example.com"}, event_id="fk_ok_0")

    error = assert_error(
        writer.post(_url(integration), {"type": "customer.updated", "payload": payload}, format="json"),
        409,
        "duplicate_event",
    )

    assert error["details"] == {"event_id": events["fk_ok_0"].pk}


def test_replay_sends_a_dead_event_through_processing_again(
    integration, events, writer, django_capture_on_commit_callbacks
):
    dead = events["fk_dead"]

    with django_capture_on_commit_callbacks(execute=True):
        response = writer.post(_url(integration, f"/{dead.pk}/replay"))

    assert response.status_code == 202
    assert (response.json()["replay_count"], response.json()["attempts"]) == (1, 0)
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.replay_count) == ("dead", 1, 1)  # still unusable, processed again


def test_replay_of_a_processed_event_changes_nothing_in_the_orders_domain(
    integration, events, writer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        writer.post(_url(integration, f"/{events['fk_ok_0'].pk}/replay"))

    replayed = WebhookEvent.objects.get(pk=events["fk_ok_0"].pk)
    assert (replayed.status, replayed.result) == ("processed", "customers: 0 created, 0 updated, 1 unchanged")
    assert Customer.objects.count() == 3


def test_replay_of_a_pending_event_is_a_conflict(integration, deliver, writer):
    deliver(integration, event("customer.updated", {}, event_id="fk_waiting"))
    pending = WebhookEvent.objects.get(provider_event_id="fk_waiting")

    error = assert_error(writer.post(_url(integration, f"/{pending.pk}/replay")), 409, "not_replayable")

    assert error["details"] == {"status": "pending"}


def test_bulk_replay_first_reports_the_count_and_changes_nothing(integration, events, writer):
    response = writer.post(_url(integration, "/replay"), {"status": "processed,dead"}, format="json")

    assert (response.status_code, response.json()) == (200, {"would_replay": 4})
    assert WebhookEvent.objects.filter(status="pending").count() == 0


def test_bulk_replay_defaults_to_failed_and_dead_events(integration, events, writer):
    response = writer.post(_url(integration, "/replay"), {}, format="json")

    assert response.json() == {"would_replay": 1}


def test_bulk_replay_with_confirm_requeues_the_matching_events(integration, events, writer):
    with_filter = {"status": ["processed"], "received_before": events["fk_ok_2"].received_at.isoformat()}

    response = writer.post(_url(integration, "/replay"), {**with_filter, "confirm": True, "expected": 2}, format="json")

    assert (response.status_code, response.json()) == (202, {"replayed": 2})
    requeued = WebhookEvent.objects.filter(status="pending", replay_count=1)
    assert set(requeued.values_list("provider_event_id", flat=True)) == {"fk_ok_0", "fk_ok_1"}


def test_bulk_replay_refuses_when_the_count_changed_since_the_dry_run(integration, events, writer):
    response = writer.post(
        _url(integration, "/replay"), {"status": "processed", "confirm": True, "expected": 2}, format="json"
    )

    error = assert_error(response, 409, "count_changed")
    assert error["details"] == {"would_replay": 3, "expected": 2}
    assert WebhookEvent.objects.filter(status="pending").count() == 0


def test_staff_session_with_view_permission_can_list(integration, events, staff_client):
    response = staff_client.get(_url(integration, "/"))

    assert response.status_code == 200
    assert response.json()["count"] == 5


def test_setting_the_secret_needs_the_integrations_write_scope(integration, writer):
    error = assert_error(
        writer.post(_url(integration, "/secret"), {"secret": "fk_new_secret_1"}, format="json"),
        403,
        "permission_denied",
    )

    assert error["details"] == {"missing_scope": "integrations:write"}


def test_setting_the_secret_keeps_the_old_one_valid_for_the_rotation_window_and_never_returns_it(integration, settings):
    settings.WEBHOOKS_SECRET_ROTATION_HOURS = 2
    client = key_client("integrations:write")

    response = client.post(_url(integration, "/secret"), {"secret": "fk_new_secret_1"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"secret_configured", "previous_secret_valid_until"}
    assert body["secret_configured"] is True
    remaining = timezone.datetime.fromisoformat(body["previous_secret_valid_until"]) - timezone.now()
    assert timedelta(hours=1, minutes=59) < remaining <= timedelta(hours=2)
    assert "fk_new_secret_1" not in response.content.decode()


def test_a_too_short_secret_is_refused_and_nothing_changes(integration):
    before = type(integration).objects.get(pk=integration.pk).credentials_encrypted

    response = key_client("integrations:write").post(_url(integration, "/secret"), {"secret": "short"}, format="json")

    assert_error(response, 400, "validation_error")
    assert type(integration).objects.get(pk=integration.pk).credentials_encrypted == before


# --- setup: what to enter in the provider's dashboard -----------------------------------------------------------------


def test_setup_gives_the_receiver_url_the_event_types_and_the_secret_state(integration, make_integration, reader):
    body = reader.get(_url(integration, "/setup/")).json()
    unsigned = reader.get(_url(make_integration(name="No secret yet", secret=None), "/setup/")).json()

    assert body["url"] == f"http://testserver/api/webhooks/{integration.pk}/"
    assert (body["app_level"], body["secret_setting"], body["content_types"]) == (False, "", ["application/json"])
    assert "customer.updated" in body["event_types"] and body["event_types"] == sorted(body["event_types"])
    assert (body["secret_configured"], unsigned["secret_configured"]) == (True, False)


def test_setup_of_an_app_level_provider_points_at_the_app_url(db, reader, settings):
    from integrations.providers.quickbooks import webhooks as qb_webhooks
    from integrations.services import integration_create
    from jewelia.core.actors import Actor

    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = []
    company = integration_create(
        actor=Actor.system("tests"), name="Books", provider="quickbooks", config={"realm_id": "4620816365"}
    )

    body = reader.get(_url(company, "/setup/")).json()

    assert body["url"] == "http://testserver/api/webhooks/providers/quickbooks/"
    assert (body["app_level"], body["secret_setting"]) == (True, "QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS")
    assert body["secret_configured"] is False
    assert body["event_types"] == sorted(qb_webhooks.handled_types())


def test_setup_needs_a_read_scope_and_a_provider_with_webhooks(integration, monkeypatch):
    from integrations.services import integration_create
    from integrations.tests.conftest import register_provider
    from integrations.tests.fakes import FakeProvider
    from jewelia.core.actors import Actor

    register_provider(monkeypatch, FakeProvider)  # polled only: no webhooks
    polled = integration_create(
        actor=Actor.system("tests"),
        name="Polled",
        provider="fakeshop",
        config={"shop": "demo"},
        credentials={"access_token": "tok-secret-123"},
    )

    assert_error(key_client("orders:read").get(_url(integration, "/setup/")), 403, "permission_denied")
    assert_error(key_client("webhooks:read").get(_url(polled, "/setup/")), 404, "not_found")

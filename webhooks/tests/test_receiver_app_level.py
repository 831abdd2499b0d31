"""The provider-level receiver (`POST /api/webhooks/providers/<key>/`) with QuickBooks: one URL and verifier token
for every connected company, each company's part of a delivery stored for its integration
(`shared/providers/quickbooks.md` §6)."""

from __future__ import annotations

import hashlib
import logging

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from integrations.sandbox import signing
from integrations.services import integration_create
from jewelia.core.actors import Actor
from jewelia.core.testing import assert_error
from webhooks.models import WebhookEvent
from webhooks.selectors import webhook_counters_get
from webhooks.services import webhook_secret_set

pytestmark = pytest.mark.django_db

TOKEN = "app-verifier-token-current"
REALM_A, REALM_B, UNKNOWN_REALM = "1185883450", "310687", "999000999"
URL = "/api/webhooks/providers/quickbooks/"


@pytest.fixture(autouse=True)
def verifier_tokens(settings, monkeypatch):
    from webhooks.services import receiving

    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = [TOKEN]
    monkeypatch.setattr(receiving, "_last_security_log", {})  # one endpoint for every test: log each one's refusal


def _company(name: str, realm_id: str | None, *, status: str = "active"):
    return integration_create(
        actor=Actor.system("tests"),
        name=name,
        provider="quickbooks",
        config={"realm_id": realm_id} if realm_id else {},
        credentials={"refresh_token": f"rt-{realm_id}"},
        status=status,
    )


@pytest.fixture
def company_a(db):
    return _company("Atelier A", REALM_A)


@pytest.fixture
def company_b(db):
    return _company("Workshop B", REALM_B)


def _post(client, body: bytes, headers: dict[str, str], url: str = URL):
    headers = dict(headers)
    content_type = headers.pop("Content-Type", "application/json")
    return client.generic("POST", url, data=body, content_type=content_type, headers=headers)


def _cloudevents() -> list[dict]:
    return [
        signing.intuit_cloudevent(realm_id=REALM_A, entity="Customer", entity_id="58", event_id="ce-a-1"),
        signing.intuit_cloudevent(realm_id=UNKNOWN_REALM, entity="Customer", entity_id="1", event_id="ce-x-1"),
        signing.intuit_cloudevent(realm_id=REALM_B, entity="Invoice", entity_id="130", event_id="ce-b-1"),
        signing.intuit_cloudevent(
            realm_id=REALM_B, entity="Payment", entity_id="170", event_id="ce-b-2", verb="updated"
        ),
    ]


def _legacy() -> dict:
    def change(realm_id, name, entity_id, operation, second):
        at = f"2026-05-01T10:00:0{second}Z"
        return {"realm_id": realm_id, "name": name, "id": entity_id, "operation": operation, "last_updated": at}

    return signing.intuit_legacy_payload(
        [
            change(REALM_A, "Customer", "58", "Create", 0),
            change(UNKNOWN_REALM, "Customer", "1", "Create", 0),
            change(REALM_B, "Invoice", "130", "Create", 1),
            change(REALM_B, "Payment", "170", "Update", 2),
        ]
    )


DELIVERIES = {"cloudevents": _cloudevents, "legacy": _legacy}


def _mixed_delivery(body_format: str = "cloudevents", token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    """Changes of company A (one), an unknown company (one) and company B (two), in one signed delivery."""
    return signing.intuit_delivery(DELIVERIES[body_format](), token)


def _changes(event: WebhookEvent) -> list[tuple[str, str, str]]:
    return [(c["realm_id"], c["entity"], c["entity_id"]) for c in event.payload["changes"]]


def _today_counts(integration) -> dict:
    today = timezone.now().date()
    return webhook_counters_get(integration=integration, days=[today])[today]


# --- routing ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body_format", ["cloudevents", "legacy"])
def test_a_delivery_for_two_companies_is_one_event_per_integration_and_the_unknown_one_is_counted(
    client, company_a, company_b, body_format
):
    body, headers = _mixed_delivery(body_format)

    response = _post(client, body, headers)

    assert response.status_code == 200
    assert response.json() == {"received": True, "stored": 2, "held": 0, "duplicate": 0, "unrouted": 1}
    event_a = WebhookEvent.objects.get(integration=company_a)
    event_b = WebhookEvent.objects.get(integration=company_b)
    assert WebhookEvent.objects.count() == 2
    assert _changes(event_a) == [(REALM_A, "Customer", "58")]
    assert _changes(event_b) == [(REALM_B, "Invoice", "130"), (REALM_B, "Payment", "170")]
    assert (event_a.event_type, event_b.event_type) == ("qbo.customer.created.v1", "qbo.changes.v1")
    assert event_a.payload["format"] == event_b.payload["format"] == body_format
    for event in (event_a, event_b):
        assert (event.status, event.signature_valid, bytes(event.raw_body)) == ("pending", True, body)
        assert {k.lower(): v for k, v in event.headers.items()}["intuit-signature"] == headers["intuit-signature"]


def test_each_part_is_keyed_as_if_its_company_s_changes_had_come_alone(client, company_a, company_b):
    body, headers = _mixed_delivery()

    _post(client, body, headers)

    event_a = WebhookEvent.objects.get(integration=company_a)
    event_b = WebhookEvent.objects.get(integration=company_b)
    assert event_a.provider_event_id == "ce-a-1"  # a single change: its CloudEvents id
    assert event_b.provider_event_id == "delivery:" + hashlib.sha256(b"ce-b-1\nce-b-2").hexdigest()


def test_the_unknown_company_is_logged_once_by_its_realm_id_without_the_payload(client, company_a, company_b, caplog):
    body, headers = _mixed_delivery()

    with caplog.at_level(logging.INFO, logger="jewelia.webhooks"):
        _post(client, body, headers)

    lines = [r.getMessage() for r in caplog.records if r.name == "jewelia.webhooks"]
    assert len(lines) == 1
    assert UNKNOWN_REALM in lines[0] and "not stored" in lines[0]
    assert "Customer" not in lines[0] and "specversion" not in lines[0]


def test_a_delivery_only_for_unknown_companies_is_still_answered_200(client, company_a):
    body, headers = signing.intuit_delivery(
        [signing.intuit_cloudevent(realm_id=UNKNOWN_REALM, entity="Invoice", entity_id="5")], TOKEN
    )

    response = _post(client, body, headers)

    assert response.status_code == 200
    assert response.json() == {"received": True, "stored": 0, "held": 0, "duplicate": 0, "unrouted": 1}
    assert WebhookEvent.objects.count() == 0


def test_an_integration_not_connected_to_a_company_yet_receives_nothing(client, company_a):
    _company("Not connected", None, status="draft")  # no realm_id until the OAuth callback sets it
    body, headers = _mixed_delivery()

    assert _post(client, body, headers).json()["unrouted"] == 2
    assert set(WebhookEvent.objects.values_list("integration", flat=True)) == {company_a.pk}


def test_a_company_s_changes_go_to_its_active_integration_rather_than_an_old_paused_one(client, company_a):
    old = _company("Atelier A (old)", REALM_A, status="paused")
    body, headers = _mixed_delivery()

    _post(client, body, headers)

    assert WebhookEvent.objects.get(integration=company_a).status == "pending"
    assert not WebhookEvent.objects.filter(integration=old).exists()


def test_a_stored_delivery_of_two_parts_costs_one_query_for_routing_and_one_insert_per_part(
    client, company_a, company_b, django_assert_num_queries
):
    body, headers = _mixed_delivery()

    with django_assert_num_queries(3):
        assert _post(client, body, headers).status_code == 200


def test_both_receivers_need_no_csrf_token(company_a):
    webhook_secret_set(integration=company_a, secret="per-integration-verifier")
    csrf_checking = Client(enforce_csrf_checks=True)

    assert _post(csrf_checking, *_mixed_delivery()).status_code == 200
    per_integration = _mixed_delivery(token="per-integration-verifier")
    assert _post(csrf_checking, *per_integration, url=f"/api/webhooks/{company_a.pk}/").status_code == 200


# --- paused integrations and replays ----------------------------------------------------------------------------------


def test_the_part_of_a_paused_integration_is_held_and_the_other_is_pending(client, company_a):
    paused = _company("Workshop B", REALM_B, status="paused")
    body, headers = _mixed_delivery()

    response = _post(client, body, headers)

    assert response.json() == {"received": True, "stored": 2, "held": 1, "duplicate": 0, "unrouted": 1}
    assert WebhookEvent.objects.get(integration=paused).status == "held"
    assert WebhookEvent.objects.get(integration=company_a).status == "pending"


@pytest.mark.parametrize("body_format", ["cloudevents", "legacy"])
def test_the_same_delivery_again_is_only_duplicates_counted_per_integration(client, company_a, company_b, body_format):
    body, headers = _mixed_delivery(body_format)
    _post(client, body, headers)

    response = _post(client, body, headers)

    assert response.json() == {"received": True, "stored": 0, "held": 0, "duplicate": 2, "unrouted": 1}
    assert WebhookEvent.objects.count() == 2
    assert _today_counts(company_a)["duplicates"] == _today_counts(company_b)["duplicates"] == 1


def test_a_single_company_delivery_is_the_same_event_through_either_url(client, company_a):
    webhook_secret_set(integration=company_a, secret="per-integration-verifier")
    changes = [signing.intuit_cloudevent(realm_id=REALM_A, entity="Customer", entity_id="58")]
    body, headers = signing.intuit_delivery(changes, "per-integration-verifier")
    per_integration = _post(client, body, headers, url=f"/api/webhooks/{company_a.pk}/")
    assert per_integration.json() == {"received": True, "status": "pending"}

    body, headers = signing.intuit_delivery(changes, TOKEN)
    response = _post(client, body, headers)

    assert response.json()["duplicate"] == 1
    assert WebhookEvent.objects.get().provider_event_id == changes[0]["id"]


# --- verification (fail closed) ---------------------------------------------------------------------------------------


def test_a_bad_signature_gets_401_and_nothing_is_stored(client, company_a, company_b):
    body, headers = _mixed_delivery(token="someone-elses-token")

    error = assert_error(_post(client, body, headers), 401, "invalid_signature")

    assert error["message"] == "The webhook signature could not be verified."
    assert WebhookEvent.objects.count() == 0


def test_a_delivery_signed_with_an_integration_s_own_secret_is_refused_here(client, company_a):
    webhook_secret_set(integration=company_a, secret="per-integration-verifier")
    body, headers = _mixed_delivery(token="per-integration-verifier")

    assert_error(_post(client, body, headers), 401, "invalid_signature")


def test_a_missing_signature_header_gets_401(client, company_a):
    body, headers = _mixed_delivery()
    del headers["intuit-signature"]

    assert_error(_post(client, body, headers), 401, "invalid_signature")
    assert WebhookEvent.objects.count() == 0


def test_without_a_verifier_token_configured_every_delivery_gets_401(client, company_a, settings, caplog):
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = []
    body, headers = _mixed_delivery()

    with caplog.at_level(logging.WARNING, logger="jewelia.security.webhooks"):
        assert_error(_post(client, body, headers), 401, "invalid_signature")

    assert WebhookEvent.objects.count() == 0
    [line] = [r.getMessage() for r in caplog.records if r.name == "jewelia.security.webhooks"]
    assert "QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS" in line


def test_the_previous_verifier_token_still_verifies_while_both_are_configured(client, company_a, settings):
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = ["app-verifier-token-next", TOKEN]
    body, headers = _mixed_delivery()

    assert _post(client, body, headers).status_code == 200


# --- limits, content type, routing errors -----------------------------------------------------------------------------


def test_wrong_content_type_gets_415_naming_the_expected_one(client, company_a):
    body, headers = _mixed_delivery()
    headers["Content-Type"] = "text/plain"

    error = assert_error(_post(client, body, headers), 415, "unsupported_media_type")

    assert error["details"] == {"expected": ["application/json"]}
    assert WebhookEvent.objects.count() == 0


@override_settings(WEBHOOKS_MAX_BODY_BYTES=200)
def test_a_body_over_the_limit_gets_413_and_nothing_is_stored(client, company_a):
    body, headers = _mixed_delivery()
    assert len(body) > 200

    error = assert_error(_post(client, body, headers), 413, "payload_too_large")

    assert error["details"] == {"limit_bytes": 200}
    assert WebhookEvent.objects.count() == 0


def test_an_authentic_body_that_is_not_a_delivery_gets_400_and_is_kept_by_every_connected_company(
    client, company_a, company_b
):
    """DESIGN.md rule 7: a validly signed body that cannot be processed is stored failed, for staff to see and
    replay. Whose it is cannot be told without parsing it, so each integration of the app keeps it; the provider's
    retry of the same bytes adds nothing."""
    body, headers = signing.intuit_delivery({"id": "not-a-delivery"}, TOKEN)

    error = assert_error(_post(client, body, headers), 400, "invalid_payload")
    assert_error(_post(client, body, headers), 400, "invalid_payload")

    assert "neither a CloudEvents array nor an eventNotifications object" in error["details"]["reason"]
    kept = WebhookEvent.objects.order_by("integration__name")
    assert [(e.integration_id, e.status, e.signature_valid) for e in kept] == [
        (company_a.pk, "failed", True),
        (company_b.pk, "failed", True),
    ]
    assert {bytes(e.raw_body) for e in kept} == {body}
    assert all(e.last_error.startswith("Unparsable delivery: ") for e in kept)


def test_an_unparsable_delivery_with_no_company_connected_is_logged_with_its_hash(client, db, caplog):
    body, headers = signing.intuit_delivery({"id": "not-a-delivery"}, TOKEN)

    with caplog.at_level(logging.ERROR, logger="jewelia.webhooks"):
        assert_error(_post(client, body, headers), 400, "invalid_payload")

    assert WebhookEvent.objects.count() == 0
    assert hashlib.sha256(body).hexdigest() in caplog.text


@pytest.mark.parametrize("key", ["nosuchprovider", "stripe", "shopify"])
def test_a_provider_without_app_level_webhooks_has_no_such_endpoint(client, key):
    response = client.post(f"/api/webhooks/providers/{key}/", data=b"[]", content_type="application/json")

    assert_error(response, 404, "not_found")


def test_get_is_refused_with_405(client):
    response = client.get(reverse("webhook-receive-provider", args=["quickbooks"]))

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_health_counts_the_app_token_as_the_secret_of_app_level_integrations(company_a, settings):
    """A QuickBooks integration needs no secret of its own when the app's verifier token is set: health must not
    say every delivery is refused."""
    from webhooks.selectors import webhook_secret_configured

    assert webhook_secret_configured(integration=company_a) is True
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = []
    assert webhook_secret_configured(integration=company_a) is False


def test_a_company_connected_after_the_routing_map_was_cached_is_routed_at_once(client, company_a, settings):
    """The account -> integration map is cached per process; a delivery naming an account it does not know
    reloads it instead of dropping the new company's first changes as unrouted."""
    settings.WEBHOOKS_TARGET_CACHE_SECONDS = 60

    def deliver(realm_id: str, event_id: str):
        change = signing.intuit_cloudevent(realm_id=realm_id, entity="Customer", entity_id="7", event_id=event_id)
        return _post(client, *signing.intuit_delivery([change], TOKEN)).json()

    first = deliver(REALM_A, "ce-cache-1")  # caches the map with company A only
    company_b = _company("Workshop B", REALM_B)
    second = deliver(REALM_B, "ce-cache-2")

    assert (first["stored"], second["stored"], second["unrouted"]) == (1, 1, 0)
    assert WebhookEvent.objects.get(provider_event_id="ce-cache-2").integration_id == company_b.pk


def test_the_integration_admin_page_shows_the_app_level_url_and_the_app_secret_state(client, staff_user, company_a):
    client.force_login(staff_user)
    page = client.get(f"/admin/integrations/integration/{company_a.pk}/change/").content.decode()

    assert "<code>http://testserver/api/webhooks/providers/quickbooks/</code>" in page
    assert "one URL for every company of the app" in page and "signing secret set" in page

"""Admin: filtered lists, the pretty payload, replay with a confirmation page showing the count, dead letters."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_drain
from webhooks.tests.fakes import event

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/webhooks/webhookevent/"
DEAD_LIST = "/admin/webhooks/deadwebhookevent/"


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def events(integration, deliver):
    deliver(integration, event("customer.updated", {"id": 1, "name": "Ada", "email": "a@example.com"}, event_id="ok"))
    deliver(integration, event("broken", {}, event_id="dead-1"))
    deliver(integration, event("broken", {}, event_id="dead-2"))
    webhook_events_drain()
    return {e.provider_event_id: e for e in WebhookEvent.objects.all()}


def test_changelist_filters_by_status_type_and_integration(admin_client, integration, events):
    response = admin_client.get(
        CHANGELIST, {"status": "dead", "event_type": "broken", "integration__id__exact": integration.pk}
    )

    assert response.status_code == 200
    shown = {row.provider_event_id for row in response.context["cl"].result_list}
    assert shown == {"dead-1", "dead-2"}


def test_changelist_does_not_load_payloads(admin_client, events):
    response = admin_client.get(CHANGELIST)

    row = response.context["cl"].result_list[0]
    assert {"payload", "raw_body", "headers"} <= row.get_deferred_fields()


def test_change_page_shows_the_payload_pretty_printed_and_a_replay_button(admin_client, events):
    response = admin_client.get(f"{CHANGELIST}{events['ok'].pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "&quot;name&quot;: &quot;Ada&quot;" in html  # indented JSON, escaped
    assert f"{events['ok'].pk}/replay/" in html


def test_dead_letter_list_shows_only_dead_events(admin_client, events):
    response = admin_client.get(DEAD_LIST)

    assert {row.provider_event_id for row in response.context["cl"].result_list} == {"dead-1", "dead-2"}


def test_bulk_replay_action_first_shows_the_count_and_changes_nothing(admin_client, events):
    selected = [events["ok"].pk, events["dead-1"].pk, events["dead-2"].pk]

    response = admin_client.post(CHANGELIST, {"action": "replay_events", ACTION_CHECKBOX_NAME: selected})

    assert response.status_code == 200
    assert response.context["would_replay"] == 3
    assert "3 events will be processed again" in response.content.decode()
    assert WebhookEvent.objects.filter(status="pending").count() == 0


def test_confirmed_bulk_replay_requeues_the_selection(admin_client, events):
    selected = [events["dead-1"].pk, events["dead-2"].pk]

    response = admin_client.post(
        DEAD_LIST,
        {"action": "replay_events", ACTION_CHECKBOX_NAME: selected, "confirm": "yes", "expected": "2"},
    )

    assert response.status_code == 302
    assert set(WebhookEvent.objects.filter(status="pending").values_list("provider_event_id", flat=True)) == {
        "dead-1",
        "dead-2",
    }


def test_bulk_replay_of_a_whole_filtered_list_uses_select_across(admin_client, events):
    response = admin_client.post(
        f"{CHANGELIST}?status__exact=dead",
        {"action": "replay_events", ACTION_CHECKBOX_NAME: [events["dead-1"].pk], "select_across": "1"},
    )

    assert response.context["would_replay"] == 2


def test_single_replay_confirms_then_requeues(admin_client, events):
    url = f"{CHANGELIST}{events['dead-1'].pk}/replay/"

    confirm = admin_client.get(url)
    done = admin_client.post(url, {"confirm": "yes"})

    assert "1 event will be processed again" in confirm.content.decode()
    assert done.status_code == 302
    assert WebhookEvent.objects.get(pk=events["dead-1"].pk).status == "pending"


def test_replay_needs_the_change_permission(client, django_user_model, events):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    client.force_login(viewer)

    assert client.get(f"{CHANGELIST}{events['dead-1'].pk}/replay/").status_code == 403
    assert client.get(CHANGELIST).status_code == 200


def test_the_integration_page_shows_the_webhook_url_the_secret_state_and_a_link_to_the_events(
    admin_client, integration, make_integration
):
    page = admin_client.get(f"/admin/integrations/integration/{integration.pk}/change/").content.decode()
    unsigned = make_integration(name="Not signed yet", secret=None)
    other = admin_client.get(f"/admin/integrations/integration/{unsigned.pk}/change/").content.decode()

    assert f"<code>http://testserver/api/webhooks/{integration.pk}/</code>" in page
    assert "signing secret set" in page
    assert f"{CHANGELIST}?integration__id__exact={integration.pk}" in page
    assert "no signing secret" in other


def test_type_filter_offers_the_types_the_providers_handle_without_reading_the_inbox(admin_client, events):
    """The inbox can hold millions of events: the type choices come from the providers' handler tables, the list
    is newest first by id, and no query walks every event."""
    response = admin_client.get(CHANGELIST)

    type_filter = next(f for f in response.context["cl"].filter_specs if f.title == "type")
    choices = [value for value, _label in type_filter.lookup_choices]
    assert {"customer.updated", "broken", "flaky"} <= set(choices) and choices[-1] == ""
    ids = [row.pk for row in response.context["cl"].result_list]
    assert ids == sorted(ids, reverse=True)
    inbox_scans = [
        q["sql"] for q in _queries_of(admin_client) if "DISTINCT" in q["sql"] and "webhook_events" in q["sql"]
    ]
    assert inbox_scans == []


def _queries_of(client) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(CHANGELIST)
    return ctx.captured_queries

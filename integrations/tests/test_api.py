"""The integrations API: CRUD with write-only credentials, validation per provider, syncs, runs, records,
mappings, providers."""

import json
import logging

import pytest

from integrations.models import FieldMapping, Integration, RecordFailure, SyncRun
from integrations.tests.fakes import customer, product

pytestmark = pytest.mark.django_db

SECRET = "tok-secret-123"


@pytest.fixture
def payload():
    return {
        "name": "Online store",
        "provider": "fakeshop",
        "config": {"shop": "demo"},
        "credentials": {"access_token": SECRET},
        "sync_interval_minutes": 30,
    }


def test_create_stores_credentials_encrypted_and_never_returns_them(staff_client, fake_store, payload):
    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 201
    body = response.json()
    assert SECRET not in json.dumps(body)
    assert "credentials" not in body
    assert (body["has_credentials"], body["category"], body["status"]) == (True, "ecommerce", "active")
    assert body["created_by"]["type"] == "user"
    integration = Integration.objects.get(pk=body["id"])
    assert SECRET not in integration.credentials_encrypted
    assert integration.get_credentials() == {"access_token": SECRET}


def test_list_and_detail_never_contain_credentials(staff_client, integration):
    listing = staff_client.get("/api/integrations/")
    detail = staff_client.get(f"/api/integrations/{integration.pk}/")

    assert listing.status_code == detail.status_code == 200
    assert SECRET not in listing.content.decode() and SECRET not in detail.content.decode()
    assert listing.json()["count"] == 1


def test_config_is_validated_against_the_provider_schema_and_nothing_is_created(staff_client, fake_store, payload):
    payload["config"] = {"shop": "", "colour": "red"}

    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "config" in error["details"]["fields"]
    assert Integration.objects.count() == 0


def test_unknown_provider_is_refused(staff_client, fake_store, payload):
    payload["provider"] = "nope"

    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["provider"] == ["Unknown provider 'nope'."]


def test_interval_out_of_bounds_is_refused(staff_client, fake_store, payload):
    payload["sync_interval_minutes"] = 1

    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 400
    assert "sync_interval_minutes" in response.json()["error"]["details"]["fields"]
    assert Integration.objects.count() == 0


def test_base_url_on_a_disallowed_host_is_refused(staff_client, fake_store, payload):
    payload["config"] = {"shop": "demo", "base_url": "http://169.254.169.254/latest"}

    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["config"][0].startswith("base_url:")
    assert Integration.objects.count() == 0


def test_unknown_fields_are_refused(staff_client, fake_store, payload):
    payload["credentials_encrypted"] = "x"

    response = staff_client.post("/api/integrations/", payload, format="json")

    assert response.status_code == 400
    assert Integration.objects.count() == 0


def test_patch_changes_the_interval_and_keeps_credentials(staff_client, integration):
    response = staff_client.patch(f"/api/integrations/{integration.pk}/", {"sync_interval_minutes": 15}, format="json")

    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.sync_interval_minutes == 15
    assert integration.get_credentials() == {"access_token": SECRET}


def test_patch_cannot_change_the_provider(staff_client, integration):
    response = staff_client.patch(f"/api/integrations/{integration.pk}/", {"provider": "other"}, format="json")

    assert response.status_code == 400
    integration.refresh_from_db()
    assert integration.provider == "fakeshop"


def test_new_credentials_reconnect_a_disconnected_integration(staff_client, integration):
    Integration.objects.filter(pk=integration.pk).update(status="disconnected")

    response = staff_client.patch(
        f"/api/integrations/{integration.pk}/", {"credentials": {"access_token": "tok-new"}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["status"] == "active"


def test_filters_and_search(staff_client, make_integration):
    make_integration(name="Main shop")
    make_integration(name="Outlet", status="paused")

    assert [i["name"] for i in staff_client.get("/api/integrations/?search=main").json()["results"]] == ["Main shop"]
    assert [i["name"] for i in staff_client.get("/api/integrations/?status=paused").json()["results"]] == ["Outlet"]
    assert staff_client.get("/api/integrations/?provider=fakeshop&category=ecommerce").json()["count"] == 2
    assert staff_client.get("/api/integrations/?health=failing").json()["count"] == 0


def test_delete_removes_the_integration(staff_client, integration):
    response = staff_client.delete(f"/api/integrations/{integration.pk}/")

    assert response.status_code == 204
    assert Integration.objects.count() == 0


def test_sync_start_returns_the_queued_run_with_202_and_the_task_runs_it(
    staff_client, integration, fake_store, django_capture_on_commit_callbacks
):
    fake_store.data["customers"] = [customer(1, 1)]

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/api/integrations/{integration.pk}/sync/", {}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert (body["trigger"], body["status"], body["requested_by"]["type"]) == ("api", "queued", "user")
    run = staff_client.get(f"/api/integrations/{integration.pk}/runs/").json()["results"][0]
    assert (run["id"], run["status"], run["created"]) == (body["id"], "succeeded", 1)


def test_a_second_sync_request_returns_the_run_in_progress(staff_client, integration):
    from integrations.services import sync_start

    running, _ = sync_start(integration=integration, trigger="schedule", enqueue=False)

    response = staff_client.post(f"/api/integrations/{integration.pk}/sync/", {"full": True}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == running.pk
    assert SyncRun.objects.count() == 1


def test_sync_with_an_unknown_resource_is_refused(staff_client, integration):
    response = staff_client.post(
        f"/api/integrations/{integration.pk}/sync/", {"resources": ["invoices"]}, format="json"
    )

    assert response.status_code == 400
    assert SyncRun.objects.count() == 0


def test_sync_of_a_disconnected_integration_is_a_conflict(staff_client, integration):
    Integration.objects.filter(pk=integration.pk).update(status="disconnected")

    response = staff_client.post(f"/api/integrations/{integration.pk}/sync/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "integration_disconnected"


def test_get_sync_returns_health_and_live_check(staff_client, integration, fake_store):
    from integrations.errors import AuthError

    plain = staff_client.get(f"/api/integrations/{integration.pk}/sync/")
    fake_store.live_error = AuthError("401", status=401)
    live = staff_client.get(f"/api/integrations/{integration.pk}/sync/?check=live")

    assert plain.status_code == 200
    assert plain.json()["status"] == "healthy"
    assert live.json()["status"] == "disconnected"
    assert live.json()["details"]["live"] == {"ok": False, "kind": "auth", "error": "401"}
    integration.refresh_from_db()
    assert integration.status == "disconnected"


def test_sync_all_starts_a_bulk_run_per_active_integration(staff_client, make_integration, fake_store):
    make_integration(name="A")
    make_integration(name="B")
    make_integration(name="Paused", status="paused")

    response = staff_client.post("/api/integrations/sync/all/", {}, format="json")

    assert response.status_code == 202
    assert [run["trigger"] for run in response.json()] == ["bulk", "bulk"]
    assert SyncRun.objects.filter(trigger="bulk").count() == 2


def test_runs_are_listed_newest_first_and_filterable(staff_client, integration, fake_store, run_sync):
    fake_store.put("customers", customer(1, 1, broken=True))
    run_sync(integration)
    fake_store.data["customers"] = []
    run_sync(integration)

    all_runs = staff_client.get(f"/api/integrations/{integration.pk}/runs/").json()["results"]
    partial = staff_client.get(f"/api/integrations/{integration.pk}/runs/?status=partial").json()["results"]

    assert [run["status"] for run in all_runs] == ["succeeded", "partial"]
    assert len(partial) == 1 and partial[0]["failed"] == 1


def test_records_show_the_identity_map_and_failures_and_retry(
    staff_client, integration, fake_store, run_sync, django_capture_on_commit_callbacks
):
    fake_store.data["customers"] = [customer(1, 1), customer(2, 2, broken=True)]
    run_sync(integration)

    records = staff_client.get(f"/api/integrations/{integration.pk}/records/?resource=customers").json()
    failures = staff_client.get(f"/api/integrations/{integration.pk}/records/failures/").json()

    assert [(r["external_id"], r["local_type"]) for r in records["results"]] == [("1", "orders.customer")]
    assert [(f["external_id"], f["error"]) for f in failures["results"]] == [("2", "the record is broken")]

    RecordFailure.objects.update(payload=customer(2, 2))
    with django_capture_on_commit_callbacks(execute=True):
        retry = staff_client.post(f"/api/integrations/{integration.pk}/records/failures/retry/", {}, format="json")

    assert retry.status_code == 202
    assert retry.json()["mode"] == "retry_failures"
    assert SyncRun.objects.get(pk=retry.json()["id"]).created == 1
    assert staff_client.get(f"/api/integrations/{integration.pk}/records/failures/").json()["count"] == 0


def test_mappings_put_replaces_and_get_lists_them(staff_client, integration):
    body = {
        "mappings": [
            {"resource": "customers", "external_path": "note_attributes.0.value", "local_field": "notes"},
            {"resource": "products", "external_path": "metal", "local_field": "metal", "transform": "lower"},
        ]
    }

    put = staff_client.put(f"/api/integrations/{integration.pk}/mappings/", body, format="json")
    got = staff_client.get(f"/api/integrations/{integration.pk}/mappings/")

    assert put.status_code == 200
    assert got.json()["mappings"] == [
        {
            "resource": "customers",
            "external_path": "note_attributes.0.value",
            "local_field": "notes",
            "transform": "none",
            "enabled": True,
        },
        {
            "resource": "products",
            "external_path": "metal",
            "local_field": "metal",
            "transform": "lower",
            "enabled": True,
        },
    ]
    assert "external_id" not in got.json()["mappable_fields"]["customers"]


def test_an_invalid_mapping_is_refused_and_nothing_changes(staff_client, integration):
    FieldMapping.objects.create(
        integration=integration, resource="customers", external_path="note", local_field="notes"
    )
    body = {
        "mappings": [
            {"resource": "customers", "external_path": "a", "local_field": "external_id"},
            {"resource": "products", "external_path": "x", "local_field": "price", "transform": "upper"},
        ]
    }

    response = staff_client.put(f"/api/integrations/{integration.pk}/mappings/", body, format="json")

    assert response.status_code == 400
    errors = response.json()["error"]["details"]["fields"]["mappings"]
    assert set(errors) == {"0", "1"}
    assert "local_field" in errors["0"] and "transform" in errors["1"]
    assert list(FieldMapping.objects.values_list("local_field", flat=True)) == ["notes"]


def test_a_field_mapped_twice_for_one_resource_is_refused(staff_client, integration):
    mapping = {"resource": "customers", "external_path": "note", "local_field": "notes"}
    body = {"mappings": [mapping, {**mapping, "external_path": "comment"}]}

    response = staff_client.put(f"/api/integrations/{integration.pk}/mappings/", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["mappings"] == {
        "1": {"local_field": ["'notes' is mapped twice for customers."]}
    }
    assert not FieldMapping.objects.exists()


def test_configured_mappings_apply_on_top_of_the_provider_transform(integration, fake_store, run_sync):
    from orders.models import Product

    FieldMapping.objects.create(
        integration=integration,
        resource="products",
        external_path="attrs.metal",
        local_field="metal",
        transform="lower",
    )
    fake_store.data["products"] = [product(1, 1, "RING-9", attrs={"metal": "18K GOLD"})]

    run_sync(integration, resources=["products"])

    assert Product.objects.get(sku="RING-9").metal == "18k gold"


def test_providers_lists_the_registered_providers(staff_client, fake_store):
    response = staff_client.get("/api/providers/")

    assert response.status_code == 200
    fake = next(p for p in response.json() if p["key"] == "fakeshop")
    assert fake["category"] == "ecommerce"
    assert fake["auth_kind"] == "access_token"
    assert fake["config_schema"]["required"] == ["shop"]
    assert [r["name"] for r in fake["resources"]] == ["customers", "products", "inventory", "orders"]


def test_anonymous_requests_are_refused(api_client, integration):
    assert api_client.get("/api/integrations/").status_code in (401, 403)
    assert api_client.post(f"/api/integrations/{integration.pk}/sync/", {}, format="json").status_code in (401, 403)


def test_credentials_never_reach_the_logs(staff_client, fake_store, payload, caplog, run_sync):
    with caplog.at_level(logging.DEBUG):
        created = staff_client.post("/api/integrations/", payload, format="json").json()
        run_sync(Integration.objects.get(pk=created["id"]))

    assert SECRET not in caplog.text


def _key_client(*scopes: str):
    from rest_framework.test import APIClient

    from apikeys.services import api_key_create
    from jewelia.core.actors import Actor

    _row, raw = api_key_create(actor=Actor.system("tests"), name=f"key {'+'.join(scopes)}", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_api_key_scopes_separate_reading_changing_and_syncing(integration):
    reader = _key_client("integrations:read")
    syncer = _key_client("integrations:sync")

    assert reader.get("/api/integrations/").status_code == 200
    assert reader.get(f"/api/integrations/{integration.pk}/sync/").status_code == 200
    refused = reader.post(f"/api/integrations/{integration.pk}/sync/", {}, format="json")
    assert refused.status_code == 403
    assert "integrations:sync" in refused.json()["error"]["message"]
    assert reader.patch(f"/api/integrations/{integration.pk}/", {"name": "x"}, format="json").status_code == 403
    assert syncer.post(f"/api/integrations/{integration.pk}/sync/", {}, format="json").status_code == 202
    assert SyncRun.objects.get().requested_by_type == "api_key"


def test_provider_detail_and_unknown_provider(staff_client):
    shopify = staff_client.get("/api/providers/shopify/")
    missing = staff_client.get("/api/providers/nope/")

    assert shopify.status_code == 200
    assert (shopify.json()["category"], shopify.json()["auth_kind"]) == ("ecommerce", "access_token")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

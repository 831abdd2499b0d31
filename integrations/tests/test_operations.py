"""Encryption keys and their rotation, management commands, admin (secrets never shown), demo seed."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from integrations import crypto
from integrations.models import Integration, RecordFailure, SyncRun
from integrations.tests.fakes import customer

pytestmark = pytest.mark.django_db

SECRET = "tok-secret-123"


def test_credentials_are_encrypted_with_the_first_configured_key(settings):
    key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key]

    token = crypto.encrypt_json({"access_token": SECRET})

    assert SECRET not in token
    assert Fernet(key.encode()).decrypt(token.encode()) == b'{"access_token":"tok-secret-123"}'


def test_rotate_encryption_key_reencrypts_every_row_with_the_new_key(integration, settings):
    old = Fernet.generate_key().decode()
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    integration.set_credentials({"access_token": SECRET})
    integration.save()
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()

    call_command("rotate_encryption_key", stdout=out)

    assert "Re-encrypted credentials of 1 integration(s)" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    integration.refresh_from_db()
    assert integration.get_credentials() == {"access_token": SECRET}


def test_credentials_unreadable_with_the_configured_keys_raise_a_clear_error(integration, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(crypto.DecryptionError):
        integration.get_credentials()


def test_sync_integration_command_runs_one_integration_inline(integration, fake_store):
    fake_store.data["customers"] = [customer(1, 1), customer(2, 2)]
    out = io.StringIO()

    call_command("sync_integration", str(integration.pk), "--resource", "customers", stdout=out)

    run = SyncRun.objects.get()
    assert f"Fake store: run {run.pk} succeeded" in out.getvalue()
    assert "created 2" in out.getvalue()
    assert run.trigger == "manual"


def test_sync_integration_all_with_full_resync(make_integration, fake_store):
    make_integration(name="A")
    make_integration(name="B")
    make_integration(name="Draft", status="draft")
    out = io.StringIO()

    call_command("sync_integration", "--all", "--full", stdout=out)

    assert out.getvalue().count("succeeded") == 2
    assert SyncRun.objects.filter(full=True).count() == 2


def test_sync_integration_enqueue_queues_the_run_for_the_workers_without_running_it(integration, fake_store):
    fake_store.data["customers"] = [customer(1, 1)]
    out = io.StringIO()

    call_command("sync_integration", str(integration.pk), "--enqueue", stdout=out)

    run = SyncRun.objects.get()
    assert out.getvalue().strip() == f"Fake store: run {run.pk} queued."
    assert (run.status, run.enqueued_at is not None, fake_store.fetches) == ("queued", True, [])


def test_sync_integration_needs_an_id_or_all(db):
    with pytest.raises(CommandError):
        call_command("sync_integration")


def test_check_integrations_prints_health_and_fails_on_failing_ones(make_integration):
    ok = make_integration(name="OK")
    bad = make_integration(name="Bad")
    Integration.objects.filter(pk=bad.pk).update(consecutive_failures=4)
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 integration"):
        call_command("check_integrations", stdout=out)

    assert f"{ok.name} (fakeshop): healthy" in out.getvalue()
    assert "Bad (fakeshop): failing - 4 runs failed in a row" in out.getvalue()


def test_cleanup_command_uses_the_retention_setting(integration, settings):
    settings.INTEGRATIONS_RETENTION_DAYS = 30
    out = io.StringIO()

    call_command("cleanup", stdout=out)

    assert out.getvalue().splitlines()[0] == "Deleted 0 runs and 0 record failures older than 30 days."


def test_cleanup_command_also_prunes_webhook_events_past_their_retention(integration, settings):
    from datetime import timedelta

    from django.utils import timezone

    from webhooks.models import WebhookEvent

    old = timezone.now() - timedelta(days=settings.WEBHOOKS_RETENTION_DAYS + 1)
    common = {"integration": integration, "event_type": "orders/create", "received_at": old}
    WebhookEvent.objects.create(provider_event_id="done", status="processed", **common)
    WebhookEvent.objects.create(provider_event_id="dead", status="dead", **common)  # failed ones are kept longer
    out = io.StringIO()

    call_command("cleanup", stdout=out)

    assert list(WebhookEvent.objects.values_list("provider_event_id", flat=True)) == ["dead"]
    assert "Deleted 1 webhook events." in out.getvalue()


def test_admin_never_shows_credentials(client, staff_user, integration):
    client.force_login(staff_user)

    changelist = client.get("/admin/integrations/integration/")
    change = client.get(f"/admin/integrations/integration/{integration.pk}/change/")

    assert changelist.status_code == change.status_code == 200
    for page in (changelist, change):
        html = page.content.decode()
        assert SECRET not in html
        assert integration.credentials_encrypted not in html
    assert "stored (encrypted, never shown)" in change.content.decode()


def test_admin_credentials_field_replaces_them_only_when_filled(client, staff_user, integration):
    client.force_login(staff_user)
    form = {
        "name": "Renamed",
        "provider": "fakeshop",
        "status": "active",
        "config": '{"shop": "demo"}',
        "sync_enabled": "on",
        "sync_interval_minutes": "60",
        "sync_resources": "[]",
        "credentials": "",
        "field_mappings-TOTAL_FORMS": "0",
        "field_mappings-INITIAL_FORMS": "0",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
    }

    kept = client.post(f"/admin/integrations/integration/{integration.pk}/change/", form)
    integration.refresh_from_db()
    assert kept.status_code == 302
    assert (integration.name, integration.get_credentials()) == ("Renamed", {"access_token": SECRET})

    client.post(
        f"/admin/integrations/integration/{integration.pk}/change/", {**form, "credentials": '{"access_token": "new"}'}
    )
    integration.refresh_from_db()
    assert integration.get_credentials() == {"access_token": "new"}


def test_admin_sync_now_action_starts_a_run(client, staff_user, integration, django_capture_on_commit_callbacks):
    client.force_login(staff_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/integrations/integration/", {"action": "sync_now", "_selected_action": [str(integration.pk)]}
        )

    assert response.status_code == 302
    assert SyncRun.objects.get().status == "succeeded"


def test_admin_record_failure_retry_action(client, staff_user, integration, fake_store, run_sync):
    fake_store.data["customers"] = [customer(9, 1, broken=True)]
    run_sync(integration, resources=["customers"])
    RecordFailure.objects.update(payload=customer(9, 1))
    client.force_login(staff_user)

    response = client.post(
        "/admin/integrations/recordfailure/",
        {"action": "retry", "_selected_action": [str(RecordFailure.objects.get().pk)]},
    )

    assert response.status_code == 302
    assert SyncRun.objects.filter(mode="retry_failures").count() == 1
    assert "tok-secret" not in client.get("/admin/integrations/recordfailure/").content.decode()


def test_demo_seed_creates_the_sandbox_integration_once(db, settings):
    from integrations.demo import DEMO_NAME, seed

    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    settings.SANDBOX_BASE_URL = "http://127.0.0.1:8765"
    out = io.StringIO()

    from django.core.management.color import no_style

    seed(stdout=out, style=no_style())
    seed(stdout=out, style=no_style())

    integration = Integration.objects.get(name=DEMO_NAME)
    assert integration.provider == "shopify"
    assert integration.config["base_url"] == "http://127.0.0.1:8765/shopify"
    assert integration.status == "active"
    assert "already exists" in out.getvalue()

"""Health rules, alert-once, and the Standard Webhooks signed alert."""

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from integrations.alerts import standard_webhook_headers
from integrations.health import integration_health_compute, integration_health_refresh
from integrations.models import Integration, SyncRun

pytestmark = pytest.mark.django_db


def _run(integration, status, minutes_ago=1, **fields):
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    return SyncRun.objects.create(
        integration=integration, trigger="schedule", status=status, finished_at=finished, **fields
    )


def test_recent_success_is_healthy(integration):
    Integration.objects.filter(pk=integration.pk).update(last_success_at=timezone.now() - timedelta(minutes=10))
    integration.refresh_from_db()
    _run(integration, "succeeded", duration_seconds=2.0, fetched=40)

    report = integration_health_compute(integration=integration)

    assert report.status == "healthy"
    assert report.reason == "OK, last success 10 min ago."
    assert (report.details["runs_24h"], report.details["records_24h"], report.details["avg_duration_seconds"]) == (
        1,
        40,
        2.0,
    )


def test_three_failures_in_a_row_is_failing(integration):
    Integration.objects.filter(pk=integration.pk).update(
        consecutive_failures=3, last_success_at=timezone.now() - timedelta(minutes=30)
    )
    integration.refresh_from_db()
    _run(integration, "failed", error_summary="503 from provider")

    report = integration_health_compute(integration=integration)

    assert report.status == "failing"
    assert report.reason == "3 runs failed in a row: 503 from provider"


def test_one_failure_is_degraded(integration):
    Integration.objects.filter(pk=integration.pk).update(
        consecutive_failures=1, last_success_at=timezone.now() - timedelta(minutes=30)
    )
    integration.refresh_from_db()
    _run(integration, "failed", error_summary="timeout")

    assert integration_health_compute(integration=integration).status == "degraded"


def test_no_success_for_more_than_three_intervals_is_failing(integration):
    Integration.objects.filter(pk=integration.pk).update(
        sync_interval_minutes=60, last_success_at=timezone.now() - timedelta(hours=4)
    )
    integration.refresh_from_db()

    report = integration_health_compute(integration=integration)

    assert report.status == "failing"
    assert report.reason == "No successful sync for over 3 intervals (last success 4 h ago)."


def test_partial_last_run_is_degraded(integration):
    Integration.objects.filter(pk=integration.pk).update(last_success_at=timezone.now())
    integration.refresh_from_db()
    _run(integration, "partial", failed=4)

    report = integration_health_compute(integration=integration)

    assert (report.status, report.reason) == ("degraded", "4 records failed in the last run.")


def test_paused_and_disconnected_states(integration):
    Integration.objects.filter(pk=integration.pk).update(status="paused")
    integration.refresh_from_db()
    assert integration_health_compute(integration=integration).status == "paused"

    Integration.objects.filter(pk=integration.pk).update(status="disconnected")
    integration.refresh_from_db()
    assert integration_health_compute(integration=integration).status == "disconnected"


def test_live_check_failure_is_failing(integration, fake_store):
    from integrations.errors import TransientError

    fake_store.live_error = TransientError("connect timeout")

    report = integration_health_compute(integration=integration, live=True)

    assert (report.status, report.details["live"]["kind"]) == ("failing", "transient")


def test_a_change_of_state_alerts_once_and_an_unchanged_state_never(
    integration, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    with django_capture_on_commit_callbacks(execute=True):
        integration_health_refresh(integration=integration)  # unknown -> healthy: not news
    assert mail.outbox == []

    Integration.objects.filter(pk=integration.pk).update(consecutive_failures=5)
    integration.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        with_alert = integration_health_refresh(integration=integration)
        integration_health_refresh(integration=integration)
        integration_health_refresh(integration=integration)

    assert with_alert.status == "failing"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.endswith("Integration Fake store: failing")


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Receiver.received
    server.shutdown()
    server.server_close()


def test_alert_webhook_gets_a_standard_webhooks_signed_event(
    integration, settings, receiver, django_capture_on_commit_callbacks
):
    url, received = receiver
    key = b"0123456789abcdef0123456789abcdef"
    settings.INTEGRATIONS_ALERT_WEBHOOK_URL = url
    settings.INTEGRATIONS_ALERT_WEBHOOK_SECRET = "whsec_" + base64.b64encode(key).decode()
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]
    Integration.objects.filter(pk=integration.pk).update(status="disconnected", health_status="healthy")
    integration.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        integration_health_refresh(integration=integration)

    assert len(received) == 1
    headers, body = received[0]
    headers = {k.lower(): v for k, v in headers.items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    event = json.loads(body)
    assert event["type"] == "integration.health_changed"
    assert (event["data"]["previous_status"], event["data"]["status"]) == ("healthy", "disconnected")
    assert "tok-secret-123" not in body.decode()


def test_standard_webhooks_signature_matches_the_reference_vector():
    # The reference example from the Standard Webhooks specification's libraries.
    headers = standard_webhook_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )

    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

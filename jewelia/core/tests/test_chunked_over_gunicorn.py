"""Chunked bodies through a real gunicorn (which decodes `Transfer-Encoding: chunked` and marks the WSGI input
terminated): a signed Stripe delivery is verified against its whole body and stored, and an API write keeps its
data. The test client only imitates the WSGI environ (test_chunked_bodies.py); this is the server itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from integrations.sandbox import signing
from integrations.services import integration_create
from jewelia.core.actors import Actor
from orders.models import Customer
from webhooks.models import WebhookEvent
from webhooks.services import webhook_secret_set

pytestmark = pytest.mark.services
SECRET = "whsec_chunked_e2e_secret_0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_url(transactional_db, tmp_path):
    from conftest import ROOT, _test_database_url

    port = _free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "jewelia.settings.test", "DATABASE_URL": _test_database_url()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "jewelia.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def _chunks(body: bytes, size: int = 100):
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_signed_webhook_is_verified_and_stored(gunicorn_url):
    integration = integration_create(
        actor=Actor.system("tests"), name="Stripe", provider="stripe", credentials={"api_key": "sk_test_51Jewelia"}
    )
    webhook_secret_set(integration=integration, secret=SECRET)
    event = signing.stripe_event("customer.created", {"id": "cus_chunked", "object": "customer"}, event_id="evt_ch")
    body, headers = signing.stripe_delivery(event, SECRET)

    response = requests.post(
        f"{gunicorn_url}/api/webhooks/{integration.pk}/", data=_chunks(body), headers=headers, timeout=10
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 200, response.text
    stored = WebhookEvent.objects.get(integration=integration)
    assert (stored.provider_event_id, bytes(stored.raw_body)) == ("evt_ch", body)


def test_a_chunked_api_write_keeps_its_data(gunicorn_url, staff_user):
    body = b'{"name": "Chunked Over Gunicorn", "email": "gunicorn@example.com"}'

    response = requests.post(
        f"{gunicorn_url}/api/customers/",
        data=_chunks(body, size=16),
        headers={"Content-Type": "application/json"},
        auth=("staff", "pw"),
        timeout=10,
    )

    assert response.status_code == 201, response.text
    assert Customer.objects.get().email == "gunicorn@example.com"

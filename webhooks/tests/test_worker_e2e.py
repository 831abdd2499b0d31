"""End to end on PostgreSQL + Redis with a real Celery worker: a signed Stripe delivery becomes a payment; a
worker killed while it holds an event loses nothing; with Redis stopped the receiver still stores events, and
they are processed once Redis is back."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import subprocess
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from integrations.sandbox import signing
from orders.models import Payment
from orders.tests.factories import OrderFactory
from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_sweep
from webhooks.tests.stripe_setup import stripe_integration_create

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SECRET = "whsec_e2e_secret_0001"
FIXTURE = Path(settings.BASE_DIR) / "integrations/tests/providers/fixtures/stripe/payment_intent.succeeded.json"


def _wait_for(predicate, *, timeout: float = 60.0, repair=None):
    """Poll `predicate`; every 2 s call `repair` (re-publish work another test run's worker on the shared broker
    may have taken)."""
    deadline = time.monotonic() + timeout
    next_repair = time.monotonic() + 2
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if repair is not None and time.monotonic() >= next_repair:
            repair()
            next_repair = time.monotonic() + 2
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the worker")


def _sweep_as_if_later() -> None:
    """What beat's sweeper does once the grace period and the claim timeout have passed."""
    later = timezone.now() + timedelta(
        seconds=max(settings.WEBHOOKS_PROCESSING_TIMEOUT_SECONDS, settings.WEBHOOKS_PENDING_GRACE_SECONDS) + 1
    )
    webhook_events_sweep(now=later)


# --- a broker of our own ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A throwaway redis-server of this test's own, so stopping it disturbs no one else."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.contextmanager
def _celery_broker(url: str):
    """Point this process's Celery app (publishing, pings) at another broker, and back afterwards."""
    from jewelia.celery import app

    def switch(to: str) -> None:
        # Pools are kept by kombu per broker URL; dropping the references is enough to pick the other one.
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = to

    original = app.conf.broker_url
    switch(url)
    try:
        yield
    finally:
        switch(original)


@pytest.fixture
def worker(celery_worker_process):
    """The real worker, moved to a Redis server of this test's own: no other test run's worker (they share the
    default Redis and its queues) can take this test's tasks, and stopping it disturbs no one else."""
    redis = PrivateRedis()
    redis.start()
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}}
    try:
        with override_settings(CACHES=caches), _celery_broker(redis.url):
            celery_worker_process.stop()
            celery_worker_process.env.update(REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url)
            celery_worker_process.start()
            celery_worker_process.redis = redis
            yield celery_worker_process
            celery_worker_process.stop()
    finally:
        redis.stop()


@pytest.fixture
def stripe_integration():
    return stripe_integration_create(secret=SECRET, name="Stripe e2e")


def _payment_event(event_id: str, intent_id: str, order_number: str) -> dict:
    event = copy.deepcopy(json.loads(FIXTURE.read_text()))
    event["id"], event["created"] = event_id, int(time.time())
    event["data"]["object"]["id"] = intent_id
    event["data"]["object"]["metadata"] = {"jewelia_order": order_number}
    return event


@pytest.fixture
def send(client, stripe_integration):
    def post(event: dict):
        body, headers = signing.stripe_delivery(event, SECRET)
        headers.pop("Content-Type")
        response = client.generic(
            "POST",
            f"/api/webhooks/{stripe_integration.pk}/",
            data=body,
            content_type="application/json; charset=utf-8",
            headers=headers,
        )
        assert response.status_code == 200, response.content
        return WebhookEvent.objects.get(integration=stripe_integration, provider_event_id=event["id"])

    return post


def _processed(event: WebhookEvent):
    event.refresh_from_db()
    return event.status == "processed"


def test_signed_delivery_is_processed_by_a_worker_into_a_payment_on_its_order(worker, send):
    order = OrderFactory(number="J-1042", currency="USD")

    stored = send(_payment_event("evt_e2e_1", "pi_e2e_1", "J-1042"))

    _wait_for(lambda: _processed(stored), repair=_sweep_as_if_later)
    payment = Payment.objects.get(provider="stripe", external_id="pi_e2e_1")
    assert (payment.order_id, payment.status, payment.amount) == (order.pk, "captured", Decimal("1250.00"))
    assert stored.attempts == 1


def test_event_held_by_a_killed_worker_is_processed_after_restart(worker, send):
    OrderFactory(number="J-2001", currency="USD")
    dsn = worker.env["DATABASE_URL"]
    # Hold the payments table so the worker blocks half-way through writing the event's payment.
    blocker = psycopg.connect(dsn)
    blocker.execute("LOCK TABLE orders_payment IN EXCLUSIVE MODE")
    try:
        stored = send(_payment_event("evt_e2e_kill", "pi_e2e_kill", "J-2001"))

        def worker_blocked():
            stored.refresh_from_db()
            waiting = blocker.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'orders_payment' AND NOT l.granted"
            ).fetchone()[0]
            return stored.status == "processing" and waiting

        _wait_for(worker_blocked)
        worker.kill()
    finally:
        blocker.rollback()
        blocker.close()
    assert Payment.objects.filter(external_id="pi_e2e_kill").count() == 0

    worker.start()
    _wait_for(lambda: _processed(stored), repair=_sweep_as_if_later)

    assert stored.attempts == 2  # the killed claim, then the one that finished
    assert Payment.objects.filter(external_id="pi_e2e_kill").count() == 1


def test_with_redis_stopped_deliveries_are_stored_and_processed_once_it_is_back(worker, send):
    OrderFactory(number="J-3001", currency="USD")
    before = send(_payment_event("evt_e2e_before", "pi_e2e_before", "J-3001"))
    _wait_for(lambda: _processed(before), repair=_sweep_as_if_later)

    worker.redis.stop()
    started = time.monotonic()
    during = send(_payment_event("evt_e2e_during", "pi_e2e_during", "J-3001"))
    assert time.monotonic() - started < 2  # answered at once, not after broker retries
    assert during.status == "pending"

    worker.redis.start()
    _wait_for(lambda: _processed(during), timeout=90, repair=_sweep_as_if_later)
    assert Payment.objects.filter(external_id="pi_e2e_during").count() == 1

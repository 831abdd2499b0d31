"""Webhook receiver benchmark: signed Stripe deliveries at gunicorn on PostgreSQL + Redis (run by hand).

    .venv/bin/python bench/webhooks_bench.py [--events 3000] [--rounds 3] [--duplicates 0.1]
                                             [--workers 3] [--clients 3] [--worker-during-load]

One gunicorn server on 127.0.0.1 (production settings plus `bench/webhooks_bench_urls.py`) serves three
targets, and every delivery of the traffic goes to all three, so they see the same load:

- receiver: the real `POST /api/webhooks/<integration uuid>/` (integration lookup, Stripe verification, parse,
  INSERT of the event row with the unique constraint, debounced processing nudge);
- minimal: the least a durable receiver can do: the same HMAC check with a known secret, then one raw-SQL
  `INSERT ... ON CONFLICT DO NOTHING` of the raw body;
- bare: a bare Django view answering 200 (the server's ceiling).

Traffic per round: `--events` `payment_intent.succeeded` events with unique ids, plus `--duplicates` of them
delivered a second time later in the round (as Stripe retries do), signed at the start of the round. Each of
`--clients` client processes keeps one request in flight, cycling through the targets in rotating order; a
target's throughput is clients / its mean latency (Little's law for closed loops), its p50/p99 are measured
per request. The figures of merit: receiver / minimal throughput (target >= 0.8) and receiver p99 (< 50 ms).

Then a Celery worker (prefork, `--celery-concurrency` processes) drains the inbox (by default only after the
load, so processing does not compete with the phase being measured; `--worker-during-load` runs it
throughout), and the bench checks every sent event is stored exactly once and processed exactly once (one
claim each, one payment each), that the minimal view stored each event once, and that duplicates were
answered and counted as such.

Needs PostgreSQL (database `jewelia_webhooks_bench`, created if missing; BENCH_DATABASE_URL overrides) and the
`redis-server` binary: the bench runs a Redis of its own on a free port, so it disturbs nothing else.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jewelia_webhooks_bench")
SECRET = "whsec_bench_" + "0123456789abcdef" * 2
TARGETS = ("receiver", "minimal", "bare")
WARM_UP = 150
MINIMAL_TABLE = "bench_minimal_webhook_events"


# --- processes ------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, *, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def _start_redis() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait(answers, timeout=10, what="redis-server")
    return proc, f"redis://127.0.0.1:{port}/0"


def _ensure_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- HTTP client (runs in spawned processes: sockets only, no Django) -----------------------------------------------
def _fetch(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response[9:12]), response[response.find(b"\r\n\r\n") + 4 :]


def _client(port: int, items: list[tuple[bytes, ...]], offset: int, start_at: float, results) -> None:
    """Send every item to every target, rotating which target goes first; record latency, status, duplicate."""
    while time.time() < start_at:
        time.sleep(0.001)
    latencies: list[list[float]] = [[] for _ in TARGETS]
    statuses: list[dict[int, int]] = [{} for _ in TARGETS]
    duplicates = 0
    started = time.perf_counter()
    for number, requests in enumerate(items):
        first = (number + offset) % len(TARGETS)
        for target in [*range(first, len(TARGETS)), *range(first)]:
            begin = time.perf_counter()
            status, body = _fetch(port, requests[target])
            latencies[target].append(time.perf_counter() - begin)
            statuses[target][status] = statuses[target].get(status, 0) + 1
            if target == 0 and b'"duplicate": true' in body:
                duplicates += 1
    results.put((latencies, statuses, duplicates, time.perf_counter() - started))


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- traffic ----------------------------------------------------------------------------------------------------------
def _traffic(integration_id: str, *, prefix: str, events: int, duplicates: float, rng: random.Random):
    """-> (requests per delivery for each target, unique event ids). Duplicates re-send an earlier event's body
    later in the round with a fresh signature, as Stripe's retries do."""
    from integrations.sandbox import signing

    now = int(time.time())
    bodies = []
    for number in range(events):
        intent_id = f"pi_{prefix}_{number:06d}"
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": 125000 + number,
            "amount_received": 125000 + number,
            "currency": "usd",
            "status": "succeeded",
            "customer": None,
            "latest_charge": f"ch_{prefix}_{number:06d}",
            "metadata": {},
            "created": now - 5,
            "livemode": False,
        }
        event = signing.stripe_event("payment_intent.succeeded", intent, event_id=f"evt_{prefix}_{number:06d}")
        bodies.append((event["id"], signing.encode(event)))
    order = list(range(events))
    for original in rng.sample(range(events), int(events * duplicates)):
        order.insert(rng.randint(order.index(original) + 1, len(order)), original)
    paths = (f"/api/webhooks/{integration_id}/", f"/api/bench/minimal/{integration_id}/", "/api/bench/bare/")
    deliveries = []
    for index in order:
        body = bodies[index][1]
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": signing.STRIPE_USER_AGENT,
            "Stripe-Signature": signing.sign_stripe(body, SECRET, now),
        }
        deliveries.append(tuple(_request(path, body, headers) for path in paths))
    return deliveries, [event_id for event_id, _ in bodies]


def _run(port: int, deliveries: list, clients: int, round_number: int):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 1.5  # every client process is up before the first request
    procs = [
        context.Process(
            target=_client, args=(port, deliveries[index::clients], index + round_number, start_at, results)
        )
        for index in range(clients)
    ]
    for proc in procs:
        proc.start()
    outcome = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return outcome


# --- Django side (this process) ---------------------------------------------------------------------------------------
def _setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path[:0] = [str(BENCH_DIR), str(ROOT)]
    import django

    django.setup()


def _reset() -> str:
    """Empty the tables the bench writes, create the minimal view's table and the Stripe integration."""
    from django.core.management import call_command
    from django.db import connection

    from integrations.models import Integration
    from webhooks.tests.stripe_setup import stripe_integration_create

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE webhook_events, webhook_counters, integration_mappings, orders_payment RESTART IDENTITY CASCADE"
        )
        cursor.execute(f"DROP TABLE IF EXISTS {MINIMAL_TABLE}")
        cursor.execute(
            f"CREATE TABLE {MINIMAL_TABLE} (id bigserial PRIMARY KEY, integration_id uuid NOT NULL, "
            "event_id varchar(255) NOT NULL, body bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
            "UNIQUE (integration_id, event_id))"
        )
    Integration.objects.all().delete()
    integration = stripe_integration_create(secret=SECRET, name="Bench Stripe account", actor="bench")
    connection.close()
    return str(integration.pk)


def _start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "jewelia.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
    )

    def up() -> bool:
        try:
            return _fetch(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")[0] == 200
        except OSError:
            return False

    _wait(up, timeout=30, what="gunicorn")
    return server


def _start_worker(env: dict[str, str], concurrency: int) -> subprocess.Popen:
    log = ROOT / "var" / "webhooks-bench-worker.log"
    log.parent.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jewelia",
            "worker",
            "-Q",
            "webhooks,default",
            f"--concurrency={concurrency}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
            "-n",
            f"webhooks-bench-{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _drain_and_wait(integration_id: str, total: int, timeout: float) -> tuple[int, float]:
    """Nudge a drain and wait until no event of the integration is pending or being processed
    -> (events still waiting when called, seconds taken)."""
    from django.db import connection

    from webhooks.models import WebhookEvent
    from webhooks.tasks import drain

    backlog = WebhookEvent.objects.filter(integration_id=integration_id).exclude(status="processed").count()
    started = time.monotonic()
    drain.delay()

    def finished() -> bool:
        waiting = WebhookEvent.objects.filter(
            integration_id=integration_id, status__in=["pending", "processing"]
        ).count()
        connection.close()
        return waiting == 0 and WebhookEvent.objects.filter(integration_id=integration_id).count() == total

    _wait(finished, timeout=timeout, what="the worker to process every event", every=1.0)
    return backlog, time.monotonic() - started


def _checks(integration_id: str, sent_ids: list[str], duplicate_sends: int, duplicate_answers: int) -> list[str]:
    from django.db import connection
    from django.db.models import Count

    from integrations.models import IdentityMapping
    from orders.models import Payment
    from webhooks.models import WebhookCounter, WebhookEvent
    from webhooks.services import webhook_counters_flush

    problems = []
    events = WebhookEvent.objects.filter(integration_id=integration_id)
    stored = dict(events.values_list("provider_event_id").annotate(n=Count("id")).values_list("provider_event_id", "n"))
    missing = set(sent_ids) - set(stored)
    extra = set(stored) - set(sent_ids)
    twice = [event_id for event_id, n in stored.items() if n != 1]
    if missing or extra or twice:
        problems.append(f"stored: {len(missing)} missing, {len(extra)} unexpected, {len(twice)} more than once")
    not_processed = events.exclude(status="processed").count()
    claims = dict(events.values_list("attempts").annotate(n=Count("id")).values_list("attempts", "n"))
    if not_processed or set(claims) != {1}:
        problems.append(f"processed: {not_processed} not processed; events per number of claims: {claims}")
    applied_twice = events.exclude(result="payment_intents: 1 created, 0 updated, 0 unchanged").count()
    if applied_twice:
        problems.append(f"processing: {applied_twice} events did not create exactly their one payment")
    payments = Payment.objects.filter(provider="stripe", external_id__startswith="pi_bench").count()
    identities = IdentityMapping.objects.filter(integration_id=integration_id).count()
    if payments != len(sent_ids) or identities != len(sent_ids):
        problems.append(f"payments: {payments} rows and {identities} identity rows for {len(sent_ids)} events")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {MINIMAL_TABLE}")
        rows, distinct = cursor.fetchone()
    if rows != len(sent_ids) or distinct != len(sent_ids):
        problems.append(f"minimal view: {rows} rows ({distinct} distinct) for {len(sent_ids)} events")
    if duplicate_answers != duplicate_sends:
        problems.append(f"duplicates: {duplicate_answers} answered as duplicates, {duplicate_sends} sent")
    webhook_counters_flush()
    counted = sum(WebhookCounter.objects.filter(integration_id=integration_id).values_list("duplicates", flat=True))
    if counted != duplicate_sends:
        problems.append(f"duplicates: {counted} counted, {duplicate_sends} sent")
    return problems


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="unique events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of events delivered twice")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=3, help="client processes (requests in flight)")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--worker-during-load", action="store_true", help="process events while measuring")
    args = parser.parse_args()

    _ensure_database()
    redis, redis_url = _start_redis()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webhooks_bench_settings",
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(ROOT)]),
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-only-secret-key-" + "0123456789" * 3,
        "APIKEYS_PEPPER": "bench-only-pepper-" + "0123456789" * 3,
        "FIELD_ENCRYPTION_KEYS": "bA7m0bkR0QHi8SuX5xw2V8SD1e7O6y5JzQp3YtDqfEk=",  # a throwaway key for this bench
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "BENCH_WEBHOOK_SECRET": SECRET,
    }
    server = worker = None
    try:
        _setup_django(env)
        integration_id = _reset()
        port = _free_port()
        server = _start_gunicorn(env, port, args.workers)
        if args.worker_during_load:
            worker = _start_worker(env, args.celery_concurrency)
        rng = random.Random(5)

        warm, warm_ids = _traffic(integration_id, prefix="bench_warm", events=WARM_UP, duplicates=0, rng=rng)
        _run(port, warm, args.clients, 0)
        sent_ids, duplicate_sends, duplicate_answers = list(warm_ids), 0, 0
        latencies: list[list[float]] = [[] for _ in TARGETS]
        statuses: list[dict[int, int]] = [{} for _ in TARGETS]
        busy = 0.0
        for round_number in range(args.rounds):
            deliveries, ids = _traffic(
                integration_id, prefix=f"bench_r{round_number}", events=args.events, duplicates=args.duplicates, rng=rng
            )
            sent_ids += ids
            duplicate_sends += len(deliveries) - len(ids)
            for client_latencies, client_statuses, duplicates, seconds in _run(
                port, deliveries, args.clients, round_number
            ):
                for target in range(len(TARGETS)):
                    latencies[target] += client_latencies[target]
                    for status, count in client_statuses[target].items():
                        statuses[target][status] = statuses[target].get(status, 0) + count
                duplicate_answers += duplicates
                busy += seconds
            print(
                f"round {round_number + 1}/{args.rounds}: {len(deliveries)} deliveries x {len(TARGETS)} targets",
                flush=True,
            )
        _stop(server)
        server = None

        if worker is None:
            worker = _start_worker(env, args.celery_concurrency)
        backlog, processing_seconds = _drain_and_wait(integration_id, len(sent_ids), timeout=1800)
        problems = _checks(integration_id, sent_ids, duplicate_sends, duplicate_answers)
    finally:
        _stop(server)
        _stop(worker)
        _stop(redis)

    requests = len(latencies[0])
    print()
    print(
        f"Signed Stripe webhooks on gunicorn ({args.workers} sync workers), PostgreSQL + Redis on 127.0.0.1, "
        f"{os.cpu_count()} CPUs; {args.clients} clients in flight, each delivery sent to all three targets in turn."
    )
    print(
        f"{args.rounds} rounds x {args.events} events + {args.duplicates:.0%} duplicates = {requests} deliveries "
        f"per target ({duplicate_sends} duplicates); worker during load: {'yes' if args.worker_during_load else 'no'}"
    )
    rates = {}
    for target, name in enumerate(TARGETS):
        values = latencies[target]
        rates[name] = args.clients * len(values) / sum(values)
        print(
            f"  {name:<9} {rates[name]:8.1f} req/s   p50 {_percentile(values, 0.5) * 1000:6.2f} ms   "
            f"p99 {_percentile(values, 0.99) * 1000:6.2f} ms   mean {statistics.fmean(values) * 1000:6.2f} ms   "
            f"statuses {dict(sorted(statuses[target].items()))}"
        )
    receiver_p99 = _percentile(latencies[0], 0.99) * 1000
    ratio = rates["receiver"] / rates["minimal"]
    print(f"  receiver / minimal durable  {ratio:6.3f}   target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'}")
    print(f"  receiver / bare Django      {rates['receiver'] / rates['bare']:6.3f}")
    print(f"  minimal / bare Django       {rates['minimal'] / rates['bare']:6.3f}")
    verdict = "met" if receiver_p99 < 50 else "NOT met"
    print(f"  receiver p99                {receiver_p99:6.2f} ms  target < 50 ms: {verdict}")
    print(
        f"Processing: {backlog} of {len(sent_ids)} events were still waiting after the load; a worker "
        f"({args.celery_concurrency} processes) drained them in {processing_seconds:.1f} s "
        f"({backlog / processing_seconds:.0f} events/s)"
    )
    if problems:
        print("CHECKS FAILED:")
        for problem in problems:
            print(f"  - {problem}")
        raise SystemExit(1)
    print(
        f"Checks passed: each of the {len(sent_ids)} events stored exactly once and processed exactly once "
        f"(one claim, one payment); the minimal view stored each once; {duplicate_sends} duplicates answered and "
        "counted as duplicates."
    )


if __name__ == "__main__":
    main()

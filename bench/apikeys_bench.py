"""Benchmark: what API-key authentication costs on a small list endpoint.

One gunicorn server on 127.0.0.1 (PostgreSQL + Redis) serves the same view, `GET /api/api-keys` (a page of ten
keys), twice: at its normal URL with an API key (authentication, scope check, rate limit and usage counting
all on), and at a bench-only URL with authentication and permissions switched off. Each client alternates the
two requests, so load from anything else on the machine hits both alike; each side's throughput is the
client count over its mean latency (Little's law for closed loops). Prints both and the ratio (target >= 0.9),
then flushes usage and checks every keyed request was counted.

    .venv/bin/python bench/apikeys_bench.py [--seconds 20] [--workers 2] [--clients 4]

Needs PostgreSQL and Redis; uses the `jewelia_bench` database (created if missing) and Redis db 1 unless
BENCH_DATABASE_URL / BENCH_REDIS_URL say otherwise. Run by hand, not in the test suite.
"""

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jewelia_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
KEYED_PATH = "/api/api-keys"
OPEN_PATH = "/api/bench-open/api-keys"
WARM_UP = 50

SETTINGS = """
from jewelia.settings.base import *  # noqa: F403

SECRET_KEY = "bench-only-secret-key-0123456789-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "apikeys_bench_urls"
"""

URLS = """
from django.urls import path
from rest_framework.permissions import AllowAny

from apikeys.views import ApiKeyViewSet
from jewelia.urls import urlpatterns as project_urlpatterns

# The same view class and action, with authentication and permissions switched off.
open_list = ApiKeyViewSet.as_view({"get": "list"}, authentication_classes=[], permission_classes=[AllowAny])
urlpatterns = [path("api/bench-open/api-keys", open_list), *project_urlpatterns]
"""

SETUP = """
import django
django.setup()
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from jewelia.core.actors import Actor

ApiKey.objects.all().delete()
for number in range(9):
    api_key_create(actor=Actor.system("bench"), name=f"Listed key {number}", scopes=["orders:read"])
_, raw = api_key_create(
    actor=Actor.system("bench"), name="Bench key", scopes=["api_keys:read"], rate_limit_per_minute=10_000_000
)
print(raw)
"""

FLUSH = """
import django
django.setup()
from apikeys.models import ApiKeyUsage
from apikeys.services import api_key_usage_flush

api_key_usage_flush()
row = ApiKeyUsage.objects.filter(api_key__name="Bench key").order_by("-date").first()
print(row.request_count if row else 0, row.error_count if row else 0)
"""


def _ensure_database() -> None:
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _django(env: dict, *args: str, script: str | None = None) -> str:
    command = [sys.executable, "-c", script] if script else [sys.executable, "manage.py", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request_bytes(path: str, key: str | None) -> bytes:
    headers = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", "Accept: application/json"]
    if key:
        headers.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


def _fetch(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return int(b"".join(chunks)[9:12])


def _client(port: int, requests: list[bytes], deadline: float, results) -> None:
    """Send the requests in turn until the deadline; per request: how many succeeded and the time they took."""
    done = [0] * len(requests)
    failed = [0] * len(requests)
    busy = [0.0] * len(requests)
    while time.monotonic() < deadline:
        for index, request in enumerate(requests):
            start = time.perf_counter()
            status = _fetch(port, request)
            busy[index] += time.perf_counter() - start
            if status == 200:
                done[index] += 1
            else:
                failed[index] += 1
    results.put((done, failed, busy))


def _run(port: int, requests: list[bytes], seconds: float, clients: int) -> list[tuple[int, int, float]]:
    """(succeeded, failed, throughput) per request: `clients` closed loops, each alternating the requests."""
    results = multiprocessing.Queue()
    deadline = time.monotonic() + seconds
    procs = [multiprocessing.Process(target=_client, args=(port, requests, deadline, results)) for _ in range(clients)]
    for proc in procs:
        proc.start()
    totals = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    summary = []
    for index in range(len(requests)):
        done = sum(result[0][index] for result in totals)
        failed = sum(result[1][index] for result in totals)
        busy = sum(result[2][index] for result in totals)
        # Little's law: with `clients` requests always in flight, throughput = clients / mean latency.
        summary.append((done, failed, clients * (done + failed) / busy))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients send requests")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes (requests in flight)")
    args = parser.parse_args()

    _ensure_database()
    with tempfile.TemporaryDirectory() as modules:
        Path(modules, "apikeys_bench_settings.py").write_text(textwrap.dedent(SETTINGS))
        Path(modules, "apikeys_bench_urls.py").write_text(textwrap.dedent(URLS))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apikeys_bench_settings",
            "PYTHONPATH": os.pathsep.join([modules, str(ROOT)]),
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "LOG_LEVEL": "WARNING",
        }
        _django(env, "migrate", "--noinput")
        _django(env, script=f"import redis; redis.Redis.from_url({REDIS_URL!r}).flushdb()")
        key = _django(env, script=SETUP).strip()

        port = _free_port()
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "jewelia.wsgi:application",
                f"--bind=127.0.0.1:{port}",
                f"--workers={args.workers}",
                "--worker-class=sync",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            _wait_until_up(port)
            requests = {
                "with API key": _request_bytes(KEYED_PATH, key),
                "no authentication": _request_bytes(OPEN_PATH, None),
            }
            for request in requests.values():  # warm up: imports, connections, the cached key row
                for _ in range(WARM_UP):
                    assert _fetch(port, request) == 200, "warm-up request failed"
            results = dict(zip(requests, _run(port, list(requests.values()), args.seconds, args.clients), strict=True))
        finally:
            server.terminate()
            server.wait(30)
        counted, errors = map(int, _django(env, script=FLUSH).split())

    print(f"GET /api/api-keys (10 keys) on gunicorn ({args.workers} sync workers), PostgreSQL + Redis on 127.0.0.1;")
    print(f"{args.clients} clients for {args.seconds:g}s, each alternating the two requests so both see the same load")
    for name, (done, failed, rate) in results.items():
        print(f"  {name:<18} {rate:8.1f} req/s  ({done} ok, {failed} failed)")
    ratio = results["with API key"][2] / results["no authentication"][2]
    print(f"  ratio (key / none) {ratio:8.3f}   target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}")
    sent = sum(results["with API key"][:2]) + WARM_UP
    print(f"  usage counted for the key after a flush: {counted} requests ({sent} sent), {errors} errors")


def _wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _fetch(port, _request_bytes("/healthz", None))
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


if __name__ == "__main__":
    main()

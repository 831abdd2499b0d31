"""Project-wide test fixtures: network confinement, API clients, and a real Celery worker process."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent
_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}
_real_connect = socket.socket.connect


def _guarded_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL_HOSTS:
        raise RuntimeError(f"Tests may not reach the network (tried {address[0]!r}); use a local fake server.")
    return _real_connect(sock, address)


socket.socket.connect = _guarded_connect


def services_configured() -> bool:
    return settings.USING_POSTGRES and bool(settings.REDIS_URL)


def pytest_collection_modifyitems(config, items):
    if services_configured():
        return
    required = os.environ.get("JEWELIA_REQUIRE_SERVICES") == "1"
    for item in items:
        if "services" in item.keywords:
            if required:
                item.add_marker(pytest.mark.xfail(reason="services required but not configured", strict=True))
            else:
                item.add_marker(pytest.mark.skip(reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"))


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser(username="staff", email="staff@example.com", password="pw")


@pytest.fixture
def staff_client(api_client, staff_user):
    api_client.force_authenticate(user=staff_user)
    return api_client


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real `celery worker` subprocess on the Redis broker, using the test database.

    Yields a handle with `stop()`/`kill()`/`start()` so tests can kill a worker mid-task and restart it.
    """
    if not services_configured():
        pytest.skip("needs PostgreSQL and Redis")
    from jewelia.celery import app

    handle = WorkerHandle(database_url=_test_database_url())
    handle.start()
    app.conf.task_always_eager = False
    try:
        yield handle
    finally:
        app.conf.task_always_eager = True
        handle.stop()


class WorkerHandle:
    def __init__(self, *, database_url: str):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "jewelia.settings.test",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
        }
        self.proc: subprocess.Popen | None = None
        self.log = ROOT / "var" / f"worker-{uuid.uuid4().hex[:8]}.log"

    def start(self, timeout: float = 30.0) -> None:
        self.log.parent.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "jewelia",
                "worker",
                "-Q",
                "default,integrations,webhooks",
                "--pool=solo",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from jewelia.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log.read_text()[-3000:]}")
            if app.control.ping(timeout=0.5):
                return
        raise RuntimeError(f"celery worker did not answer a ping:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

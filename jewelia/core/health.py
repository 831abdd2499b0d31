"""Liveness and readiness probes (plain Django views: no auth, no sessions, cheap)."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    """The process is alive and serving requests; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    cache.set("readyz:probe", "1", timeout=10)
    if cache.get("readyz:probe") != "1":
        raise RuntimeError("cache did not return the value just written")


def _check_broker() -> None:
    from jewelia.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def readiness_checks() -> dict:
    checks = {"database": _check_database}
    if settings.REDIS_URL:
        checks["cache"] = _check_cache
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = _check_broker
    return checks


@never_cache
@require_GET
def readyz(request):
    """Ready when the database (and, when configured, the cache and the broker) answer; 503 names what failed."""
    results, failed = {}, []
    for name, check in readiness_checks().items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
            results[name] = "unavailable"
            failed.append(name)
    if failed:
        return JsonResponse({"status": "unavailable", "checks": results, "failed": failed}, status=503)
    return JsonResponse({"status": "ok", "checks": results})

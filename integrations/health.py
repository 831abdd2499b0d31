"""Integration health: one status with a reason a person can act on, from the run history (and optionally a
live call to the provider). Stored on the integration; a change of state alerts once (`integrations.alerts`).

Rules, first match wins:

- `paused`: the integration is paused or its schedule is switched off;
- `disconnected`: the provider rejected the credentials (a run or the live check got an auth error);
- `failing`: 3+ consecutive failed runs, or no success for more than 3 intervals, or the live check failed;
- `degraded`: the last run failed, or records failed in the last run, or no success for more than 2
  intervals, or at least half of the last 24 h's runs failed;
- `healthy` otherwise. A draft (never activated) integration stays `unknown`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from integrations import extensions
from integrations.models import HealthStatus, Integration, IntegrationStatus, SyncRun, SyncRunStatus

logger = logging.getLogger("jewelia.integrations.health")

FAILING_AFTER_FAILURES = 3


@dataclass
class HealthReport:
    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def _age_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def _live_check(integration: Integration) -> dict[str, Any]:
    from integrations.errors import AuthError, ProviderError
    from integrations.sync.connection import connection_build

    try:
        provider = integration.provider_impl
        provider.check_connection(connection_build(integration, provider=provider))
    except AuthError as exc:
        return {"ok": False, "kind": "auth", "error": exc.message}
    except ProviderError as exc:
        return {"ok": False, "kind": "transient" if exc.retryable else "permanent", "error": exc.message}
    except NotImplementedError:
        return {"ok": None, "kind": "unsupported", "error": "This provider has no live check."}
    except Exception as exc:  # disallowed URL, undecryptable credentials: report, never crash the health task
        return {"ok": False, "kind": "permanent", "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


def integration_health_compute(*, integration: Integration, live: bool = False, now=None) -> HealthReport:
    """Assess one integration (a few aggregate queries; `live` adds one provider call)."""
    now = now or timezone.now()
    day_ago = now - timedelta(hours=24)
    interval = timedelta(minutes=integration.sync_interval_minutes)
    stats = SyncRun.objects.filter(integration=integration, created_at__gte=day_ago).aggregate(
        runs=Count("id", filter=~Q(status__in=[SyncRunStatus.QUEUED, SyncRunStatus.RUNNING])),
        failed_runs=Count("id", filter=Q(status=SyncRunStatus.FAILED)),
        avg_duration=Avg("duration_seconds"),
        records=Sum("fetched"),
    )
    last_run = (
        SyncRun.objects.filter(integration=integration, finished_at__isnull=False)
        .order_by("-finished_at", "-id")
        .only("status", "failed", "error_summary", "error_kind")
        .first()
    )
    reference = integration.last_success_at or integration.created_at or now
    age = (now - reference).total_seconds()
    details: dict[str, Any] = {
        "last_success_at": integration.last_success_at.isoformat() if integration.last_success_at else None,
        "last_success_age_seconds": int(age) if integration.last_success_at else None,
        "interval_minutes": integration.sync_interval_minutes,
        "consecutive_failures": integration.consecutive_failures,
        "runs_24h": stats["runs"],
        "failed_runs_24h": stats["failed_runs"],
        "error_rate_24h": round(stats["failed_runs"] / stats["runs"], 3) if stats["runs"] else 0.0,
        "avg_duration_seconds": round(stats["avg_duration"], 3) if stats["avg_duration"] is not None else None,
        "records_24h": stats["records"] or 0,
        "open_record_failures": integration.record_failures.filter(resolved_at__isnull=True).count(),
    }
    if live:
        details["live"] = _live_check(integration)
    problems, notes = [], []
    for source in extensions.health_sources:
        name, figures = source(integration=integration, now=now)
        if figures:
            details[name] = figures
            if figures.get("problem"):
                problems.append(figures["problem"])
            if figures.get("note"):
                notes.append(figures["note"])

    def report(status: str, reason: str) -> HealthReport:
        return HealthReport(status=status, reason=" ".join([reason, *notes])[:500], details=details)

    if integration.status == IntegrationStatus.DRAFT:
        return report(HealthStatus.UNKNOWN, "Not activated yet.")
    if integration.status == IntegrationStatus.PAUSED or not integration.sync_enabled:
        return report(HealthStatus.PAUSED, "Paused." if integration.status == "paused" else "Scheduled sync is off.")
    live_result = details.get("live") or {}
    if integration.status == IntegrationStatus.DISCONNECTED or live_result.get("kind") == "auth":
        return report(HealthStatus.DISCONNECTED, "The provider rejected the credentials; reconnect the integration.")
    never = "never succeeded" if not integration.last_success_at else f"last success {_age_text(age)} ago"
    if live_result.get("ok") is False:
        return report(HealthStatus.FAILING, f"Live check failed: {live_result.get('error', '')}"[:500])
    if integration.consecutive_failures >= FAILING_AFTER_FAILURES:
        last_error = f": {last_run.error_summary}" if last_run and last_run.error_summary else ""
        return report(
            HealthStatus.FAILING, f"{integration.consecutive_failures} runs failed in a row{last_error}"[:500]
        )
    if age > 3 * interval.total_seconds():
        return report(HealthStatus.FAILING, f"No successful sync for over 3 intervals ({never}).")
    if integration.status == IntegrationStatus.ERROR or (last_run and last_run.status == SyncRunStatus.FAILED):
        summary = last_run.error_summary if last_run else ""
        return report(HealthStatus.DEGRADED, f"The last run failed: {summary}"[:500])
    if last_run and last_run.status == SyncRunStatus.PARTIAL:
        return report(HealthStatus.DEGRADED, f"{last_run.failed} records failed in the last run.")
    if age > 2 * interval.total_seconds():
        return report(HealthStatus.DEGRADED, f"Sync is late ({never}).")
    if stats["runs"] >= 2 and stats["failed_runs"] * 2 >= stats["runs"]:
        return report(HealthStatus.DEGRADED, f"{stats['failed_runs']} of {stats['runs']} runs failed in 24 h.")
    if problems:
        return report(HealthStatus.DEGRADED, " ".join(problems)[:500])
    if not integration.last_success_at:
        return report(HealthStatus.HEALTHY, "Waiting for the first sync.")
    return report(HealthStatus.HEALTHY, f"OK, {never}.")


# Transitions that are not news: a first assessment that finds nothing wrong.
_QUIET = {(HealthStatus.UNKNOWN, HealthStatus.HEALTHY), (HealthStatus.UNKNOWN, HealthStatus.PAUSED)}


def integration_health_refresh(*, integration: Integration, live: bool = False) -> HealthReport:
    """Compute, store, and on a change of state alert once.

    The integration row is locked while comparing and storing, so two workers finishing runs at the same
    moment cannot both see the old state and both alert.
    """
    report = integration_health_compute(integration=integration, live=live)
    if report.details.get("live", {}).get("kind") == "auth" and integration.status != IntegrationStatus.DISCONNECTED:
        Integration.objects.filter(pk=integration.pk).update(status=IntegrationStatus.DISCONNECTED)
        integration.status = IntegrationStatus.DISCONNECTED
    with transaction.atomic():
        previous = (
            Integration.objects.select_for_update().values_list("health_status", flat=True).get(pk=integration.pk)
        )
        now = timezone.now()
        Integration.objects.filter(pk=integration.pk).update(
            health_status=report.status,
            health_reason=report.reason[:500],
            health_details=report.details,
            health_checked_at=now,
        )
        integration.health_status, integration.health_reason = report.status, report.reason[:500]
        integration.health_details, integration.health_checked_at = report.details, now
        if previous != report.status and (previous, report.status) not in _QUIET:
            from integrations.alerts import health_alert_send

            transaction.on_commit(lambda: health_alert_send(integration=integration, previous=previous, report=report))
    return report

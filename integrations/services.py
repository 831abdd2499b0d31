"""Writes on integrations: create/update/delete, pause/resume, starting syncs, retries, field mappings, keys.

Views, admin actions, commands and tasks all call these. Scheduling (dispatcher, sweeper, bulk pump) is in
`integrations.sync.scheduling`; the run itself in `integrations.sync.engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from integrations import crypto, extensions
from integrations.models import (
    ACTIVE_RUN_STATUSES,
    FieldMapping,
    Integration,
    IntegrationStatus,
    RecordFailure,
    SyncMode,
    SyncRun,
    SyncRunStatus,
    SyncTrigger,
)
from integrations.providers.base import AuthKind
from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed

SETTABLE_STATUSES = {IntegrationStatus.DRAFT, IntegrationStatus.ACTIVE, IntegrationStatus.PAUSED}
_FIELDS = {"name", "config", "sync_enabled", "sync_interval_minutes", "sync_resources", "status"}
M = TypeVar("M", bound=models.Model)


def _validation_failed(exc: ValidationError) -> ValidationFailed:
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    return ValidationFailed(details={"fields": fields})


def _check(integration: Integration) -> None:
    """Model validation (provider known, config per its schema, resources known, interval in bounds) plus
    the base URL host check (DESIGN.md rule 10), all in `Integration.clean()`."""
    try:
        integration.full_clean(exclude=["credentials_encrypted"])
    except ValidationError as exc:
        raise _validation_failed(exc) from None
    if integration.status not in SETTABLE_STATUSES and integration._state.adding:
        raise ValidationFailed(details={"fields": {"status": ["Choose draft, active or paused."]}})


def integration_create(
    *, name: str, provider: str, actor: Actor, config: dict | None = None, credentials: dict | None = None, **fields
) -> Integration:
    """Create an integration. Without an explicit status it starts `active` when it can connect (credentials
    given, or a provider that needs none) and `draft` otherwise."""
    integration = Integration(name=name, provider=provider, config=config or {}, **fields)
    try:
        provider_impl = integration.provider_impl
    except (KeyError, LookupError):
        raise ValidationFailed(details={"fields": {"provider": [f"Unknown provider '{provider}'."]}}) from None
    integration.category = str(provider_impl.category)
    if "status" not in fields:
        connectable = bool(credentials) or provider_impl.auth_kind == AuthKind.NONE
        integration.status = IntegrationStatus.ACTIVE if connectable else IntegrationStatus.DRAFT
    if "sync_interval_minutes" not in fields:
        integration.sync_interval_minutes = settings.INTEGRATIONS_DEFAULT_SYNC_INTERVAL_MINUTES
    _check(integration)
    integration.set_credentials(credentials or {})
    integration.created_by_type, integration.created_by_id = actor.kind, actor.id
    integration.created_by_label = actor.label[:200]
    if integration.status == IntegrationStatus.ACTIVE:
        integration.next_sync_at = timezone.now()
    integration.save()
    return integration


def integration_update(*, integration: Integration, data: dict[str, Any]) -> Integration:
    """Partial update. New credentials replace the stored ones (except keys other apps manage, such as the
    webhook secret) and reconnect a disconnected integration; the provider cannot change."""
    if "provider" in data and data["provider"] != integration.provider:
        raise ValidationFailed(details={"fields": {"provider": ["The provider of an integration cannot change."]}})
    status = data.get("status")
    if status is not None and status not in SETTABLE_STATUSES and status != integration.status:
        raise ValidationFailed(details={"fields": {"status": ["Choose draft, active or paused."]}})
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        was_active = integration.status == IntegrationStatus.ACTIVE
        for name in _FIELDS & set(data):
            setattr(integration, name, data[name])
        _check(integration)
        if "credentials" in data:
            stored = integration.get_credentials()
            kept = {key: stored[key] for key in extensions.kept_credential_keys if key in stored}
            integration.set_credentials({**kept, **(data["credentials"] or {})})
            if integration.status in (IntegrationStatus.DISCONNECTED, IntegrationStatus.ERROR) and status is None:
                integration.status = IntegrationStatus.ACTIVE
        if integration.status == IntegrationStatus.ACTIVE and (not was_active or integration.next_sync_at is None):
            integration.next_sync_at = timezone.now()
            integration.consecutive_failures = 0
        integration.save()
    return integration


def integration_delete(*, integration: Integration) -> None:
    if integration.runs.filter(status=SyncRunStatus.RUNNING).exists():
        raise Conflict("A sync is running; cancel it or wait for it to finish before deleting.", code="sync_running")
    integration.delete()


def integration_pause(*, integration: Integration) -> Integration:
    return integration_update(integration=integration, data={"status": IntegrationStatus.PAUSED})


def integration_resume(*, integration: Integration) -> Integration:
    """Make a paused integration active again, and let the apps built on it catch up (held webhook events)."""
    with transaction.atomic():
        integration = integration_update(integration=integration, data={"status": IntegrationStatus.ACTIVE})
        for hook in extensions.on_resumed:
            hook(integration=integration)
    return integration


# --- runs -------------------------------------------------------------------------------------------------------------
def run_enqueue(run: SyncRun) -> None:
    """Mark the run enqueued and send the task after commit (the row exists first: DESIGN.md rule 1)."""
    from integrations.tasks import sync_run_task

    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(enqueued_at=now)
    run.enqueued_at = now
    transaction.on_commit(lambda: sync_run_task.delay(run.pk))


def run_create_locked(
    *,
    integration: Integration,
    trigger: str,
    resources: list[str] | None = None,
    full: bool = False,
    actor: Actor | None = None,
    mode: str = SyncMode.SYNC,
    failure_ids: list[int] | None = None,
    retry_of: SyncRun | None = None,
) -> tuple[SyncRun, bool]:
    """Create a queued run unless one is queued or running; the caller holds the integration's row lock.

    The partial unique index backs this up: if two callers still race, the loser gets the winner's run.
    """
    active = SyncRun.objects.filter(integration=integration, status__in=ACTIVE_RUN_STATUSES).first()
    if active is not None:
        return active, False
    actor_fields = (
        {"requested_by_type": actor.kind, "requested_by_id": actor.id, "requested_by_label": actor.label[:200]}
        if actor
        else {}
    )
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                integration=integration,
                trigger=trigger,
                resources=list(resources or []),
                full=full,
                mode=mode,
                failure_ids=list(failure_ids or []),
                attempt=(retry_of.attempt + 1) if retry_of else 1,
                retry_of=retry_of,
                **actor_fields,
            )
    except IntegrityError:
        return SyncRun.objects.get(integration=integration, status__in=ACTIVE_RUN_STATUSES), False
    return run, True


def sync_start(
    *,
    integration: Integration,
    trigger: str,
    actor: Actor | None = None,
    resources: list[str] | None = None,
    full: bool = False,
    enqueue: bool = True,
) -> tuple[SyncRun, bool]:
    """Start a sync (returns (run, created)); when one is already queued or running, returns that one."""
    provider = integration.provider_impl
    unknown = sorted(set(resources or []) - {r.name for r in provider.resources})
    if unknown:
        raise ValidationFailed(details={"fields": {"resources": [f"Unknown resources: {', '.join(unknown)}."]}})
    if integration.status in (IntegrationStatus.DISCONNECTED, IntegrationStatus.DRAFT):
        raise Conflict(
            f"The integration is {integration.status}; "
            + ("update its credentials first." if integration.status == "disconnected" else "activate it first."),
            code=f"integration_{integration.status}",
        )
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        run, created = run_create_locked(
            integration=locked, trigger=trigger, resources=resources, full=full, actor=actor
        )
        if created and enqueue:
            run_enqueue(run)
    return run, created


def sync_run_now(
    *,
    integration: Integration,
    trigger: str,
    actor: Actor | None = None,
    resources: list[str] | None = None,
    full: bool = False,
) -> tuple[SyncRun, bool]:
    """Start a sync and run it to its end in this process, without the workers (commands, `seed_demo --sync`).
    Returns (run, created) like `sync_start`: when one is already queued or running, that one, not executed."""
    from integrations.sync.engine import sync_run_execute

    run, created = sync_start(
        integration=integration, trigger=trigger, actor=actor, resources=resources, full=full, enqueue=False
    )
    if created:
        run = sync_run_execute(run_id=run.pk) or run
    return run, created


def sync_start_all(*, actor: Actor | None = None, full: bool = False) -> list[SyncRun]:
    """Queue a bulk run for every active integration; the bulk pump starts at most
    INTEGRATIONS_BULK_SYNC_CONCURRENCY of them at a time. Integrations already syncing return their run."""
    from integrations.tasks import bulk_pump

    runs = []
    with transaction.atomic():
        for integration in Integration.objects.select_for_update().filter(status=IntegrationStatus.ACTIVE):
            run, _ = run_create_locked(integration=integration, trigger=SyncTrigger.BULK, full=full, actor=actor)
            runs.append(run)
        transaction.on_commit(bulk_pump.delay)
    return runs


def sync_run_cancel(*, run: SyncRun) -> SyncRun:
    """Cancel a queued or running run. A running one stops at its next page boundary; its cursor is kept, so
    the next run resumes where it stopped."""
    now = timezone.now()
    if not SyncRun.objects.filter(pk=run.pk, status__in=ACTIVE_RUN_STATUSES).update(
        status=SyncRunStatus.CANCELLED, finished_at=now
    ):
        raise Conflict("Only a queued or running run can be cancelled.", code="run_not_active")
    run.refresh_from_db()
    return run


def record_failures_retry(
    *, integration: Integration, trigger: str, actor: Actor | None = None, failure_ids: list[int] | None = None
) -> tuple[SyncRun, bool]:
    """Retry open record failures from their stored payloads in a run of their own (so the one-writer rule
    holds), without a resync. Returns (run, created) like `sync_start`."""
    open_failures = RecordFailure.objects.filter(integration=integration, resolved_at__isnull=True)
    if failure_ids:
        open_failures = open_failures.filter(pk__in=failure_ids)
    if not open_failures.exists():
        raise Conflict("There are no open record failures to retry.", code="nothing_to_retry")
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        run, created = run_create_locked(
            integration=locked,
            trigger=trigger,
            actor=actor,
            mode=SyncMode.RETRY_FAILURES,
            failure_ids=list(failure_ids or []),
        )
        if created:
            run_enqueue(run)
    return run, created


# --- field mappings ---------------------------------------------------------------------------------------------------
def rows_validate(
    items: list[dict[str, Any]],
    *,
    field: str,
    build: Callable[[dict[str, Any]], M],
    key: Callable[[M], Hashable],
    repeated: Callable[[M], dict[str, list[str]]],
) -> list[M]:
    """A whole set of rows (field mappings, push rules) built with `build(item)` and checked with `clean()`,
    a `key` appearing twice refused with `repeated(row)`. Raises one `ValidationFailed` reporting every bad item
    by its index under `field`, so a replace changes nothing unless all are valid."""
    rows: list[M] = []
    errors: dict[str, Any] = {}
    seen: set[Hashable] = set()
    for index, item in enumerate(items):
        row = build(item)
        try:
            row.clean()
        except ValidationError as exc:
            errors[str(index)] = exc.message_dict
            continue
        if key(row) in seen:
            errors[str(index)] = repeated(row)
        seen.add(key(row))
        rows.append(row)
    if errors:
        raise ValidationFailed(details={"fields": {field: errors}})
    return rows


def field_mappings_replace(*, integration: Integration, mappings: list[dict[str, Any]]) -> list[FieldMapping]:
    """Replace the integration's field mappings with `mappings`, all validated first (nothing changes when
    any is invalid; errors are reported per item)."""
    rows = rows_validate(
        mappings,
        field="mappings",
        build=lambda item: FieldMapping(integration=integration, **item),
        key=lambda row: (row.resource, row.local_field),
        repeated=lambda row: {"local_field": [f"'{row.local_field}' is mapped twice for {row.resource}."]},
    )
    with transaction.atomic():
        FieldMapping.objects.filter(integration=integration).delete()
        return FieldMapping.objects.bulk_create(rows)


# --- keys -------------------------------------------------------------------------------------------------------------
def credentials_reencrypt(*, batch_size: int = 200) -> int:
    """Re-encrypt every integration's credentials with the newest key (after FIELD_ENCRYPTION_KEYS gained a new
    first key). Rows are locked in batches; returns how many rows were rewritten."""
    count = 0
    ids = list(Integration.objects.exclude(credentials_encrypted="").values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            rows = list(Integration.objects.select_for_update().filter(pk__in=ids[start : start + batch_size]))
            for row in rows:
                row.credentials_encrypted = crypto.rotate_token(row.credentials_encrypted)
            Integration.objects.bulk_update(rows, ["credentials_encrypted"])
            count += len(rows)
    return count


def history_cleanup(*, older_than_days: int) -> dict[str, int]:
    """Delete finished runs and resolved record failures older than the retention period. Open failures stay
    whatever their age: they still need someone's attention."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    _, failures = RecordFailure.objects.filter(resolved_at__isnull=False, resolved_at__lt=cutoff).delete()
    _, runs = (
        SyncRun.objects.filter(created_at__lt=cutoff)
        .exclude(status__in=ACTIVE_RUN_STATUSES)
        .exclude(next_attempt_at__isnull=False)
        .delete()
    )
    return {
        "runs": runs.get("integrations.SyncRun", 0),
        "record_failures": failures.get("integrations.RecordFailure", 0),
    }

"""Executing one sync run: resource by resource in dependency order, page by page, resumable.

For each page: fetch (outside any transaction: no lock is held while a provider answers) -> transform +
configured field mappings -> in ONE transaction: bulk upsert, identity map, record failures, the resource's
cursor and the run's counters and heartbeat. A crash therefore loses at most the page in flight, and the next
run resumes from the saved cursor without duplicating anything (rows are keyed on the identity map).

Outcomes: every page written and no record failed -> `succeeded`; some records failed -> `partial`; a
provider error stops the run -> `failed` with the error kind. Transient failures get the next attempt time in
the database (`next_attempt_at`, exponential backoff with jitter, at least the provider's Retry-After); the
retry sweeper starts it. An auth failure (after the HTTP layer's one refresh) disconnects the integration.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from integrations.errors import AuthError, BadRecordError, ProviderError, TransientError
from integrations.models import (
    FieldMapping,
    Integration,
    IntegrationStatus,
    RecordFailure,
    ResourceCursor,
    SyncMode,
    SyncRun,
    SyncRunStatus,
)
from integrations.providers.base import Connection, CursorStyle, Direction, Provider, Resource, ordered_resources
from integrations.sync.connection import connection_build
from integrations.sync.mapping import apply_field_mappings, compile_mappings
from integrations.sync.scheduling import backoff_delay
from integrations.sync.writers import Entry, WriteContext, WriteResult, records_write, validate_record
from integrations.sync.writers.base import max_time
from jewelia.core.exceptions import JeweliaError

logger = logging.getLogger("jewelia.integrations.sync")

EXCERPT_CHARS = 2000


class RunCancelled(Exception):
    """The run's row was set to cancelled while it was working; the page in flight is rolled back."""


@dataclass
class RunContext:
    run: SyncRun
    integration: Integration
    provider: Provider
    connection: Connection
    writer: WriteContext
    has_open_failures: bool


# --- claiming and finishing -------------------------------------------------------------------------------------------
def _claim(run_id: int) -> SyncRun | None:
    """queued -> running, atomically; None when another worker has it or it is no longer queued."""
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncRunStatus.QUEUED).update(
        status=SyncRunStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    return SyncRun.objects.select_related("integration").get(pk=run_id)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1` of a run (`backoff_delay` on INTEGRATIONS_RETRY_*)."""
    return backoff_delay(
        attempt,
        base=settings.INTEGRATIONS_RETRY_BASE_SECONDS,
        cap=settings.INTEGRATIONS_RETRY_MAX_SECONDS,
        retry_after=retry_after,
    )


def _cursor_snapshot(integration: Integration) -> dict[str, Any]:
    return {cursor.resource: cursor.snapshot() for cursor in ResourceCursor.objects.filter(integration=integration)}


def _finish(ctx: RunContext, *, status: str, error_kind: str = "", error: str = "", retry_after: float | None = None):
    run, integration = ctx.run, ctx.integration
    now = timezone.now()
    run.status = status
    run.finished_at = now
    run.duration_seconds = (now - run.started_at).total_seconds() if run.started_at else None
    run.error_kind = error_kind
    run.error_summary = error[:2000]
    run.cursor_after = _cursor_snapshot(integration)
    retryable = error_kind in {"transient", "internal"} and run.attempt < settings.INTEGRATIONS_SYNC_MAX_ATTEMPTS
    run.next_attempt_at = now + timedelta(seconds=retry_delay(run.attempt, retry_after)) if retryable else None
    with transaction.atomic():
        run.save()
        fields: dict[str, Any] = {"last_sync_at": now}
        if status in (SyncRunStatus.SUCCEEDED, SyncRunStatus.PARTIAL):
            fields.update(last_success_at=now, consecutive_failures=0)
            if integration.status == IntegrationStatus.ERROR:
                fields["status"] = IntegrationStatus.ACTIVE
        elif status == SyncRunStatus.FAILED:
            fields["consecutive_failures"] = integration.consecutive_failures + 1
            if error_kind == "auth":
                fields["status"] = IntegrationStatus.DISCONNECTED
            elif error_kind == "permanent":
                fields["status"] = IntegrationStatus.ERROR
        Integration.objects.filter(pk=integration.pk).update(**fields, updated_at=now)
        for name, value in fields.items():
            setattr(integration, name, value)
    logger.info(
        "integration %s run %s %s: fetched=%s created=%s updated=%s unchanged=%s failed=%s%s",
        integration.pk,
        run.pk,
        status,
        run.fetched,
        run.created,
        run.updated,
        run.unchanged,
        run.failed,
        f" error={error_kind}: {error[:200]}" if error_kind else "",
    )
    from integrations.health import integration_health_refresh

    integration_health_refresh(integration=integration)
    if run.trigger == "bulk":
        from integrations.tasks import bulk_pump

        transaction.on_commit(bulk_pump.delay)


# --- pages ------------------------------------------------------------------------------------------------------------
def _entries(ctx: RunContext, resource: Resource, raws: list[Any], mappings) -> tuple[list[Entry], list[tuple]]:
    """Transform raw records; a record the provider (or a mapping) cannot understand fails alone."""
    entries, failures = [], []
    for raw in raws:
        try:
            external_id = str(ctx.provider.external_id(resource.name, raw))
        except Exception:
            external_id = ""
        try:
            records = ctx.provider.transform(resource.name, raw, ctx.connection)
            apply_field_mappings(records, raw, mappings, resource.kind)
            for record in records:
                validate_record(record)
        except BadRecordError as exc:
            failures.append((external_id or exc.external_id, raw, exc.message))
            continue
        except Exception as exc:  # a malformed payload the transform tripped on: that record only
            failures.append((external_id, raw, f"{type(exc).__name__}: {exc}"))
            continue
        entries.append(Entry(external_id=external_id, raw=raw, records=records))
    return entries, failures


def entries_write(ctx: RunContext, resource: Resource, entries: list[Entry]) -> WriteResult:
    """Write a batch; when the database refuses it, write it record by record to find the culprit(s)."""
    try:
        with transaction.atomic():
            return records_write(ctx.writer, entries, counted_kind=resource.kind)
    except (IntegrityError, DataError):
        logger.warning("integration %s: batch refused by the database, isolating records", ctx.integration.pk)
    result = WriteResult()
    for index, entry in enumerate(entries):
        try:
            with transaction.atomic():
                result.add(records_write(ctx.writer, [entry], counted_kind=resource.kind), offset=index)
        except (IntegrityError, DataError, JeweliaError) as exc:
            result.failures[index] = f"the database refused the record: {str(exc).splitlines()[0][:300]}"
    return result


def _storable(raw: Any) -> Any:
    """The payload as JSON the database accepts: PostgreSQL's jsonb cannot hold NUL characters (a record
    failing for exactly that reason must still be recorded), so they are dropped."""
    text = json.dumps(raw, default=str)
    return json.loads(text.replace("\\u0000", "")) if "\\u0000" in text else raw


def _excerpt(raw: Any) -> str:
    text = json.dumps(raw, default=str, sort_keys=True) if not isinstance(raw, str) else raw.replace("\x00", "")
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def failures_record(ctx: RunContext, resource: str, failures: list[tuple[str, Any, str]]) -> None:
    """Upsert open record failures: a record failing again bumps its existing row instead of adding one."""
    if not failures:
        return
    now = timezone.now()
    latest = {external_id: (_storable(raw), error.replace("\x00", "")) for external_id, raw, error in failures}
    existing = {
        failure.external_id: failure
        for failure in RecordFailure.objects.filter(
            integration=ctx.integration, resource=resource, external_id__in=list(latest), resolved_at__isnull=True
        )
    }
    new, changed = [], []
    for external_id, (raw, error) in latest.items():
        failure = existing.get(external_id)
        if failure is None:
            new.append(
                RecordFailure(
                    integration=ctx.integration,
                    run=ctx.run,
                    resource=resource,
                    external_id=external_id,
                    error=error,
                    payload=raw,
                    payload_excerpt=_excerpt(raw),
                    created_at=now,
                    last_failed_at=now,
                )
            )
        else:
            failure.run, failure.error, failure.payload = ctx.run, error, raw
            failure.payload_excerpt, failure.attempts, failure.last_failed_at = _excerpt(raw), failure.attempts + 1, now
            changed.append(failure)
    RecordFailure.objects.bulk_create(new)
    RecordFailure.objects.bulk_update(
        changed, ["run", "error", "payload", "payload_excerpt", "attempts", "last_failed_at"]
    )
    ctx.has_open_failures = True


def _failures_resolve(ctx: RunContext, resource: str, external_ids: list[str]) -> None:
    if ctx.has_open_failures and external_ids:
        RecordFailure.objects.filter(
            integration=ctx.integration, resource=resource, external_id__in=external_ids, resolved_at__isnull=True
        ).update(resolved_at=timezone.now())


def _page_apply(ctx: RunContext, resource: Resource, raws: list[Any], mappings, *, cursor_update=None) -> None:
    """Transform and write one page, record its failures, update counters and heartbeat: one transaction."""
    run = ctx.run
    entries, failures = _entries(ctx, resource, raws, mappings)
    with transaction.atomic():
        result = entries_write(ctx, resource, entries)
        failures += [(entries[i].external_id, entries[i].raw, error) for i, error in result.failures.items()]
        failures_record(ctx, resource.name, failures)
        ok = [entry.external_id for i, entry in enumerate(entries) if i not in result.failures]
        _failures_resolve(ctx, resource.name, ok)
        if cursor_update is not None:
            cursor_update(result)
        run.fetched += len(raws)
        run.created += result.created
        run.updated += result.updated
        run.unchanged += result.unchanged
        run.failed += len(failures)
        alive = SyncRun.objects.filter(pk=run.pk, status=SyncRunStatus.RUNNING).update(
            heartbeat_at=timezone.now(), **run.counts
        )
        if not alive:
            raise RunCancelled


def _pass_start(cursor: ResourceCursor, resource: Resource, *, full: bool) -> None:
    """Begin a pass unless one is in progress (then the run resumes it). A full resync restarts any
    incremental pass in progress, but resumes a full one."""
    if cursor.in_progress and (cursor.full or not full):
        return
    since = None
    if not full and resource.cursor_style == CursorStyle.UPDATED_AT and cursor.high_watermark:
        since = cursor.high_watermark - resource.lookback  # same-timestamp safety margin
    cursor.state, cursor.since, cursor.full, cursor.pass_watermark, cursor.pages = {}, since, full, None, 0
    cursor.save()


def _resource_sync(ctx: RunContext, resource: Resource) -> None:
    cursor, _ = ResourceCursor.objects.get_or_create(integration=ctx.integration, resource=resource.name)
    _pass_start(cursor, resource, full=ctx.run.full)
    mappings = compile_mappings(
        FieldMapping.objects.filter(integration=ctx.integration, resource=resource.name), resource.kind
    )
    while True:
        page = ctx.provider.fetch_page(ctx.connection, resource.name, cursor=dict(cursor.state), since=cursor.since)

        def cursor_update(result: WriteResult, page=page) -> None:
            # The provider's figure wins: it may cap it (Shopify caps at the pass's start so records changed
            # during the pass are read again next time); record times are the fallback for providers without.
            watermark = page.high_watermark if page.high_watermark is not None else result.high_watermark
            cursor.pass_watermark = max_time(cursor.pass_watermark, watermark)
            cursor.pages += 1
            if page.done:
                cursor.high_watermark = max_time(cursor.high_watermark, cursor.pass_watermark)
                cursor.state, cursor.since, cursor.full, cursor.pass_watermark = {}, None, False, None
            else:
                cursor.state = page.cursor
            cursor.save()

        _page_apply(ctx, resource, page.records, mappings, cursor_update=cursor_update)
        if page.done:
            return


def _retry_failures(ctx: RunContext) -> None:
    """Retry open record failures from their stored payloads, without a resync."""
    failures = RecordFailure.objects.filter(integration=ctx.integration, resolved_at__isnull=True)
    if ctx.run.failure_ids:
        failures = failures.filter(pk__in=ctx.run.failure_ids)
    by_resource: dict[str, list[RecordFailure]] = {}
    for failure in failures.order_by("id"):
        by_resource.setdefault(failure.resource, []).append(failure)
    now = timezone.now()
    for resource in ordered_resources(type(ctx.provider), by_resource):
        rows = by_resource[resource.name]
        RecordFailure.objects.filter(pk__in=[row.pk for row in rows]).update(retried_at=now)
        mappings = compile_mappings(
            FieldMapping.objects.filter(integration=ctx.integration, resource=resource.name), resource.kind
        )
        raws = []
        for row in rows:
            raw = _current_version(ctx, resource.name, row)
            if raw is None:
                RecordFailure.objects.filter(pk=row.pk).update(
                    resolved_at=now, error=f"{row.error} (the provider no longer has this record)"
                )
            else:
                raws.append(raw)
        _page_apply(ctx, resource, raws, mappings)


def _current_version(ctx: RunContext, resource: str, failure: RecordFailure) -> Any:
    """The record as the provider has it now (it may have been fixed at the source), else the stored payload."""
    try:
        return ctx.provider.fetch_record(ctx.connection, resource, failure.external_id)
    except NotImplementedError:
        return failure.payload


def _resources_for(provider: type[Provider], run: SyncRun, integration: Integration) -> list[Resource]:
    wanted = run.resources or integration.sync_resources or None
    return [r for r in ordered_resources(provider, wanted) if r.direction in (Direction.PULL, Direction.BOTH)]


# --- the run ----------------------------------------------------------------------------------------------------------
def sync_run_execute(*, run_id: int) -> SyncRun | None:
    """Run a queued sync run to its end. Returns the finished run, or None when it was not claimable (already
    running elsewhere, finished or cancelled)."""
    run = _claim(run_id)
    if run is None:
        return None
    integration = run.integration
    started = time.monotonic()
    try:
        provider = integration.provider_impl
        connection = connection_build(integration, provider=provider)
    except Exception as exc:  # unknown provider, undecryptable credentials, disallowed base URL
        logger.exception("integration %s: cannot build a connection", integration.pk)
        ctx = RunContext(run, integration, None, None, None, False)  # type: ignore[arg-type]
        return _stop(ctx, status=SyncRunStatus.FAILED, error_kind="permanent", error=f"Cannot connect: {exc}")
    ctx = RunContext(
        run=run,
        integration=integration,
        provider=provider,
        connection=connection,
        writer=WriteContext.for_integration(integration, provider, batch_size=settings.INTEGRATIONS_SYNC_BATCH_SIZE),
        has_open_failures=RecordFailure.objects.filter(integration=integration, resolved_at__isnull=True).exists(),
    )
    run.cursor_before = _cursor_snapshot(integration)
    SyncRun.objects.filter(pk=run.pk).update(cursor_before=run.cursor_before)
    try:
        if run.mode == SyncMode.RETRY_FAILURES:
            _retry_failures(ctx)
        else:
            for resource in _resources_for(type(provider), run, integration):
                _resource_sync(ctx, resource)
    except RunCancelled:
        return _stop(ctx, status=SyncRunStatus.CANCELLED, error="Cancelled while running.")
    except AuthError as exc:
        return _stop(ctx, status=SyncRunStatus.FAILED, error_kind="auth", error=exc.message)
    except TransientError as exc:
        return _stop(
            ctx, status=SyncRunStatus.FAILED, error_kind="transient", error=exc.message, retry_after=exc.retry_after
        )
    except ProviderError as exc:  # PermanentError, and any other refusal that is neither auth nor transient
        return _stop(ctx, status=SyncRunStatus.FAILED, error_kind="permanent", error=exc.message)
    except Exception as exc:
        logger.exception("integration %s run %s crashed", integration.pk, run.pk)
        return _stop(ctx, status=SyncRunStatus.FAILED, error_kind="internal", error=f"{type(exc).__name__}: {exc}")
    status = SyncRunStatus.PARTIAL if run.failed else SyncRunStatus.SUCCEEDED
    logger.debug("integration %s run %s took %.2fs", integration.pk, run.pk, time.monotonic() - started)
    return _stop(ctx, status=status)


def _stop(ctx: RunContext, **kwargs) -> SyncRun:
    _finish(ctx, **kwargs)
    return ctx.run

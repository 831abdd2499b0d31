"""Dispatcher, sweeper and bulk pump: the database decides what runs when."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from integrations.models import Integration, SyncRun
from integrations.sync import scheduling

pytestmark = pytest.mark.django_db


def test_dispatcher_queues_one_run_per_due_integration_and_moves_next_due(make_integration, settings):
    settings.INTEGRATIONS_SCHEDULE_JITTER = 0.1
    due = make_integration(name="Due")
    later = make_integration(name="Later")
    paused = make_integration(name="Paused", status="paused")
    now = timezone.now()
    Integration.objects.filter(pk=later.pk).update(next_sync_at=now + timedelta(minutes=30))

    created = scheduling.dispatch_due(now=now)

    assert [run.integration_id for run in SyncRun.objects.filter(pk__in=created)] == [due.pk]
    assert SyncRun.objects.get().trigger == "schedule"
    due.refresh_from_db()
    interval = timedelta(minutes=due.sync_interval_minutes)
    assert now + interval * 0.9 <= due.next_sync_at <= now + interval * 1.1
    assert not SyncRun.objects.filter(integration=paused).exists()


def test_dispatcher_does_not_queue_a_second_run_while_one_is_active(integration):
    from integrations.services import sync_start

    running, _ = sync_start(integration=integration, trigger="api", enqueue=False)

    assert scheduling.dispatch_due() == []
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [running.pk]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED needs PostgreSQL")
def test_two_dispatchers_at_once_never_double_run(make_integration):
    for index in range(30):
        make_integration(name=f"Shop {index}")
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def dispatcher():
        try:
            barrier.wait()
            results.append(scheduling.dispatch_due(limit=20))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(len(ids) for ids in results) == 30
    assert set(results[0]).isdisjoint(results[1])
    assert SyncRun.objects.count() == 30
    assert SyncRun.objects.values("integration").distinct().count() == 30


def test_stale_running_runs_are_failed_with_a_retry_scheduled(integration, settings):
    from integrations.services import sync_start

    settings.INTEGRATIONS_STALE_RUN_MINUTES = 20
    run, _ = sync_start(integration=integration, trigger="api", enqueue=False)
    long_ago = timezone.now() - timedelta(minutes=30)
    SyncRun.objects.filter(pk=run.pk).update(status="running", started_at=long_ago, heartbeat_at=long_ago)

    assert scheduling.stale_runs_fail() == [run.pk]

    run.refresh_from_db()
    assert (run.status, run.error_kind) == ("failed", "internal")
    assert run.next_attempt_at is not None


def test_queued_runs_whose_message_was_lost_are_sent_again(integration, settings, django_capture_on_commit_callbacks):
    from integrations.services import sync_start

    run, _ = sync_start(integration=integration, trigger="api", enqueue=False)
    SyncRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        requeued = scheduling.lost_runs_requeue()

    assert requeued == [run.pk]
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_bulk_sync_runs_at_most_the_configured_number_at_once(make_integration, settings):
    from integrations.services import sync_start_all

    settings.INTEGRATIONS_BULK_SYNC_CONCURRENCY = 2
    for index in range(5):
        make_integration(name=f"Shop {index}")

    runs = sync_start_all()
    enqueued = scheduling.bulk_pump()

    assert len(runs) == 5
    assert len(enqueued) == 2
    assert scheduling.bulk_pump() == []  # both slots taken
    SyncRun.objects.filter(pk=enqueued[0]).update(status="succeeded")
    assert len(scheduling.bulk_pump()) == 1


def test_cleanup_deletes_old_finished_runs_and_resolved_failures_only(integration):
    from integrations.models import RecordFailure
    from integrations.services import history_cleanup

    old = timezone.now() - timedelta(days=100)
    finished = SyncRun.objects.create(integration=integration, trigger="api", status="succeeded")
    recent = SyncRun.objects.create(integration=integration, trigger="api", status="failed")
    SyncRun.objects.filter(pk=finished.pk).update(created_at=old)
    RecordFailure.objects.create(
        integration=integration, resource="orders", external_id="1", error="x", resolved_at=old
    )
    RecordFailure.objects.create(integration=integration, resource="orders", external_id="2", error="still open")

    deleted = history_cleanup(older_than_days=90)

    assert deleted == {"runs": 1, "record_failures": 1}
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [recent.pk]
    assert list(RecordFailure.objects.values_list("external_id", flat=True)) == ["2"]


def test_backoff_doubles_per_attempt_within_its_jitter_is_capped_and_honours_retry_after(monkeypatch):
    monkeypatch.setattr(scheduling.random, "uniform", lambda low, high: high)  # the top of the +-20% jitter

    delays = [scheduling.backoff_delay(attempt, base=10, cap=60) for attempt in (1, 2, 3, 4)]

    assert delays == [12.0, 24.0, 48.0, 72.0]
    assert scheduling.backoff_delay(1, base=10, cap=60, retry_after=300) == 300
    monkeypatch.setattr(scheduling.random, "uniform", lambda low, high: low)
    assert scheduling.backoff_delay(1, base=10, cap=60) == 8.0

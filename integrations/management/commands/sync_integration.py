"""Run a sync now, in this process: `sync_integration <id>` or `sync_integration --all`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.models import Integration, IntegrationStatus, SyncTrigger
from integrations.services import sync_run_now, sync_start
from jewelia.core.actors import Actor
from jewelia.core.exceptions import JeweliaError


class Command(BaseCommand):
    help = "Sync one integration (by id) or every active one, in this process, and print each run's outcome."

    def add_arguments(self, parser):
        parser.add_argument("integration_id", nargs="?", help="The integration's UUID.")
        parser.add_argument("--all", action="store_true", help="Every active integration, one after the other.")
        parser.add_argument("--resource", action="append", default=[], help="Only this resource (repeatable).")
        parser.add_argument("--full", action="store_true", help="Full resync: ignore the saved high watermarks.")
        parser.add_argument("--enqueue", action="store_true", help="Queue the runs for the workers instead.")

    def handle(self, *args, integration_id=None, all=False, resource=(), full=False, enqueue=False, **options):
        if bool(integration_id) == bool(all):
            raise CommandError("Give an integration id or --all (not both).")
        if all:
            integrations = list(Integration.objects.filter(status=IntegrationStatus.ACTIVE).order_by("name"))
        else:
            try:
                integrations = [Integration.objects.get(pk=integration_id)]
            except (Integration.DoesNotExist, ValueError, ValidationError) as exc:
                raise CommandError(f"No integration {integration_id!r}.") from exc
        failed = 0
        start = sync_start if enqueue else sync_run_now
        for integration in integrations:
            try:
                run, created = start(
                    integration=integration,
                    trigger=SyncTrigger.MANUAL,
                    actor=Actor.system("sync_integration command"),
                    resources=resource or None,
                    full=full,
                )
            except JeweliaError as exc:
                self.stderr.write(f"{integration.name}: {exc.message}")
                failed += 1
                continue
            if not created:
                self.stdout.write(f"{integration.name}: run {run.pk} is already {run.status}; not starting another.")
                continue
            if enqueue:
                self.stdout.write(f"{integration.name}: run {run.pk} queued.")
                continue
            line = (
                f"{integration.name}: run {run.pk} {run.status} in {run.duration_seconds or 0:.1f}s - "
                f"fetched {run.fetched}, created {run.created}, updated {run.updated}, "
                f"unchanged {run.unchanged}, failed {run.failed}"
            )
            if run.error_summary:
                line += f" ({run.error_kind}: {run.error_summary})"
            ok = run.status in ("succeeded", "partial")
            failed += not ok
            self.stdout.write(self.style.SUCCESS(line) if ok else self.style.ERROR(line))
        if failed:
            raise CommandError(f"{failed} integration(s) did not sync.")

"""Delete sync history, record failures, outbox entries, webhook events and the like past their retention."""

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations import extensions
from integrations.services import history_cleanup


class Command(BaseCommand):
    help = (
        "Delete finished sync runs and resolved record failures older than INTEGRATIONS_RETENTION_DAYS, and what "
        "other apps keep past their own retention (webhook events: WEBHOOKS_RETENTION_DAYS, failed and dead ones "
        "WEBHOOKS_FAILED_RETENTION_DAYS)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override the sync-history retention (days).")

    def handle(self, *args, days=None, **options):
        days = settings.INTEGRATIONS_RETENTION_DAYS if days is None else days
        deleted = history_cleanup(older_than_days=days)
        self.stdout.write(
            f"Deleted {deleted['runs']} runs and {deleted['record_failures']} record failures older than {days} days."
        )
        for job in extensions.retention_jobs:
            for name, count in job().items():
                self.stdout.write(f"Deleted {count} {name.replace('_', ' ')}.")

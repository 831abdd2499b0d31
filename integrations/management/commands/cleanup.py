"""Delete sync history and resolved record failures past the retention period."""

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.services import history_cleanup


class Command(BaseCommand):
    help = "Delete finished sync runs and resolved record failures older than INTEGRATIONS_RETENTION_DAYS."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override the retention period (days).")

    def handle(self, *args, days=None, **options):
        days = settings.INTEGRATIONS_RETENTION_DAYS if days is None else days
        deleted = history_cleanup(older_than_days=days)
        self.stdout.write(
            f"Deleted {deleted['runs']} runs and {deleted['record_failures']} record failures older than {days} days."
        )

"""Re-assess every integration's health (alerting on changes) and print it."""

from django.core.management.base import BaseCommand, CommandError

from integrations.health import integration_health_refresh
from integrations.models import Integration


class Command(BaseCommand):
    help = "Check every integration's health, store it (alerting on changes) and print it. Exit 1 if any fails."

    def add_arguments(self, parser):
        parser.add_argument("--live", action="store_true", help="Also make a cheap authenticated provider call.")

    def handle(self, *args, live=False, **options):
        bad = 0
        for integration in Integration.objects.order_by("name"):
            report = integration_health_refresh(integration=integration, live=live)
            line = f"{integration.name} ({integration.provider}): {report.status} - {report.reason}"
            unhealthy = report.status in ("failing", "disconnected")
            bad += unhealthy
            self.stdout.write(self.style.ERROR(line) if unhealthy else line)
        if bad:
            raise CommandError(f"{bad} integration(s) failing or disconnected.")

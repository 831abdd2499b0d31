from django.core.management.base import BaseCommand
from django.utils import timezone

from apikeys.models import KeyStatus
from apikeys.selectors import api_key_list


class Command(BaseCommand):
    help = "List API keys (identifiers, never secrets)."

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=KeyStatus.values)

    def handle(self, *args, status, **options):
        now = timezone.now()
        keys = api_key_list(status=KeyStatus(status) if status else None, now=now)
        self.stdout.write(
            f"{'id':>5}  {'identifier':<16}  {'status':<12}  {'expires':<16}  {'last used':<16}  name / scopes"
        )
        for key in keys:
            self.stdout.write(
                f"{key.pk:>5}  {key.identifier:<16}  {key.status_at(now).value:<12}  {_when(key.expires_at):<16}  "
                f"{_when(key.last_used_at):<16}  {key.name} / {', '.join(key.scopes)}"
            )


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

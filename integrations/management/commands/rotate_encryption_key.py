"""Re-encrypt stored secrets with the newest key in FIELD_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from integrations.services import credentials_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every integration's credentials with the first key of FIELD_ENCRYPTION_KEYS. Rotation: put a "
        "new key in front, deploy, run this, then remove the old key."
    )

    def handle(self, *args, **options):
        count = credentials_reencrypt()
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted credentials of {count} integration(s) with the newest key.")
        )

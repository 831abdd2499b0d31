"""Load demo data for a newcomer's machine. Idempotent: running it again adds nothing twice."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import import_string

# Each app contributes one seeder: a function taking (stdout, style) that is safe to run repeatedly.
SEEDERS = [
    "orders.demo.seed",
    "integrations.demo.seed",
    "webhooks.demo.seed",
]
# With --sync, run before the seeder it is keyed by: a first sync of the demo integrations from the running
# sandbox, so the demo webhook events find the products they name.
SYNC_BEFORE = {"webhooks.demo.seed": "integrations.demo.first_sync"}


class Command(BaseCommand):
    help = "Load idempotent demo data (customers, products, orders, ...) and ensure a staff login exists."

    def add_arguments(self, parser):
        parser.add_argument("--staff-user", default="admin", help="Username of the staff login to ensure.")
        parser.add_argument("--no-staff", action="store_true", help="Do not create a staff login.")
        parser.add_argument(
            "--sync", action="store_true", help="Sync the demo integrations from the running provider sandbox once."
        )

    def handle(self, *args, staff_user, no_staff, sync=False, **options):
        for dotted in SEEDERS:
            if sync and dotted in SYNC_BEFORE:
                import_string(SYNC_BEFORE[dotted])(stdout=self.stdout, style=self.style)  # one transaction per page
            with transaction.atomic():
                import_string(dotted)(stdout=self.stdout, style=self.style)
        if not no_staff:
            self._ensure_staff(staff_user)

    def _ensure_staff(self, username: str) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Staff login '{username}' already exists; its password is unchanged "
                f"(set a new one with: manage.py changepassword {username})."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS("Created staff login (shown once, not stored anywhere readable):"))
        self.stdout.write(f"    username: {username}\n    password: {password}")

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apikeys.durations import parse_duration
from apikeys.scopes import SCOPES
from apikeys.services import api_key_create
from jewelia.core.actors import Actor
from jewelia.core.exceptions import JeweliaError


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--scope", dest="scopes", action="append", required=True, choices=sorted(SCOPES), help="Repeat per scope."
        )
        parser.add_argument("--expires-in", help="Lifetime such as 30d or 12h (default: the maximum lifetime).")
        parser.add_argument("--allowed-network", dest="allowed_networks", action="append", default=[])
        parser.add_argument("--rate-limit", type=int, help="Requests per minute (default: APIKEYS_DEFAULT_RATE_LIMIT).")

    def handle(self, *args, name, description, scopes, expires_in, allowed_networks, rate_limit, **options):
        try:
            expires_at = timezone.now() + parse_duration(expires_in) if expires_in else None
            key, raw = api_key_create(
                actor=Actor.system("manage.py apikey_create"),
                name=name,
                description=description,
                scopes=scopes,
                expires_at=expires_at,
                allowed_networks=allowed_networks,
                rate_limit_per_minute=rate_limit,
            )
        except (ValueError, JeweliaError) as exc:
            raise CommandError(_describe(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Created API key {key.identifier} (id {key.pk}), shown once:"))
        self.stdout.write(raw)


def _describe(exc: Exception) -> str:
    if isinstance(exc, JeweliaError) and exc.details:
        return f"{exc.message} {exc.details}"
    return str(exc)

from django.core.management.base import BaseCommand, CommandError

from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from apikeys.tokens import PREFIX
from jewelia.core.actors import Actor


class Command(BaseCommand):
    help = "Revoke an API key at once, by id or identifier (jwl_<public id>)."

    def add_arguments(self, parser):
        parser.add_argument("key", help="The key's id or identifier as shown by apikey_list.")

    def handle(self, *args, key, **options):
        lookup = {"pk": int(key)} if key.isdigit() else {"public_id": key.removeprefix(PREFIX).split("_", 1)[0]}
        try:
            api_key = ApiKey.objects.get(**lookup)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No API key {key!r}.") from None
        if api_key.revoked_at is not None:
            self.stdout.write(f"{api_key.identifier} was already revoked at {api_key.revoked_at:%Y-%m-%d %H:%M}.")
            return
        api_key_revoke(key=api_key, actor=Actor.system("manage.py apikey_revoke"))
        self.stdout.write(self.style.SUCCESS(f"Revoked API key {api_key.identifier} ({api_key.name})."))

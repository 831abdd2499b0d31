"""Keys for tests, made the way production makes them (through the service), with the key returned once."""

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from jewelia.core.actors import Actor

_counter = iter(range(1, 1_000_000))


def create_key(**overrides) -> tuple[ApiKey, str]:
    actor = overrides.pop("actor", Actor.system("tests"))
    fields = {"name": f"Integration {next(_counter)}", "scopes": ["api_keys:read", "api_keys:write"], **overrides}
    return api_key_create(actor=actor, **fields)

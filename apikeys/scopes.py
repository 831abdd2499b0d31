"""The one registry of API-key scopes.

A scope is `<resource>:<access>`. Views declare the scope each action needs (see `apikeys.permissions`); keys
hold a list of scopes. Scopes are independent of each other: `orders:write` does not imply `orders:read`, so a
write-only key (for example a shop pushing orders) cannot read the CRM's data back.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    name: str
    description: str


SCOPES: dict[str, Scope] = {
    scope.name: scope
    for scope in (
        Scope("orders:read", "Read orders, their items, payments, shipments and status history."),
        Scope("orders:write", "Create and change orders, and move them through their statuses."),
        Scope("customers:read", "Read customers and their consent."),
        Scope("customers:write", "Create and change customers and their consent."),
        Scope("products:read", "Read products and stock levels."),
        Scope("products:write", "Create and change products and adjust stock."),
        Scope("integrations:read", "Read integrations, sync runs and health."),
        Scope("integrations:write", "Create, configure and disconnect integrations."),
        Scope("integrations:sync", "Start sync runs of integrations."),
        Scope("webhooks:read", "Read received webhook events."),
        Scope("webhooks:write", "Replay webhook events."),
        Scope("api_keys:read", "Read API keys (never their secrets) and their usage."),
        Scope("api_keys:write", "Create, change, rotate and revoke API keys within this key's own scopes."),
    )
}


def scope_choices() -> list[tuple[str, str]]:
    """(value, label) pairs for forms and serializers, in registry order."""
    return [(name, f"{name}: {scope.description}") for name, scope in SCOPES.items()]

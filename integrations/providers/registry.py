"""The explicit list of providers (STYLE.md "Connectors"): no import-time discovery, one place to look.

Adding a provider means adding its class to `PROVIDER_CLASSES`; the registry checks every class with
`validate_provider_class` and refuses duplicate keys when this module is imported, so a broken provider fails
loudly at start-up rather than at its first sync. Everything outside `integrations/providers/` reaches a
provider through `get_provider(key)` and asks it for capabilities and resources, never for its name.
"""

from __future__ import annotations

from integrations.providers.base import Provider, validate_provider_class
from integrations.providers.quickbooks.provider import QuickBooksProvider
from integrations.providers.shopify.provider import ShopifyProvider
from integrations.providers.stripe.provider import StripeProvider

PROVIDER_CLASSES: tuple[type[Provider], ...] = (ShopifyProvider, StripeProvider, QuickBooksProvider)


class UnknownProvider(KeyError):
    """No registered provider has this key (an integration row naming a removed provider, or a typo)."""


def build_registry(classes: tuple[type[Provider], ...]) -> dict[str, Provider]:
    """Validate the classes and return one (stateless, shared) instance per key, in the order given."""
    registry: dict[str, Provider] = {}
    for provider_class in classes:
        validate_provider_class(provider_class)
        if provider_class.key in registry:
            raise TypeError(f"Two providers use the key {provider_class.key!r}")
        registry[provider_class.key] = provider_class()
    return registry


_REGISTRY = build_registry(PROVIDER_CLASSES)


def get_provider(key: str) -> Provider:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise UnknownProvider(key) from None


def all_providers() -> list[Provider]:
    return list(_REGISTRY.values())


def provider_choices() -> list[tuple[str, str]]:
    """(key, name) pairs for model and form choices."""
    return [(provider.key, provider.name) for provider in _REGISTRY.values()]

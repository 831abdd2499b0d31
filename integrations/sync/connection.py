"""Turning an integration row into a provider `Connection`, with the credential callbacks wired to the database.

The refresh callback is the one place a token is refreshed: it takes a per-integration row lock
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serialises writers itself), re-reads the stored credentials and
only calls the provider when nobody refreshed them in the meantime. Ten workers hitting a 401 at once therefore
produce one refresh, and a rotated refresh token is never used twice (the refresh-token race Nango's users
report).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from integrations.models import Integration
from integrations.providers.base import Connection, Provider

logger = logging.getLogger("jewelia.integrations")


def _credentials_save(integration_id, credentials: dict) -> None:
    with transaction.atomic():
        row = Integration.objects.select_for_update().only("id", "credentials_encrypted").get(pk=integration_id)
        row.set_credentials(credentials)
        row.save(update_fields=["credentials_encrypted", "updated_at"])


def provider_for(integration: Integration) -> Provider:
    return integration.provider_impl


def connection_build(integration: Integration, *, provider: Provider | None = None) -> Connection:
    """A Connection for `integration`: decrypted credentials, config, checked base URL, DB-backed callbacks.

    A base URL taken from the config is checked against the host allow-list (DESIGN.md rule 10) here as well as
    on save, so a row edited behind the API's back still cannot point a sync at an internal host.
    """
    from integrations.urlsafety import check_base_url

    provider = provider or provider_for(integration)
    config = dict(integration.config or {})
    base_url = provider.base_url(config)
    if config.get("base_url"):
        check_base_url(base_url)
    connection = Connection(
        integration_id=str(integration.pk),
        base_url=base_url,
        config=config,
        credentials=integration.get_credentials(),
        rate_limit_key=f"integration:{integration.pk}",
        rate_limiting=settings.INTEGRATIONS_RATE_LIMITING,
    )

    def save_credentials(credentials: dict) -> None:
        _credentials_save(integration.pk, credentials)
        connection.credentials = dict(credentials)

    def refresh() -> dict | None:
        with transaction.atomic():
            row = Integration.objects.select_for_update().only("id", "credentials_encrypted").get(pk=integration.pk)
            stored = row.get_credentials()
            if stored != connection.credentials:
                # Another worker refreshed while we waited for the lock: use its credentials.
                connection.credentials = stored
                return stored
            fresh = provider.refresh_credentials(connection)
            if fresh is None:
                return None
            if fresh != connection.credentials:  # the provider did not already call save_credentials
                row.set_credentials(fresh)
                row.save(update_fields=["credentials_encrypted", "updated_at"])
                connection.credentials = dict(fresh)
            logger.info("integration %s: credentials refreshed", integration.pk)
            return connection.credentials

    connection.save_credentials = save_credentials
    connection.refresh = refresh
    return connection

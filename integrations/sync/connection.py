"""Turning an integration row into a provider `Connection`, with the credential callbacks wired to the database.

The refresh callback is the one place a token is refreshed. Under a per-integration lock (a process-local lock,
so threads of one worker queue up without touching the database, then the row lock `SELECT ... FOR UPDATE`,
which serialises workers on PostgreSQL) it re-reads the stored credentials and only calls the provider when
nobody refreshed them in the meantime: when the stored access token is the one this connection was using, or
is itself about to expire. Twenty workers hitting a 401 at once therefore produce one refresh, and a rotated
refresh token is never used twice (the refresh-token race Nango's users report). The provider saves the new
access and refresh tokens together through `save_credentials`, inside the same transaction.

A refused grant (`invalid_grant`: revoked, expired, or an old rotated token) marks the integration disconnected
and alerts once (`integrations.oauth.integration_auth_lost`); later refreshes of a disconnected integration do not
call the provider again until it is reconnected.

The refresh commits when its own transaction ends, so it must run outside any caller's transaction: a caller's
rollback would otherwise throw away a rotated refresh token that the provider has already invalidated the old
one for. The sync engine and the outbox call providers outside transactions for that reason.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from integrations.errors import AuthError
from integrations.models import Integration, IntegrationStatus
from integrations.providers.base import Connection, Provider

logger = logging.getLogger("jewelia.integrations")

# An access token this close to its expiry counts as expired (clock skew, and the call it is about to make).
ACCESS_TOKEN_RENEW_MARGIN = timedelta(minutes=5)

_process_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_process_locks_guard = threading.Lock()


def _process_lock(integration_id: str) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks[integration_id]


def credentials_expiring(credentials: dict[str, Any], *, now: datetime | None = None) -> bool:
    """Whether the stored access token is missing or expires within `ACCESS_TOKEN_RENEW_MARGIN` (per its
    `expires_at`, as `oauth_client.TokenSet.as_credentials()` stores it). Unknown expiry: not expiring."""
    if not credentials.get("access_token"):
        return bool(credentials.get("refresh_token"))
    text = credentials.get("expires_at")
    if not isinstance(text, str) or not text:
        return False
    try:
        expires_at = datetime.fromisoformat(text)
    except ValueError:
        return False
    expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    return expires_at - ACCESS_TOKEN_RENEW_MARGIN <= (now or datetime.now(UTC))


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
        with _process_lock(str(integration.pk)):
            try:
                return _refresh_locked()
            except AuthError as exc:
                from integrations.oauth import integration_auth_lost

                integration_auth_lost(integration_id=integration.pk, reason=exc.message)
                raise

    def _refresh_locked() -> dict | None:
        with transaction.atomic():
            row = (
                Integration.objects.select_for_update()
                .only("id", "status", "credentials_encrypted")
                .get(pk=integration.pk)
            )
            stored = row.get_credentials()
            if stored != connection.credentials and not credentials_expiring(stored):
                # Another worker refreshed while we waited for the lock (or staff stored new credentials).
                connection.credentials = stored
                return stored
            if row.status == IntegrationStatus.DISCONNECTED and stored == connection.credentials:
                # A refused grant stays refused: no provider call until someone reconnects.
                raise AuthError("The integration is disconnected: reconnect it")
            connection.credentials = stored
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

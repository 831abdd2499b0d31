"""The OAuth 2.0 connect flow for every provider whose auth kind is OAUTH2, plus losing, ending and watching a grant.

- `oauth_start`: the provider's authorize URL for one integration, with a `state` that is signed
  (`django.core.signing`, salted), short-lived (`INTEGRATIONS_OAUTH_STATE_TTL_SECONDS`, in the signature and on
  its row), single-use (the `OAuthState` row is consumed by one conditional UPDATE) and bound to the integration
  and to the staff user or API key that started it; a PKCE pair when the provider's spec asks for one.
- `oauth_callback_complete`: what the shared callback (`GET /api/oauth/callback/`) does. It verifies the state,
  exchanges the code, and stores the tokens (encrypted, with their expiry times) and the provider's tenant ids
  (`Provider.oauth_callback_extras`, e.g. QuickBooks' realmId) in one transaction, then activates the
  integration. Every failure (consent denied, a bad, expired or reused state, a token endpoint error) returns a
  message for staff and changes nothing on the integration.
- `integration_disconnect`: revoke the grant at the provider (when it has a revoke endpoint) and forget the tokens.
- `integration_auth_lost`: a refresh was refused (`invalid_grant`): disconnected, one alert with a reconnect link.
- `oauth_refresh_expiry_warn`: a warning alert some days before a refresh token of known lifetime runs out,
  once per token.

The provider's client id and secret are app-level settings named by its `OAuthSpec`; nothing here names a
provider.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from integrations import crypto, oauth_client
from integrations.errors import AuthError, PermanentError, ProviderError
from integrations.models import IdentityMapping, Integration, IntegrationStatus, OAuthState
from integrations.providers.base import AuthKind, Provider
from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, JeweliaError

logger = logging.getLogger("jewelia.integrations.oauth")

STATE_SALT = "jewelia.integrations.oauth.state"
# The keys `oauth_client.TokenSet.as_credentials()` stores: what a disconnect forgets (other stored secrets, such
# as a webhook signing secret, stay).
TOKEN_KEYS = ("access_token", "refresh_token", "token_type", "expires_at", "refresh_token_expires_at", "scope")


class ProviderRefused(JeweliaError):
    """The provider could not do what was asked (revoke a grant); nothing changed here."""

    status_code = 502
    code = "provider_error"
    default_message = "The provider could not complete the request."


@dataclass(frozen=True)
class OAuthStart:
    authorize_url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class CallbackResult:
    """How a callback ended: `ok`, the message for staff, and the integration when the state identified one."""

    ok: bool
    message: str
    integration: Integration | None = None


def oauth_callback_url() -> str:
    """The redirect URI registered with every provider's app: `INTEGRATIONS_OAUTH_CALLBACK_URL`, else the shared
    callback under `SITE_URL`."""
    configured = settings.INTEGRATIONS_OAUTH_CALLBACK_URL
    return configured or settings.SITE_URL.rstrip("/") + reverse("integration-oauth-callback")


def _oauth_provider(integration: Integration) -> Provider:
    provider = integration.provider_impl
    if provider.auth_kind != AuthKind.OAUTH2 or provider.oauth is None:
        raise Conflict(f"{provider.name} does not connect with OAuth.", code="not_oauth")
    return provider


# --- starting ---------------------------------------------------------------------------------------------------------
def oauth_start(*, integration: Integration, actor: Actor, now: datetime | None = None) -> OAuthStart:
    """Begin connecting (or reconnecting) `integration`: record the attempt and return where to send the user.

    Raises `Conflict` when the provider does not use OAuth or its app credentials are not configured, and
    `ValidationFailed` (from the host check) when the integration's OAuth endpoints are not allowed."""
    provider = _oauth_provider(integration)
    now = now or timezone.now()
    try:
        spec = provider.oauth_spec(integration.config or {})
        oauth_client.client_credentials(spec)
    except PermanentError as exc:
        raise Conflict(exc.message, code="oauth_not_configured") from None
    verifier, challenge = oauth_client.pkce_pair() if spec.pkce else ("", None)
    nonce = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.INTEGRATIONS_OAUTH_STATE_TTL_SECONDS)
    redirect_uri = oauth_callback_url()
    OAuthState.objects.create(
        nonce=nonce,
        integration=integration,
        started_by_type=actor.kind,
        started_by_id=actor.id,
        started_by_label=actor.label[:200],
        redirect_uri=redirect_uri,
        code_verifier_encrypted=crypto.encrypt_json({"code_verifier": verifier}) if verifier else "",
        expires_at=expires_at,
    )
    state = signing.dumps({"n": nonce, "i": str(integration.pk)}, salt=STATE_SALT)
    url = oauth_client.authorize_url(spec, redirect_uri=redirect_uri, state=state, code_challenge=challenge)
    return OAuthStart(authorize_url=url, state=state, expires_at=expires_at)


# --- the callback -----------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """The callback cannot connect; the message is for staff."""

    def __init__(self, message: str, *, outcome: str = OAuthState.Outcome.FAILED):
        super().__init__(message)
        self.message = message
        self.outcome = outcome


def oauth_callback_complete(
    *, params: Mapping[str, str], user: Any = None, now: datetime | None = None
) -> CallbackResult:
    """Finish an OAuth attempt from the provider's redirect (`params` are its query parameters; `user` is the
    request's user, checked against who started the attempt). Never raises for a bad callback: the result says
    what happened, and nothing changes on the integration unless it connected."""
    now = now or timezone.now()
    try:
        row = _state_consume(str(params.get("state") or ""), now=now)
    except _Refused as exc:
        return CallbackResult(ok=False, message=exc.message)
    integration = row.integration
    try:
        provider = _oauth_provider(integration)
        _check_binding(row, user=user, now=now)
        message = _connect(integration, provider, row, params)
    except (_Refused, JeweliaError) as exc:
        outcome = getattr(exc, "outcome", OAuthState.Outcome.FAILED)
        OAuthState.objects.filter(pk=row.pk).update(outcome=outcome, error=exc.message[:500])
        logger.info("integration %s: OAuth attempt %s ended %s: %s", integration.pk, row.pk, outcome, exc.message)
        return CallbackResult(ok=False, message=exc.message, integration=integration)
    OAuthState.objects.filter(pk=row.pk).update(outcome=OAuthState.Outcome.CONNECTED, error="")
    integration.refresh_from_db()
    from integrations.health import integration_health_refresh

    integration_health_refresh(integration=integration)
    logger.info("integration %s: connected through OAuth (attempt %s)", integration.pk, row.pk)
    return CallbackResult(ok=True, message=message, integration=integration)


def _state_consume(state: str, *, now: datetime) -> OAuthState:
    """The attempt the signed state names, consumed (one UPDATE: a replay or a second tab finds it used)."""
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=settings.INTEGRATIONS_OAUTH_STATE_TTL_SECONDS)
    except signing.SignatureExpired:
        raise _Refused("The connection attempt expired before the provider sent you back. Start it again.") from None
    except signing.BadSignature:
        raise _Refused(
            "The provider sent you back without a valid state, so the connection was refused. Start it again."
        ) from None
    nonce = data.get("n") if isinstance(data, dict) else None
    consumed = OAuthState.objects.filter(nonce=nonce, consumed_at__isnull=True, expires_at__gt=now).update(
        consumed_at=now
    )
    row = OAuthState.objects.select_related("integration").filter(nonce=nonce).first()
    if row is None or str(row.integration_id) != str(data.get("i")):
        raise _Refused("This connection attempt is unknown (the integration may have been deleted). Start again.")
    if not consumed:
        if row.consumed_at is not None:
            raise _Refused("This connection link was already used. Start the connection again.")
        raise _Refused("The connection attempt expired before the provider sent you back. Start it again.")
    return row


def _check_binding(row: OAuthState, *, user: Any, now: datetime) -> None:
    """A staff user's attempt must come back to that user's session; an API key's, while the key is usable."""
    if row.started_by_type == "user":
        if not (user is not None and user.is_authenticated and str(user.pk) == row.started_by_id):
            raise _Refused(
                f"This connection was started by {row.started_by_label or 'another user'}; "
                "sign in as that user, or start it again yourself."
            )
    elif row.started_by_type == "api_key":
        from apikeys.models import USABLE_STATUSES, ApiKey

        key = ApiKey.objects.filter(pk=row.started_by_id).first()
        if key is None or key.status_at(now) not in USABLE_STATUSES:
            raise _Refused("The API key that started this connection is no longer valid. Start it again.")


def _connect(integration: Integration, provider: Provider, row: OAuthState, params: Mapping[str, str]) -> str:
    error = str(params.get("error") or "")
    if error:
        said = str(params.get("error_description") or "")[:200]
        if error == "access_denied":
            raise _Refused(
                f"{provider.name}: access was not granted (consent denied). Nothing changed.",
                outcome=OAuthState.Outcome.DENIED,
            )
        said = f"{error}: {said}" if said else error
        raise _Refused(f"{provider.name} refused the connection ({said}). Nothing changed.")
    code = str(params.get("code") or "")
    if not code:
        raise _Refused(f"{provider.name} sent you back without an authorization code. Nothing changed.")
    try:
        extras = provider.oauth_callback_extras(params)
    except ValueError as exc:
        raise _Refused(f"{provider.name}: {exc}. Nothing changed.") from None
    verifier = None
    if row.code_verifier_encrypted:
        try:
            verifier = crypto.decrypt_json(row.code_verifier_encrypted).get("code_verifier")
        except crypto.DecryptionError:  # the encryption keys changed while the user was at the provider
            raise _Refused("The connection attempt can no longer be read. Start it again.") from None
    try:
        spec = provider.oauth_spec(integration.config or {})
        tokens = oauth_client.exchange_code(spec, code, row.redirect_uri, verifier)
    except ProviderError as exc:
        raise _Refused(
            f"{provider.name} did not hand out tokens ({exc.message}). Nothing changed; connect again."
        ) from None
    try:
        _tokens_store(integration=integration, provider=provider, tokens=tokens, extras=extras)
    except _Refused:
        _revoke_quietly(provider, integration, tokens.as_credentials())
        raise
    return f"Connected to {provider.name}."


def _tokens_store(
    *, integration: Integration, provider: Provider, tokens: oauth_client.TokenSet, extras: Mapping[str, Any]
) -> None:
    """Store a fresh grant and activate: tokens (encrypted, with expiry times; other stored secrets kept) and the
    tenant ids in config, in one transaction. A grant for another tenant than the one whose data is already
    synced is refused (`_Refused`): its ids would point at the wrong company's objects."""
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        config = dict(locked.config or {})
        changed = sorted(k for k, v in extras.items() if config.get(k) not in (None, "", v))
        if changed and IdentityMapping.objects.filter(integration=locked).exists():
            raise _Refused(
                f"{provider.name} connected a different account ({', '.join(changed)} changed) than the one this "
                "integration has synced. Nothing changed; create a new integration for that account."
            )
        locked.config = {**config, **extras}
        try:
            locked.full_clean(exclude=["credentials_encrypted"])
        except ValidationError as exc:
            raise _Refused(f"{provider.name}: the connected account does not fit the configuration ({exc}).") from None
        locked.set_credentials({**locked.get_credentials(), **tokens.as_credentials()})
        locked.status = IntegrationStatus.ACTIVE
        locked.consecutive_failures = 0
        locked.next_sync_at = timezone.now()
        locked.refresh_token_warned_for = None
        locked.save()


def _revoke_quietly(provider: Provider, integration: Integration, credentials: dict[str, Any]) -> None:
    """Best effort: a grant we are not going to keep should not stay valid at the provider."""
    from integrations.sync.connection import connection_build

    connection = connection_build(integration, provider=provider)
    connection.credentials = credentials
    try:
        provider.revoke_credentials(connection)
    except ProviderError as exc:
        logger.warning("integration %s: could not revoke an unused grant: %s", integration.pk, exc.message)


# --- losing and ending a grant ----------------------------------------------------------------------------------------
def integration_auth_lost(*, integration_id: Any, reason: str) -> bool:
    """The provider refused the grant (a refresh answered invalid_grant, the app was uninstalled): mark the
    integration disconnected; its health is refreshed once the caller's transaction commits, so the alert (sent
    once on the change, with the reconnect link) never reports a change that rolled back. Returns whether this
    call disconnected it."""
    changed = (
        Integration.objects.filter(pk=integration_id)
        .exclude(status__in=[IntegrationStatus.DISCONNECTED, IntegrationStatus.DRAFT])
        .update(status=IntegrationStatus.DISCONNECTED, updated_at=timezone.now())
    )
    if changed:
        logger.warning("integration %s: disconnected, the provider refused the grant: %s", integration_id, reason)
        from integrations.health import integration_health_refresh

        transaction.on_commit(
            lambda: integration_health_refresh(integration=Integration.objects.get(pk=integration_id))
        )
    return bool(changed)


def integration_disconnect(*, integration: Integration, force: bool = False) -> Integration:
    """Revoke the grant at the provider (when it has a revoke endpoint), then forget the tokens and mark the
    integration disconnected. A grant the provider no longer knows counts as revoked. When the provider cannot
    be reached, nothing changes (`ProviderRefused`) unless `force`: then the tokens are forgotten anyway."""
    from integrations.sync.connection import connection_build

    provider = _oauth_provider(integration)
    if any(integration.get_credentials().get(key) for key in ("access_token", "refresh_token")):
        try:
            provider.revoke_credentials(connection_build(integration, provider=provider))
        except AuthError:
            pass  # the grant is already gone at the provider
        except ProviderError as exc:
            if not force:
                raise ProviderRefused(
                    f"{provider.name} could not revoke the grant ({exc.message}). Nothing changed; try again, or "
                    "disconnect with force to forget the tokens anyway."
                ) from None
            logger.warning("integration %s: forgetting tokens that could not be revoked: %s", integration.pk, exc)
    with transaction.atomic():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        kept = {k: v for k, v in locked.get_credentials().items() if k not in TOKEN_KEYS}
        locked.set_credentials(kept)
        locked.status = IntegrationStatus.DISCONNECTED
        locked.save(update_fields=["credentials_encrypted", "status", "updated_at"])
    from integrations.health import integration_health_refresh

    integration_health_refresh(integration=locked)
    return locked


def oauth_states_cleanup(*, older_than_days: int) -> int:
    """Delete OAuth attempts older than the retention period (their audit value is gone; their state expired long
    ago)."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = OAuthState.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- watching a grant -------------------------------------------------------------------------------------------------
def oauth_refresh_expiry_warn(*, now: datetime | None = None) -> list[str]:
    """Warn staff (one alert per refresh token) when a refresh token of a provider with a known refresh-token
    lifetime expires within `INTEGRATIONS_REFRESH_TOKEN_WARN_DAYS`. Returns the ids of the integrations warned
    about. The warned-about expiry is claimed with a conditional UPDATE, so two beat processes warn once."""
    from integrations.alerts import refresh_token_expiry_alert_send
    from integrations.providers import registry

    now = now or timezone.now()
    horizon = now + timedelta(days=settings.INTEGRATIONS_REFRESH_TOKEN_WARN_DAYS)
    keys = [
        p.key
        for p in registry.all_providers()
        if p.auth_kind == AuthKind.OAUTH2 and p.oauth is not None and p.oauth.refresh_token_lifetime is not None
    ]
    warned = []
    candidates = (
        Integration.objects.filter(provider__in=keys)
        .exclude(status__in=[IntegrationStatus.DRAFT, IntegrationStatus.DISCONNECTED])
        .exclude(credentials_encrypted="")
    )
    for integration in candidates.iterator():
        try:
            expires_at = _parse_time(integration.get_credentials().get("refresh_token_expires_at"))
        except crypto.DecryptionError:
            logger.error("integration %s: credentials cannot be decrypted", integration.pk)
            continue
        if expires_at is None or expires_at > horizon or integration.refresh_token_warned_for == expires_at:
            continue
        claimed = (
            Integration.objects.filter(pk=integration.pk)
            .exclude(refresh_token_warned_for=expires_at)
            .update(refresh_token_warned_for=expires_at)
        )
        if claimed:
            refresh_token_expiry_alert_send(integration=integration, expires_at=expires_at, now=now)
            warned.append(str(integration.pk))
    return warned


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)

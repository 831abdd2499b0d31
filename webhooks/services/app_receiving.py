"""The provider-level webhook receiver, for providers with one webhook URL and signing secret per developer app
rather than per connected account (`Provider.app_webhooks`, QuickBooks): verify with the app's secrets, split a
delivery per account, store each part for the integration connected to that account through the same path as
the per-integration receiver (`receiving.event_store`: one de-duplicating insert, held for a paused integration,
one processing nudge)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from integrations.models import Integration, IntegrationStatus
from integrations.providers import registry
from integrations.providers.base import Capability, Provider, WebhookSignatureError
from webhooks.models import WebhookEventStatus
from webhooks.services.receiving import (
    IntegrationGone,
    Outcome,
    Target,
    event_store,
    nudge_after_commit,
    security_log,
    unparsable_store,
)

logger = logging.getLogger("jewelia.webhooks")


@dataclass(frozen=True)
class AppReceipt:
    """What became of a provider-level delivery: counts of its parts (one per account) when it was accepted."""

    outcome: Outcome  # STORED (accepted, whatever became of its parts), REJECTED or UNPARSABLE
    stored: int = 0  # parts stored as new events (pending or held)
    held: int = 0  # of those, how many wait for a paused (draft, disconnected) integration
    duplicate: int = 0  # parts whose event the integration has already
    unrouted: int = 0  # parts for an account no integration is connected to: not stored
    reason: str = ""


def app_webhook_provider_get(*, provider_key: str) -> Provider | None:
    """The provider behind a provider-level receiver URL, or None when no provider with app-level webhooks has
    this key."""
    try:
        provider = registry.get_provider(provider_key)
    except KeyError:
        return None
    if not (provider.app_webhooks and provider.has(Capability.WEBHOOKS)):
        return None
    return provider


# Which integration an account's deliveries go to when several of a provider are connected to it (a company
# reconnected as a new integration beside the old row): the active one, else one in error, else one that holds its
# events; among equals the newest.
_ROUTING_ORDER: dict[str, int] = {
    IntegrationStatus.ACTIVE: 0,
    IntegrationStatus.ERROR: 1,
    IntegrationStatus.PAUSED: 2,
    IntegrationStatus.DRAFT: 3,
    IntegrationStatus.DISCONNECTED: 4,
}
# Account id -> integration, per provider and process, for WEBHOOKS_TARGET_CACHE_SECONDS (as `_TARGETS`). A delivery
# for an account the cached map does not know reloads it, so a company connected a moment ago is routed at once.
_ACCOUNT_TARGETS: dict[str, tuple[float, dict[str, Target]]] = {}


def account_targets_get(*, provider: Provider) -> dict[str, Target]:
    """Account id -> the integration of `provider` that receives that account's app-level deliveries: one query
    for the provider's integrations (one per connected account, a handful), whatever the delivery carries."""
    rows = (
        Integration.objects.filter(provider=provider.key)
        .order_by("-created_at", "-pk")
        .values_list("pk", "status", "config")
    )
    targets: dict[str, Target] = {}
    for pk, status, config in rows:
        account_id = provider.integration_account_id(config if isinstance(config, Mapping) else {})
        if not account_id:
            continue
        current = targets.get(account_id)
        rank = _ROUTING_ORDER.get(status, len(_ROUTING_ORDER))
        if current is None or rank < _ROUTING_ORDER.get(current.status, len(_ROUTING_ORDER)):
            # The app's secrets verify these deliveries: the integration's own credentials are not needed.
            targets[account_id] = Target(str(pk), provider, status, credentials_encrypted="")
    if settings.WEBHOOKS_TARGET_CACHE_SECONDS > 0:
        _ACCOUNT_TARGETS[provider.key] = (time.monotonic(), targets)
    return targets


def _account_targets_for(provider: Provider, accounts: list[str]) -> dict[str, Target]:
    """The routing map from this process's cache while it is fresh and knows every account of the delivery;
    reloaded otherwise (a company connected a moment ago is routed at once)."""
    cached = _ACCOUNT_TARGETS.get(provider.key)
    if cached is not None and time.monotonic() - cached[0] < settings.WEBHOOKS_TARGET_CACHE_SECONDS:
        _stored_at, targets = cached
        if all(account in targets for account in accounts):
            return targets
    return account_targets_get(provider=provider)


def app_delivery_accept(
    *, provider: Provider, headers: Mapping[str, str], body: bytes, remote_addr: str = ""
) -> AppReceipt:
    """Verify a delivery to a provider's app-level URL with the app's secrets, split it per account and store each
    part for the integration connected to that account, exactly as `delivery_accept` stores an event (one
    de-duplicating insert, held for a paused integration, duplicates counted, one processing nudge).

    Rejected (no app secret configured, bad signature): nothing stored, one security log line a minute. Authentic
    but unparsable: stored `failed` for every integration connected through the app (which company it is for
    cannot be told), or, with none connected, logged with the reason and the body's hash. A part for an account
    no integration is connected to is not stored: one log line with the account id, and it is counted as
    unrouted. Intuit retries anything but a 2xx for days, and an unknown company's changes
    will never become routable by retrying.
    """
    now = timezone.now()
    endpoint = f"the {provider.key} app-level endpoint"
    secrets = provider.app_webhook_secrets()
    if not secrets:
        reason = f"no app-level webhook secret is configured ({provider.app_webhook_secrets_setting})"
        security_log(endpoint, reason, remote_addr)
        return AppReceipt(Outcome.REJECTED, reason=reason)
    try:
        provider.verify_webhook(headers=headers, body=body, secrets=secrets, now=now)
    except WebhookSignatureError as exc:
        reason = str(exc) or "invalid signature"
        security_log(endpoint, reason, remote_addr)
        return AppReceipt(Outcome.REJECTED, reason=reason)

    try:
        delivery = provider.parse_webhook(headers=headers, body=body)
        parts = [(provider.webhook_account_id(part), part) for part in provider.split_webhook_by_account(delivery)]
    except ValueError as exc:
        reason = str(exc)[:500] or "the body cannot be parsed"
        # Whose it is cannot be told without parsing it: every integration connected through this app keeps a
        # copy (with one company, the usual case, exactly the right one).
        owners = {target.integration_id for target in account_targets_get(provider=provider).values()}
        for integration_id in sorted(owners):
            try:
                unparsable_store(integration_id, headers=headers, body=body, reason=reason, now=now)
            except IntegrationGone:
                owners.discard(integration_id)
        if not owners:
            logger.error(
                "%s: an authentic delivery cannot be parsed, and no integration is connected to keep it "
                "(sha256 %s, %d bytes): %s",
                endpoint,
                hashlib.sha256(body).hexdigest(),
                len(body),
                reason,
            )
        return AppReceipt(Outcome.UNPARSABLE, reason=reason)

    targets = _account_targets_for(provider, [account_id for account_id, _part in parts])
    counts = {"stored": 0, "held": 0, "duplicate": 0, "unrouted": 0}
    for account_id, part in parts:
        target = targets.get(account_id)
        receipt = None
        if target is not None:
            try:
                receipt = event_store(target, part, headers=headers, body=body, now=now)
            except IntegrationGone:
                receipt = None
        if receipt is None:
            counts["unrouted"] += 1
            logger.warning(
                "%s: event %s is for account %s, which no integration is connected to; not stored",
                endpoint,
                part.event_id,
                account_id,
            )
        elif receipt.outcome == Outcome.DUPLICATE:
            counts["duplicate"] += 1
        else:
            counts["stored"] += 1
            if receipt.status == WebhookEventStatus.HELD:
                counts["held"] += 1
    if counts["stored"] > counts["held"]:
        nudge_after_commit()
    return AppReceipt(
        Outcome.STORED,
        stored=counts["stored"],
        held=counts["held"],
        duplicate=counts["duplicate"],
        unrouted=counts["unrouted"],
    )

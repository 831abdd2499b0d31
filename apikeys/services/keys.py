"""Creating, changing, revoking and rotating API keys.

Every function takes the `actor` (who acts, recorded on the row) and, when the actor is an API key, that key as
`acting_key`: a key can only create, change, rotate or revoke keys that stay within its own scopes, expiry, IP
networks and rate limit, so a leaked low-privilege key cannot mint itself a better one.
"""

import ipaddress
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from apikeys import tokens
from apikeys.cache import key_publish
from apikeys.models import ApiKey, validate_networks
from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, JeweliaError, ValidationFailed

logger = logging.getLogger(__name__)

MAX_GRACE_PERIOD = timedelta(days=7)
_UNSET = object()


class PrivilegeEscalation(JeweliaError):
    status_code = 403
    code = "privilege_escalation"
    default_message = "An API key cannot grant more than it holds."


def _max_lifetime() -> timedelta | None:
    days = settings.APIKEYS_MAX_LIFETIME_DAYS
    return timedelta(days=days) if days > 0 else None


def _fields_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(details={"fields": {field: [message]}})


def _normalized_networks(networks: list) -> list[str]:
    try:
        validate_networks(networks)
    except DjangoValidationError as exc:
        raise _fields_error("allowed_networks", exc.messages[0]) from None
    normalized = [str(ipaddress.ip_network(item, strict=False)) for item in networks]
    return list(dict.fromkeys(normalized))


def api_key_check_expiry(*, expires_at: datetime | None, created_at: datetime, now: datetime) -> None:
    """Refuse (400) an expiry in the past, or beyond the maximum lifetime counted from the key's creation."""
    if expires_at is not None and expires_at <= now:
        raise _fields_error("expires_at", "Must be in the future.")
    lifetime = _max_lifetime()
    if lifetime is not None:
        if expires_at is None:
            raise _fields_error("expires_at", f"Keys must expire within {lifetime.days} days of their creation.")
        if expires_at > created_at + lifetime:
            raise _fields_error(
                "expires_at", f"Must be at most {lifetime.days} days after the key's creation ({created_at:%Y-%m-%d})."
            )


_ESCALATION = "An API key cannot give a key more than it holds itself."
_NOT_MANAGEABLE = "An API key can only manage keys within its own scopes and limits."


def _check_within(acting_key: ApiKey | None, key: ApiKey, *, message: str = _ESCALATION) -> None:
    """Refuse (403) a key that would exceed `acting_key` in scopes, lifetime, networks or rate limit."""
    if acting_key is None:
        return
    problems: dict[str, Any] = {}
    extra_scopes = sorted(set(key.scopes) - set(acting_key.scopes))
    if extra_scopes:
        problems["scopes"] = extra_scopes
    acting_end = acting_key.usable_until
    if acting_end is not None and (key.expires_at is None or key.expires_at > acting_end):
        problems["expires_at"] = f"must be on or before {acting_end.isoformat()}"
    if acting_key.allowed_networks:
        own = [ipaddress.ip_network(item) for item in acting_key.allowed_networks]
        inside = [
            any(net.version == mine.version and net.subnet_of(mine) for mine in own)  # type: ignore[arg-type]
            for net in (ipaddress.ip_network(item) for item in key.allowed_networks)
        ]
        if not inside or not all(inside):
            problems["allowed_networks"] = f"must lie within {', '.join(acting_key.allowed_networks)}"
    if key.rate_limit_per_minute > acting_key.rate_limit_per_minute:
        problems["rate_limit_per_minute"] = f"must be at most {acting_key.rate_limit_per_minute}"
    if problems:
        raise PrivilegeEscalation(message, details=problems)


def _lock_changeable(key: ApiKey, acting_key: ApiKey | None, *, revoked: str, rotated: str) -> ApiKey:
    """The key's row, locked; 409 when it was revoked or rotated, 403 when `acting_key` may not manage it."""
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is not None:
        raise Conflict(revoked)
    if locked.grace_ends_at is not None:
        raise Conflict(rotated)
    _check_within(acting_key, locked, message=_NOT_MANAGEABLE)
    return locked


def _earliest_end(*, now: datetime, acting_key: ApiKey | None, wanted: datetime | None = None) -> datetime | None:
    """The earliest of `wanted`, the end of the maximum lifetime from now, and the acting key's own end."""
    lifetime = _max_lifetime()
    ends = [
        moment
        for moment in (wanted, now + lifetime if lifetime else None, acting_key.usable_until if acting_key else None)
        if moment is not None
    ]
    return min(ends) if ends else None


def _save_validated(key: ApiKey) -> None:
    try:
        key.full_clean()
    except DjangoValidationError as exc:
        raise ValidationFailed(details={"fields": exc.message_dict}) from None
    key.save()


def _new_key(*, actor: Actor, now: datetime, acting_key: ApiKey | None = None, **fields) -> tuple[ApiKey, str]:
    """Create a key with `fields` (refused when it would exceed `acting_key`); returns the row and the key."""
    public_id = tokens.new_public_id()
    raw = tokens.generate(public_id)
    key = ApiKey(
        public_id=public_id, key_hash=tokens.key_hash(raw), created_at=now, **actor.as_fields("created_by"), **fields
    )
    _check_within(acting_key, key)
    _save_validated(key)
    return key, raw


def _describe(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id or actor.label}"


def api_key_create(
    *,
    actor: Actor,
    acting_key: ApiKey | None = None,
    name: str,
    scopes: list[str],
    description: str = "",
    expires_at: datetime | None = None,
    allowed_networks: list[str] | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which the caller shows once and must not keep.

    Without `expires_at` the key expires after the maximum lifetime (if one is configured) or, when a key
    creates it, with that key. Without a rate limit it gets the default (or the acting key's, if lower).
    """
    now = timezone.now()
    networks = _normalized_networks(allowed_networks or [])
    if expires_at is None:
        expires_at = _earliest_end(now=now, acting_key=acting_key)
    if rate_limit_per_minute is None:
        rate_limit_per_minute = settings.APIKEYS_DEFAULT_RATE_LIMIT
        if acting_key is not None:
            rate_limit_per_minute = min(rate_limit_per_minute, acting_key.rate_limit_per_minute)
    api_key_check_expiry(expires_at=expires_at, created_at=now, now=now)
    key, raw = _new_key(
        actor=actor,
        now=now,
        acting_key=acting_key,
        name=name,
        description=description,
        scopes=list(scopes),
        expires_at=expires_at,
        allowed_networks=networks,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    logger.info("API key %s created by %s", key.identifier, _describe(actor))
    return key, raw


@transaction.atomic
def api_key_update(
    *,
    key: ApiKey,
    actor: Actor,
    acting_key: ApiKey | None = None,
    name=_UNSET,
    description=_UNSET,
    scopes=_UNSET,
    expires_at=_UNSET,
    allowed_networks=_UNSET,
    rate_limit_per_minute=_UNSET,
) -> ApiKey:
    """Change a key's settings (only those passed). Revoked and rotated keys cannot be changed."""
    key = _lock_changeable(
        key,
        acting_key,
        revoked="A revoked API key cannot be changed.",
        rotated="This API key was rotated; change the key that replaced it.",
    )
    now = timezone.now()
    changes = {
        "name": name,
        "description": description,
        "scopes": scopes if scopes is _UNSET else list(scopes),
        "allowed_networks": allowed_networks if allowed_networks is _UNSET else _normalized_networks(allowed_networks),
        "rate_limit_per_minute": rate_limit_per_minute,
        "expires_at": expires_at,
    }
    changes = {field: value for field, value in changes.items() if value is not _UNSET}
    if "expires_at" in changes and changes["expires_at"] != key.expires_at:
        api_key_check_expiry(expires_at=changes["expires_at"], created_at=key.created_at, now=now)
        key.expiry_notified_at = None  # a new expiry date deserves its own notice
    for field, value in changes.items():
        setattr(key, field, value)
    _check_within(acting_key, key)
    _save_validated(key)
    transaction.on_commit(lambda: key_publish(key))
    logger.info("API key %s changed by %s (%s)", key.identifier, _describe(actor), ", ".join(sorted(changes)))
    return key


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor, acting_key: ApiKey | None = None) -> ApiKey:
    """Revoke a key at once (every process refuses it from the next request). Revoking twice changes nothing."""
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is not None:
        return key
    _check_within(acting_key, key, message=_NOT_MANAGEABLE)
    key.revoked_at = timezone.now()
    revoked_by = actor.as_fields("revoked_by")
    for field, value in revoked_by.items():
        setattr(key, field, value)
    key.save(update_fields=["revoked_at", *revoked_by, "updated_at"])
    transaction.on_commit(lambda: key_publish(key))
    logger.info("API key %s revoked by %s", key.identifier, _describe(actor))
    return key


@transaction.atomic
def api_key_rotate(
    *, key: ApiKey, actor: Actor, acting_key: ApiKey | None = None, grace_period: timedelta = timedelta(0)
) -> tuple[ApiKey, str]:
    """Replace a key with a new one of the same name, scopes and limits; the old key works for `grace_period`.

    The new key gets the old key's lifetime counted from now (within the maximum lifetime and, when a key
    rotates, the acting key's own expiry). Returns the new row and the new key, to be shown once.
    """
    if not timedelta(0) <= grace_period <= MAX_GRACE_PERIOD:
        raise _fields_error("grace_period", "Must be between 0 and 7 days.")
    old = _lock_changeable(
        key,
        acting_key,
        revoked="A revoked API key cannot be rotated.",
        rotated="This API key was already rotated; rotate the key that replaced it.",
    )
    now = timezone.now()
    same_lifetime = now + (old.expires_at - old.created_at) if old.expires_at is not None else None
    expires_at = _earliest_end(now=now, acting_key=acting_key, wanted=same_lifetime)
    new, raw = _new_key(
        actor=actor,
        now=now,
        name=old.name,
        description=old.description,
        scopes=list(old.scopes),
        expires_at=expires_at,
        allowed_networks=list(old.allowed_networks),
        rate_limit_per_minute=old.rate_limit_per_minute,
        replaces=old,
    )
    old.grace_ends_at = now + grace_period
    old.save(update_fields=["grace_ends_at", "updated_at"])
    transaction.on_commit(lambda: key_publish(old))
    logger.info(
        "API key %s rotated to %s by %s, grace %ss",
        old.identifier,
        new.identifier,
        _describe(actor),
        int(grace_period.total_seconds()),
    )
    return new, raw

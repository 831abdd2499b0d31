"""API keys for integrators and scripts, and their daily usage.

A key row never holds the key: only its public id (to find the row) and an HMAC of the whole key (to verify
it). Who created or revoked a key is stored as actor columns (`jewelia.core.actors.Actor`): a staff user, the
key that did it through the API, or the system (management commands).
"""

import ipaddress
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from jewelia.core.actors import Actor

from . import tokens
from .scopes import SCOPES


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRING = "expiring", "Expiring soon"
    GRACE_PERIOD = "grace_period", "In grace period"
    ROTATED = "rotated", "Rotated"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


USABLE_STATUSES = frozenset({KeyStatus.ACTIVE, KeyStatus.EXPIRING, KeyStatus.GRACE_PERIOD})


def validate_scopes(value) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give at least one scope, as a list of names.", code="invalid")
    unknown = sorted(set(value) - set(SCOPES))
    if unknown:
        raise ValidationError("Unknown scopes: %(unknown)s.", code="unknown_scope", params={"unknown": unknown})
    if len(set(value)) != len(value):
        raise ValidationError("Scopes are listed more than once.", code="duplicate")


def validate_networks(value) -> None:
    if not isinstance(value, list):
        raise ValidationError("Give a list of IP networks.", code="invalid")
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            raise ValidationError(
                "%(item)s is not an IP network.", code="invalid_network", params={"item": item}
            ) from None


@lru_cache(maxsize=1024)
def _parsed_networks(networks: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(item, strict=False) for item in networks)


class ApiKey(models.Model):
    """An API key's identity, permissions and limits; the key itself is shown once and never stored."""

    public_id = models.CharField(max_length=tokens.PUBLIC_ID_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="", max_length=500)
    scopes = models.JSONField(default=list, validators=[validate_scopes])
    allowed_networks = models.JSONField(
        default=list, blank=True, validators=[validate_networks], help_text="Empty: any address."
    )
    rate_limit_per_minute = models.PositiveIntegerField()

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    created_by_type = models.CharField(max_length=20, editable=False)
    created_by_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    created_by_label = models.CharField(max_length=200, blank=True, default="", editable=False)

    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_notified_at = models.DateTimeField(null=True, blank=True, editable=False)

    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by_type = models.CharField(max_length=20, blank=True, default="", editable=False)
    revoked_by_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    revoked_by_label = models.CharField(max_length=200, blank=True, default="", editable=False)

    # Rotation: the new key points at the key it replaced; the old key keeps working until grace_ends_at.
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by", editable=False
    )
    grace_ends_at = models.DateTimeField(null=True, blank=True, editable=False)

    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["expires_at"], name="apikeys_expires_at_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(rate_limit_per_minute__gte=1), name="apikeys_rate_limit_gte_1"),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=models.F("created_at")),
                name="apikeys_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"

    @property
    def identifier(self) -> str:
        return tokens.display_prefix(self.public_id)

    def as_actor(self) -> Actor:
        return Actor("api_key", str(self.pk), self.name)

    @property
    def created_by(self) -> Actor:
        return Actor(self.created_by_type, self.created_by_id, self.created_by_label)

    @property
    def revoked_by(self) -> Actor | None:
        return Actor(self.revoked_by_type, self.revoked_by_id, self.revoked_by_label) if self.revoked_at else None

    @property
    def usable_until(self) -> datetime | None:
        """When the key stops working on its own: its expiry or the end of its grace period, whichever is first."""
        ends = [moment for moment in (self.expires_at, self.grace_ends_at) if moment is not None]
        return min(ends) if ends else None

    def status_at(self, now: datetime) -> KeyStatus:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyStatus.EXPIRED
        if self.grace_ends_at is not None:
            return KeyStatus.GRACE_PERIOD if now < self.grace_ends_at else KeyStatus.ROTATED
        notice = timedelta(days=settings.APIKEYS_EXPIRY_NOTICE_DAYS)
        if self.expires_at is not None and self.expires_at <= now + notice:
            return KeyStatus.EXPIRING
        return KeyStatus.ACTIVE

    @property
    def status(self) -> KeyStatus:
        return self.status_at(timezone.now())

    def allows_ip(self, address: str | None) -> bool:
        if not self.allowed_networks:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in _parsed_networks(tuple(self.allowed_networks)))


class ApiKeyUsage(models.Model):
    """Requests and errors (4xx/5xx) of one key on one UTC day, added to by the periodic usage flush."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    date = models.DateField()
    request_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "API key usage"
        verbose_name_plural = "API key usage"
        ordering = ("-date",)
        constraints = [models.UniqueConstraint(fields=["api_key", "date"], name="apikeys_usage_one_row_per_day")]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.date}: {self.request_count} requests, {self.error_count} errors"

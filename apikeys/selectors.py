"""Reads of API keys and their usage."""

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import ApiKey, ApiKeyUsage, KeyStatus


def api_key_status_q(*, status: KeyStatus, now: datetime) -> Q:
    """The rows whose `ApiKey.status_at(now)` is `status`, as a filter (the same precedence, in SQL)."""
    live = Q(revoked_at__isnull=True)
    not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    notice_end = now + timedelta(days=settings.APIKEYS_EXPIRY_NOTICE_DAYS)
    never_rotated = Q(grace_ends_at__isnull=True)
    return {
        KeyStatus.REVOKED: ~live,
        KeyStatus.EXPIRED: live & Q(expires_at__lte=now),
        KeyStatus.GRACE_PERIOD: live & not_expired & Q(grace_ends_at__gt=now),
        KeyStatus.ROTATED: live & not_expired & Q(grace_ends_at__lte=now),
        KeyStatus.EXPIRING: live & never_rotated & Q(expires_at__gt=now, expires_at__lte=notice_end),
        KeyStatus.ACTIVE: live & never_rotated & (Q(expires_at__isnull=True) | Q(expires_at__gt=notice_end)),
    }[status]


def api_key_list(
    *, status: KeyStatus | None = None, expiring_within: timedelta | None = None, now: datetime | None = None
) -> QuerySet[ApiKey]:
    """Keys, newest first; `expiring_within` keeps working keys (not rotated) that expire within that time."""
    now = now or timezone.now()
    keys = ApiKey.objects.all()
    if status is not None:
        keys = keys.filter(api_key_status_q(status=status, now=now))
    if expiring_within is not None:
        keys = keys.filter(
            revoked_at__isnull=True,
            grace_ends_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=now + expiring_within,
        )
    return keys


def api_key_with_requests_today(keys: QuerySet[ApiKey], *, today: date | None = None) -> QuerySet[ApiKey]:
    """Annotate `requests_today` (flushed counts) with one subquery instead of a query per key."""
    today = today or timezone.now().date()
    todays = ApiKeyUsage.objects.filter(api_key=OuterRef("pk"), date=today).values("request_count")[:1]
    return keys.annotate(requests_today=Coalesce(Subquery(todays, output_field=IntegerField()), Value(0)))


def api_key_usage_daily(*, key: ApiKey, days: int, today: date | None = None) -> list[dict]:
    """One entry per UTC day, oldest first, for the last `days` days including today (zeros where unused)."""
    today = today or timezone.now().date()
    first = today - timedelta(days=days - 1)
    rows = {row.date: row for row in ApiKeyUsage.objects.filter(api_key=key, date__gte=first, date__lte=today)}
    daily = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day)
        daily.append(
            {"date": day, "requests": row.request_count if row else 0, "errors": row.error_count if row else 0}
        )
    return daily


def api_key_usage_summary(*, key: ApiKey, days: int = 30, today: date | None = None) -> dict:
    """Totals for today and the last `days` days, with when and from where the key was last used."""
    today = today or timezone.now().date()
    recent = ApiKeyUsage.objects.filter(api_key=key, date__gt=today - timedelta(days=days), date__lte=today)
    totals = recent.aggregate(requests=Coalesce(Sum("request_count"), 0), errors=Coalesce(Sum("error_count"), 0))
    todays: Mapping[str, Any] = recent.filter(date=today).values("request_count", "error_count").first() or {}
    return {
        "requests_today": todays.get("request_count", 0),
        "errors_today": todays.get("error_count", 0),
        f"requests_last_{days}_days": totals["requests"],
        f"errors_last_{days}_days": totals["errors"],
        "last_used_at": key.last_used_at,
        "last_used_ip": key.last_used_ip,
    }

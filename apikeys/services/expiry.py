"""Telling staff, once per key, that keys are about to expire."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.selectors import api_key_list

logger = logging.getLogger(__name__)


def _notice_recipients() -> list[str]:
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    emails = [email for _, email in settings.ADMINS] + list(staff.values_list("email", flat=True))
    return sorted({email.strip().lower() for email in emails if email.strip()})


def api_key_expiry_notify() -> int:
    """Mail staff once about keys expiring within APIKEYS_EXPIRY_NOTICE_DAYS; returns how many keys were named.

    Keys are marked in the same transaction, after the mail went out: a failed send leaves them for the next run.
    """
    now = timezone.now()
    within = timedelta(days=settings.APIKEYS_EXPIRY_NOTICE_DAYS)
    with transaction.atomic():
        keys = list(
            api_key_list(expiring_within=within, now=now)
            .filter(expiry_notified_at__isnull=True)
            .order_by("expires_at", "pk")
            .select_for_update(skip_locked=True)
        )
        if not keys:
            return 0
        recipients = _notice_recipients()
        if not recipients:
            logger.warning("%d API keys expire soon but no ADMINS or staff e-mail is configured", len(keys))
            return 0
        lines = [
            f"- {key.name} ({key.identifier}), expires {key.expires_at:%Y-%m-%d %H:%M} UTC: "
            f"{settings.SITE_URL}/admin/apikeys/apikey/{key.pk}/change/"
            for key in keys
        ]
        send_mail(
            subject=f"[Jewelia] {len(keys)} API key(s) expire within {within.days} days",
            message=(
                "These API keys stop working soon. Rotate them (admin action or POST /api/api-keys/<id>/rotate) and "
                "give the integrators their new keys, or let them expire.\n\n" + "\n".join(lines) + "\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
        ApiKey.objects.filter(pk__in=[key.pk for key in keys]).update(expiry_notified_at=now)
    return len(keys)

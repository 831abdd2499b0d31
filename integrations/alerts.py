"""Alerts on a change of an integration's health: mail to ADMINS, a log line, and an optional webhook.

The webhook receives a JSON event signed in the Standard Webhooks format (standardwebhooks.com): headers
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}`, keyed with the base64 part of a `whsec_...` secret. Any Standard Webhooks library
verifies it. The URL is user-supplied, so it passes the same host check as provider base URLs (rule 10).

`refresh_token_expiry_alert_send` warns that an OAuth grant runs out soon (`integrations.oauth`); an alert about
a disconnected OAuth integration carries its reconnect link.

Callers guarantee "once per change" (`integrations.health.integration_health_refresh` compares under a row
lock); this module only delivers. A failed delivery is logged, never raised: an alert must not break a sync.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import requests
from django.conf import settings
from django.core.mail import mail_admins

if TYPE_CHECKING:
    from integrations.health import HealthReport
    from integrations.models import Integration

logger = logging.getLogger("jewelia.integrations.alerts")

WEBHOOK_TIMEOUT_SECONDS = 5


def standard_webhook_headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }


def admin_url(integration: Integration) -> str:
    return f"{settings.SITE_URL}/admin/integrations/integration/{integration.pk}/change/"


def reconnect_url(integration: Integration) -> str:
    """Where staff reconnect an OAuth integration: the admin page that starts the connect flow again."""
    return f"{settings.SITE_URL}/admin/integrations/integration/{integration.pk}/oauth/connect/"


def _uses_oauth(integration: Integration) -> bool:
    from integrations.providers.base import AuthKind

    try:
        return integration.provider_impl.auth_kind == AuthKind.OAUTH2
    except (KeyError, LookupError):
        return False


def health_event(*, integration: Integration, previous: str, report: HealthReport) -> dict:
    data = {
        "integration_id": str(integration.pk),
        "name": integration.name,
        "provider": integration.provider,
        "previous_status": previous,
        "status": report.status,
        "reason": report.reason,
        "details": report.details,
        "url": admin_url(integration),
    }
    if report.status == "disconnected" and _uses_oauth(integration):
        data["reconnect_url"] = reconnect_url(integration)
    return {"type": "integration.health_changed", "timestamp": int(time.time()), "data": data}


def _webhook_send(event: dict) -> None:
    url, secret = settings.INTEGRATIONS_ALERT_WEBHOOK_URL, settings.INTEGRATIONS_ALERT_WEBHOOK_SECRET
    if not url:
        return
    from integrations.urlsafety import check_base_url

    try:
        check_base_url(url)
    except Exception as exc:
        logger.error("alert webhook URL refused: %s", exc)
        return
    body = json.dumps(event, separators=(",", ":"), default=str).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = (
        standard_webhook_headers(secret=secret, msg_id=msg_id, timestamp=event["timestamp"], body=body)
        if secret
        else {"Content-Type": "application/json", "webhook-id": msg_id}
    )
    try:
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS)
        if response.status_code >= 300:
            logger.error("alert webhook answered %s for %s", response.status_code, msg_id)
    except requests.RequestException as exc:
        logger.error("alert webhook delivery failed for %s: %s", msg_id, type(exc).__name__)


def health_alert_send(*, integration: Integration, previous: str, report: HealthReport) -> None:
    """Deliver one health-change alert on every channel."""
    event = health_event(integration=integration, previous=previous, report=report)
    line = f"Integration '{integration.name}' ({integration.provider}) health {previous} -> {report.status}: "
    line += report.reason
    log = logger.info if report.status == "healthy" else logger.warning
    log("%s [integration %s]", line, integration.pk)
    links = event["data"]["url"]
    if event["data"].get("reconnect_url"):
        links = f"Reconnect: {event['data']['reconnect_url']}\n{links}"
    _mail(subject=f"Integration {integration.name}: {report.status}", message=f"{line}\n\n{links}\n")
    _webhook_send(event)


def refresh_token_expiry_alert_send(*, integration: Integration, expires_at: datetime, now: datetime) -> None:
    """Warn that the integration's OAuth refresh token expires soon (once per token; the caller claims it)."""
    days = max(0, math.ceil((expires_at - now).total_seconds() / 86400))
    when = "has expired" if expires_at <= now else f"expires in {days} days ({expires_at:%Y-%m-%d %H:%M} UTC)"
    line = f"Integration '{integration.name}' ({integration.provider}): its OAuth authorization {when}; reconnect it"
    logger.warning("%s [integration %s]", line, integration.pk)
    event = {
        "type": "integration.refresh_token_expiring",
        "timestamp": int(time.time()),
        "data": {
            "integration_id": str(integration.pk),
            "name": integration.name,
            "provider": integration.provider,
            "refresh_token_expires_at": expires_at.isoformat(),
            "url": admin_url(integration),
            "reconnect_url": reconnect_url(integration),
        },
    }
    _mail(
        subject=f"Integration {integration.name}: reconnect before {expires_at:%Y-%m-%d}",
        message=f"{line}.\n\nReconnect: {reconnect_url(integration)}\n",
    )
    _webhook_send(event)


def _mail(*, subject: str, message: str) -> None:
    try:
        mail_admins(subject=subject, message=message, fail_silently=False)
    except Exception as exc:
        logger.error("alert mail failed: %s", type(exc).__name__)

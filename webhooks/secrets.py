"""Where webhook secrets live and which of them verify a delivery right now.

Webhook signing secrets are provider credentials (DESIGN.md rule 5): they are kept in the integration's
encrypted credentials, under these keys, so they share its encryption at rest, key rotation, write-only API
field and admin masking:

- `webhook_secret`: the current secret (Stripe `whsec_...`, the Shopify app client secret or admin signing key);
- `webhook_secret_previous` and `webhook_secret_rotated_at` (ISO 8601): the secret it replaced and when. The
  previous secret also verifies deliveries for `WEBHOOKS_SECRET_ROTATION_HOURS` after the rotation, because
  Shopify keeps signing with the old client secret for up to an hour (shopify.md §6). Stripe needs no window:
  while a rolled secret is valid it signs with both (several `v1` entries).

No secret means no verification is possible, and the receiver refuses every delivery (fail closed); health
reports it through `webhook_secret_configured`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

SECRET = "webhook_secret"
PREVIOUS = "webhook_secret_previous"
ROTATED_AT = "webhook_secret_rotated_at"
MIN_SECRET_LENGTH = 8  # shorter is a typo, not a provider's signing secret


def secrets_from_credentials(credentials: dict[str, Any], *, now: datetime) -> list[str]:
    """The secrets a delivery may be signed with at `now`: the current one first, then the previous one while
    it is inside its rotation window. Empty when none is configured."""
    current = credentials.get(SECRET)
    result = [current] if isinstance(current, str) and current else []
    until = previous_secret_valid_until(credentials)
    if until is not None and now <= until:
        result.append(credentials[PREVIOUS])
    return result


def previous_secret_valid_until(credentials: dict[str, Any]) -> datetime | None:
    """When the secret the current one replaced stops verifying deliveries (rotated at +
    `WEBHOOKS_SECRET_ROTATION_HOURS`); None when there is no such secret, or no valid rotation time."""
    previous = credentials.get(PREVIOUS)
    if not (isinstance(previous, str) and previous and previous != credentials.get(SECRET)):
        return None
    rotated_at = _parse_time(credentials.get(ROTATED_AT))
    if rotated_at is None:
        return None
    return rotated_at + timedelta(hours=settings.WEBHOOKS_SECRET_ROTATION_HOURS)


def credentials_with_secret(credentials: dict[str, Any], *, secret: str, now: datetime) -> dict[str, Any]:
    """A copy of `credentials` with `secret` as the current webhook secret; the one it replaces is kept as the
    previous secret for the rotation window. Setting the same secret again changes nothing."""
    updated = dict(credentials)
    current = updated.get(SECRET)
    if current == secret:
        return updated
    updated[SECRET] = secret
    if current:
        updated[PREVIOUS] = current
        updated[ROTATED_AT] = now.isoformat()
    return updated


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None

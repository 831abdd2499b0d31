"""Reads on the outbox for the API and admin."""

from __future__ import annotations

from django.db.models import QuerySet

from integrations.models import Integration, OutboxEntry, OutboxStatus
from jewelia.core.exceptions import ValidationFailed


def outbox_list(
    *, integration: Integration, status: str | None = None, resource: str | None = None
) -> QuerySet[OutboxEntry]:
    """The integration's outbox entries, newest first, optionally of one status and resource."""
    entries = OutboxEntry.objects.filter(integration=integration).select_related("content_type")
    if status:
        if status not in OutboxStatus.values:
            choices = ", ".join(OutboxStatus.values)
            raise ValidationFailed(details={"fields": {"status": [f"Choose one of: {choices}."]}})
        entries = entries.filter(status=status)
    if resource:
        entries = entries.filter(resource=resource)
    return entries.order_by("-created_at", "-id")

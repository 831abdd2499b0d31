"""Reads on integrations for the API, admin and commands."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from integrations.models import IdentityMapping, Integration, RecordFailure, SyncRun


def provider_list() -> list[dict[str, Any]]:
    """Every registered provider as the API shows it: identity, category, capabilities, schemas, resources."""
    from integrations.providers import registry

    return [provider_describe(provider=provider) for provider in registry.all_providers()]


def provider_describe(*, provider) -> dict[str, Any]:
    rate_limit = provider.rate_limit
    return {
        "key": provider.key,
        "name": provider.name,
        "category": str(provider.category),
        "auth_kind": str(provider.auth_kind),
        "capabilities": sorted(str(c) for c in provider.capabilities),
        "config_schema": provider.config_schema,
        "credentials_schema": provider.credentials_schema,
        "resources": [
            {
                "name": r.name,
                "kind": str(r.kind),
                "direction": str(r.direction),
                "cursor_style": str(r.cursor_style),
                "depends_on": list(r.depends_on),
            }
            for r in provider.resources
        ],
        "rate_limit": (
            {"requests": rate_limit.requests, "per_seconds": rate_limit.per_seconds} if rate_limit else None
        ),
        "docs_url": provider.docs_url,
    }


def integration_list() -> QuerySet[Integration]:
    return Integration.objects.all().order_by("name", "id")


def run_list(*, integration: Integration) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(integration=integration).order_by("-created_at", "-id")


def identity_list(*, integration: Integration, resource: str | None = None) -> QuerySet[IdentityMapping]:
    mappings = IdentityMapping.objects.filter(integration=integration).select_related("content_type")
    if resource:
        mappings = mappings.filter(resource=resource)
    return mappings.order_by("resource", "external_id")


def failure_list(
    *, integration: Integration, resource: str | None = None, state: str = "open"
) -> QuerySet[RecordFailure]:
    failures = RecordFailure.objects.filter(integration=integration).defer("payload")
    if resource:
        failures = failures.filter(resource=resource)
    if state == "open":
        failures = failures.filter(resolved_at__isnull=True)
    elif state == "resolved":
        failures = failures.filter(resolved_at__isnull=False)
    return failures.order_by("-last_failed_at", "-id")

"""Push rules: which local events push to which provider resource, validated against what the provider can push.

A rule is (event, resource, channels, options). Its resource must be one of the provider's push resources
(`Provider.push_resources()`: direction push or both, with the push capability declared) of the kind the event is
about (order events push orders, customer events customers). `channels` narrows order events to sales channels;
`options` are provider settings for this push, each a key of the provider's config schema and valid for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema
from django.core.exceptions import ValidationError

from integrations.models import PushEvent
from integrations.providers.base import Provider, RecordKind

EVENT_KINDS: dict[str, RecordKind] = {
    PushEvent.ORDER_PLACED: RecordKind.ORDER,
    PushEvent.ORDER_PAID: RecordKind.ORDER,
    PushEvent.ORDER_COMPLETED: RecordKind.ORDER,
    PushEvent.CUSTOMER_CREATED: RecordKind.CUSTOMER,
    PushEvent.CUSTOMER_UPDATED: RecordKind.CUSTOMER,
}


def push_targets(provider: Provider) -> dict[str, list[str]]:
    """Per event: the provider resources a rule for it may push to (empty lists for kinds it cannot push)."""
    resources = provider.push_resources()
    return {event: [r.name for r in resources if r.kind == kind] for event, kind in EVENT_KINDS.items()}


def push_rule_validate(*, provider: Provider, event: str, resource: str, channels: Any, options: Any) -> None:
    """Raise a `ValidationError` (per field) unless the rule is one the provider can carry out."""
    from orders.models import Channel

    errors: dict[str, list[str]] = {}
    if event not in EVENT_KINDS:
        errors["event"] = [f"Unknown event '{event}'. Choose one of: {', '.join(EVENT_KINDS)}."]
    else:
        allowed = push_targets(provider)[event]
        if resource not in allowed:
            choice = f"Choose one of: {', '.join(allowed)}." if allowed else "It cannot push that kind of object."
            errors["resource"] = [f"{provider.name} cannot push '{resource}' for {event}. {choice}"]
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        errors["channels"] = ["Send a list of sales channels."]
    elif channels:
        if EVENT_KINDS.get(event) != RecordKind.ORDER:
            errors["channels"] = ["Only order events can be narrowed to sales channels."]
        unknown = sorted(set(channels) - set(Channel.values))
        if unknown:
            errors.setdefault("channels", []).append(
                f"Unknown channels: {', '.join(unknown)}. Choose from: {', '.join(Channel.values)}."
            )
    if not isinstance(options, dict):
        errors["options"] = ["Send an object of provider settings."]
    else:
        properties = (provider.config_schema or {}).get("properties", {})
        unknown = sorted(set(options) - set(properties))
        if unknown:
            errors["options"] = [f"Unknown settings for {provider.name}: {', '.join(unknown)}."]
        else:
            schema = {"type": "object", "properties": properties, "additionalProperties": False}
            try:
                jsonschema.validate(options, schema)
            except jsonschema.ValidationError as exc:
                path = ".".join(str(part) for part in exc.absolute_path) or "options"
                errors["options"] = [f"{path}: {exc.message}"]
    if errors:
        raise ValidationError(errors)


def rule_matches(rule: Any, obj: Any) -> bool:
    """Whether an enabled rule applies to this object (a channel filter on orders)."""
    channels: Iterable[str] = rule.channels or ()
    return not channels or getattr(obj, "channel", None) in channels

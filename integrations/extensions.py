"""Extension points for the apps built on integrations (webhooks today), so integrations never imports them.

Each app registers its functions in its `AppConfig.ready()`; integrations calls whatever is registered:

- `health_sources`: `fn(*, integration, now) -> (name, figures)` adds figures to an integration's health
  and may make it degraded (`figures["problem"]`, a sentence, when something needs a person) or add a remark
  to the reason without changing the status (`figures["note"]`);
- `retention_jobs`: `fn() -> dict[str, int]` deletes what is past retention (the `cleanup` command and task);
- `on_resumed`: `fn(*, integration) -> None` runs when a paused integration becomes active again;
- `kept_credential_keys`: keys of the encrypted credentials that another app manages through its own endpoint
  (the webhook signing secret): replacing an integration's credentials keeps them unless it sets them itself;
- `admin_summaries`: `fn(*, integration, request) -> (label, html) | None` adds a line to the integration's admin
  page (the webhook URL to enter in the provider's dashboard); `html` must be built with `format_html`.
"""

from collections.abc import Callable
from typing import Any

health_sources: list[Callable[..., tuple[str, dict[str, Any]]]] = []
retention_jobs: list[Callable[[], dict[str, int]]] = []
on_resumed: list[Callable[..., None]] = []
kept_credential_keys: set[str] = set()
admin_summaries: list[Callable[..., tuple[str, str] | None]] = []


def register(registry: list, fn: Callable) -> None:
    """Add `fn` once (ready() can run more than once in tests)."""
    if fn not in registry:
        registry.append(fn)

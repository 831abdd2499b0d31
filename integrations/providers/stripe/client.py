"""The Stripe API client: the shared HTTP layer plus Stripe's headers, retry rules, lists and idempotent writes.

Per `shared/providers/stripe.md` §2-§5:

- `Authorization: Bearer <secret or restricted key>` and a pinned `Stripe-Version`, so payloads keep the shape
  the mappers were written for whatever the account's default version is;
- list endpoints return `{"object": "list", "data": [...], "has_more": ..., "url": ...}` newest first; the
  next page repeats the request with `starting_after=<last id>`;
- `Stripe-Should-Retry: true|false`, when present, decides whether a failed call is retried (as stripe-python
  does); without it 409 (a lock conflict) is retried as well as the shared layer's 429/5xx/timeouts;
- backoff doubles from 0.5 s and is capped at 5 s (stripe-python's numbers);
- every POST carries an `Idempotency-Key`, so the shared layer's retries of a write never charge or refund
  twice (Stripe replays the first response for a key it has seen).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import requests

from integrations.errors import TransientError
from integrations.http import HttpResponse, ProviderHttpClient, RetryPolicy
from integrations.providers.base import Connection, RateLimit

API_VERSION = "2024-06-20"
DEFAULT_BASE_URL = "https://api.stripe.com"
MAX_LIMIT = 100

# Stripe's basic limiter (sheet §5): 100 operations/s in live mode, 25/s in test mode; the key says which.
LIVE_RATE_LIMIT = RateLimit(requests=100, per_seconds=1.0)
TEST_RATE_LIMIT = RateLimit(requests=25, per_seconds=1.0)


def is_live_key(api_key: str) -> bool:
    return api_key.startswith(("sk_live_", "rk_live_"))


def should_retry(response: requests.Response) -> bool | None:
    """Stripe's retry rule for a failed response, for the shared layer's `should_retry` hook."""
    header = (response.headers.get("Stripe-Should-Retry") or "").strip().lower()
    if header == "true":
        return True
    if header == "false":
        return False
    if response.status_code == 409:
        return True
    return None


def form_encode(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's bracketed form encoding: {"created": {"gte": 1}, "expand": ["a"]} -> created[gte]=1, expand[]=a."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(form_encode(value, name))
        elif isinstance(value, list | tuple):
            pairs.extend((f"{name}[]", _scalar(item)) for item in value)
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class StripeClient(ProviderHttpClient):
    """`ProviderHttpClient` for one Stripe integration, with Stripe's list, retrieve and create calls."""

    def __init__(self, connection: Connection):
        api_key = str(connection.credentials.get("api_key") or "")
        super().__init__(
            connection,
            auth_headers=lambda credentials: {"Authorization": f"Bearer {credentials.get('api_key', '')}"},
            rate_limit=LIVE_RATE_LIMIT if is_live_key(api_key) else TEST_RATE_LIMIT,
            default_headers={"Stripe-Version": API_VERSION},
            should_retry=should_retry,
            policy=replace(RetryPolicy.from_settings(), backoff_base=0.5, backoff_cap=5.0),
            name="stripe",
        )

    def list_page(
        self,
        path: str,
        *,
        limit: int = MAX_LIMIT,
        starting_after: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], HttpResponse]:
        """One page of a list endpoint: (the envelope, the response). Raises `TransientError` when the answer
        is not a list envelope (a proxy page, or a truncated answer that still parsed)."""
        query = {**(params or {}), "limit": min(max(limit, 1), MAX_LIMIT), "starting_after": starting_after}
        response = self.get(path, params=form_encode(query))
        envelope = response.data
        if (
            not isinstance(envelope, dict)
            or envelope.get("object") != "list"
            or not isinstance(envelope.get("data"), list)
            or not isinstance(envelope.get("has_more"), bool)
        ):
            raise TransientError(f"stripe: {path} did not answer with a list", status=response.status)
        return envelope, response

    def retrieve(
        self, resource: str, object_id: str, *, expand: Iterable[str] = ()
    ) -> tuple[dict[str, Any], HttpResponse]:
        """GET /v1/<resource>/<id> (e.g. `retrieve("charges", "ch_...", expand=["payment_intent"])`): (the
        object, the response)."""
        response = self.get(f"/v1/{resource}/{object_id}", params=form_encode({"expand": list(expand)}) or None)
        if not isinstance(response.data, dict) or not response.data.get("id"):
            raise TransientError(f"stripe: /v1/{resource}/{object_id} did not answer with an object")
        return response.data, response

    def create(self, path: str, params: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST a form-encoded write with an `Idempotency-Key` (a new UUID unless the caller gives one: give the
        same key when repeating a write after a crash, e.g. the outbox row's id). The shared layer's retries
        resend the same key, so Stripe applies the write once."""
        key = idempotency_key or str(uuid.uuid4())
        response: HttpResponse = self.post(path, data=form_encode(params), headers={"Idempotency-Key": key})
        return response.data

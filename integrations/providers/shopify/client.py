"""Shopify's REST Admin API on top of the shared HTTP layer: auth header, token grant, call-limit header,
Link-header pagination. See `shared/providers/shopify.md` sections 2-5.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from integrations.errors import AuthError, PermanentError
from integrations.http import HttpResponse, ProviderHttpClient
from integrations.providers.base import Connection, RateLimit

logger = logging.getLogger("integrations.providers.shopify")

API_VERSION = "2026-04"  # pinned; an integration may override it with config["api_version"]
ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
TOKEN_PATH = "/admin/oauth/access_token"
MAX_PAGE_SIZE = 250
# Standard plans leak 2 requests/s from a 40-request bucket per app and store (Advanced and Plus more: their
# bucket size comes in the header, and pausing for the standard leak rate is merely cautious there).
RATE_LIMIT = RateLimit(requests=2, per_seconds=1.0, burst=20)
LEAK_PER_SECOND = 2.0
CALL_LIMIT_HEADROOM = 0.8  # slow down once the shop's bucket is 80% full (other apps and webhooks share it)
# Tokens from the client-credentials grant are reported to last 24 hours (exact `expires_in` unconfirmed):
# assume that when the response omits it, and renew a few minutes early.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=24)
TOKEN_RENEW_MARGIN = timedelta(minutes=5)
# `inventory_item_ids` takes a comma list; Shopify's REST reference caps it at 50 ids per request (the fact
# sheet gives no figure, so this is kept as a constant in one place).
INVENTORY_ITEM_IDS_PER_REQUEST = 50


def call_limit_hint(response: requests.Response) -> float | None:
    """Seconds every worker should pause, from `X-Shopify-Shop-Api-Call-Limit: <used>/<bucket>`: enough for
    the bucket to leak back under the headroom mark. None while there is room (or without the header)."""
    value = response.headers.get(CALL_LIMIT_HEADER, "")
    used, sep, size = value.partition("/")
    try:
        used_calls, bucket = float(used), float(size)
    except ValueError:
        return None
    threshold = bucket * CALL_LIMIT_HEADROOM
    if not sep or bucket <= 0 or used_calls < threshold:
        return None
    return (used_calls - threshold + 1) / LEAK_PER_SECOND


def auth_headers(credentials: dict[str, Any]) -> dict[str, str]:
    token = credentials.get("access_token")
    return {ACCESS_TOKEN_HEADER: token} if token else {}


def uses_client_credentials(credentials: dict[str, Any]) -> bool:
    return bool(credentials.get("client_id") and credentials.get("client_secret"))


def needs_refresh(credentials: dict[str, Any]) -> bool:
    """A client-credentials integration needs a token before its first call and shortly before expiry. A
    static custom-app token never does (it lasts until the app is uninstalled)."""
    if not uses_client_credentials(credentials):
        return False
    if not credentials.get("access_token"):
        return True
    try:
        expires_at = datetime.fromisoformat(credentials.get("expires_at") or "")
    except ValueError:
        return True
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at - TOKEN_RENEW_MARGIN <= datetime.now(UTC)


def http_client(connection: Connection) -> ProviderHttpClient:
    return ProviderHttpClient(
        connection,
        auth_headers=auth_headers,
        needs_refresh=needs_refresh,
        rate_limit=RATE_LIMIT,
        rate_limit_hint=call_limit_hint,
        secret_headers=(ACCESS_TOKEN_HEADER,),
        name="shopify",
    )


def request_token(connection: Connection) -> dict[str, Any]:
    """The client-credentials grant: a fresh access token for an app installed on the merchant's own store.

    Returns the credentials to store from now on (client id and secret kept, token and its expiry replaced).
    A refused grant (any 4xx) is an `AuthError`: retrying with the same client secret cannot succeed.
    """
    credentials = connection.credentials
    # No rate limit on the token endpoint: it is not an Admin API call and does not drain the shop's bucket.
    http = ProviderHttpClient(connection, secret_headers=(ACCESS_TOKEN_HEADER,), name="shopify")
    form = {
        "grant_type": "client_credentials",
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
    }
    try:
        response = http.post(TOKEN_PATH, data=form, authenticate=False)
    except PermanentError as exc:
        raise AuthError(f"Shopify refused the client credentials ({exc.status})", status=exc.status) from None
    data = response.data if isinstance(response.data, dict) else {}
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("Shopify's token response carried no access_token", status=response.status)
    try:
        lifetime = timedelta(seconds=int(data["expires_in"]))
    except (KeyError, TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    issued = response.server_date or datetime.now(UTC)
    return {
        **credentials,
        "access_token": token,
        "expires_at": (issued + lifetime).isoformat(),
        "scope": str(data.get("scope", "")),
    }


class ShopifyApi:
    """REST Admin API calls for one integration (paths carry the pinned or configured API version)."""

    def __init__(self, connection: Connection, http: ProviderHttpClient):
        self.connection = connection
        self.http = http
        self.version = connection.config.get("api_version") or API_VERSION

    def path(self, resource: str) -> str:
        return f"/admin/api/{self.version}/{resource}.json"

    def get(self, url: str, params: dict[str, Any] | None = None) -> HttpResponse:
        return self.http.get(url, params=params)

    def envelope(self, response: HttpResponse, key: str) -> Any:
        """`{"orders": [...]}` -> the list (or object); a 2xx without it means the API changed under us."""
        data = response.data
        if not isinstance(data, dict) or key not in data:
            raise PermanentError(f"Shopify answered {response.url.split('?')[0]} without a {key!r} key")
        return data[key]

    def list_page(self, resource: str, *, next_url: str | None, params: dict[str, Any]) -> tuple[list, HttpResponse]:
        """One page of a list endpoint: the first page with filters, later pages by following `next` as-is
        (a `page_info` request must not repeat filters: Shopify answers 400)."""
        response = self.get(next_url) if next_url else self.get(self.path(resource), params=params)
        records = self.envelope(response, resource)
        if not isinstance(records, list):
            raise PermanentError(f"Shopify {resource} page is not a list")
        return records, response

    def follow(self, resource: str, params: dict[str, Any]) -> Iterator[dict]:
        """Every record of a (small) list, page after page."""
        next_url = None
        while True:
            records, response = self.list_page(resource, next_url=next_url, params=params)
            yield from records
            next_url = response.links.get("next")
            if not next_url:
                return

    def shop_currency(self) -> str:
        shop = self.envelope(self.get(self.path("shop")), "shop")
        return str(shop.get("currency", "")) if isinstance(shop, dict) else ""

    def inventory_levels(self, inventory_item_ids: list[int]) -> dict[int, list[dict]]:
        """Every location's level for these inventory items, grouped by item (all pages, 50 ids a request)."""
        levels: dict[int, list[dict]] = {}
        for start in range(0, len(inventory_item_ids), INVENTORY_ITEM_IDS_PER_REQUEST):
            chunk = inventory_item_ids[start : start + INVENTORY_ITEM_IDS_PER_REQUEST]
            params = {"inventory_item_ids": ",".join(str(i) for i in chunk), "limit": MAX_PAGE_SIZE}
            for level in self.follow("inventory_levels", params):
                if isinstance(level, dict) and "inventory_item_id" in level:
                    levels.setdefault(level["inventory_item_id"], []).append(level)
        return levels

    def record(self, resource: str, record_id: str, key: str) -> dict | None:
        """One record by id; None when Shopify no longer has it (404)."""
        if not str(record_id).isdigit():
            return None
        try:
            response = self.get(f"/admin/api/{self.version}/{resource}/{record_id}.json")
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        record = self.envelope(response, key)
        return record if isinstance(record, dict) else None

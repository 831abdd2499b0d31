"""Shopify (REST Admin API, pinned version) as a Jewelia provider. Facts: `shared/providers/shopify.md`.

Resources and how each is read:

- `customers`, `products`, `orders`: incremental by `updated_at_min`, 250 a page, following the `Link: rel=next`
  URL as-is (never repeating filters next to `page_info`). Orders are listed with `status=any`: the default
  (`open`) would silently drop closed and cancelled orders. The cursor saved after each page is
  `{"next_url": ..., "started_at": ...}`, so a crashed run resumes from the exact page it stopped at, with the
  filters it started with (they live inside Shopify's opaque `page_info`).
- The high watermark of a page is the newest `updated_at` on it, but never later than the moment the run
  started (the first response's `Date`, Shopify's own clock): list order is by id, so a record updated while
  the run pages through may already be behind us; capping the watermark makes the next run read it again.
- `inventory`: REST inventory levels can only be listed for given `inventory_item_ids` (or locations), and a
  SKU's stock is the sum of `available` over every location. So each page reads one page of products (only
  `id,variants`) and then every level of those variants' inventory items, 50 item ids per request, and emits
  one raw record per inventory item carrying all its levels. Filtering levels by `updated_at_min` would miss
  the unchanged locations of a changed item and break the sum, and a level change does not touch the
  product's `updated_at`; so inventory is read in full each run (`CursorStyle.FULL`) and the engine's content
  hash keeps unchanged SKUs from being rewritten.

Auth: either a static custom-app token (`access_token`) or the client-credentials grant (`client_id` +
`client_secret`), whose tokens last about 24 hours: a new one is requested before the first call, shortly
before expiry, and once on a 401 (`refresh_credentials`, called by the HTTP layer through the engine's lock).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from integrations.http import ProviderHttpClient
from integrations.providers.base import (
    AuthKind,
    Capability,
    Category,
    Connection,
    CursorStyle,
    InboundEvent,
    Page,
    Provider,
    RecordKind,
    Resource,
    WebhookOutcome,
)
from integrations.providers.shopify import client as shopify_client
from integrations.providers.shopify import mappers
from integrations.providers.shopify import webhooks as shopify_webhooks
from integrations.providers.shopify.client import API_VERSION, MAX_PAGE_SIZE, RATE_LIMIT, ShopifyApi
from integrations.records import Record

# Each list resource: (endpoint and envelope key, fixed first-page filters, mapper).
_LISTS: dict[str, tuple[str, dict[str, str], Callable[[dict[str, Any]], list[Any]]]] = {
    "customers": ("customers", {}, mappers.customer_records),
    "products": ("products", {}, mappers.product_records),
    "orders": ("orders", {"status": "any"}, mappers.order_records),
}


class ShopifyProvider(Provider):
    key = "shopify"
    name = "Shopify"
    category = Category.ECOMMERCE
    auth_kind = AuthKind.ACCESS_TOKEN
    capabilities = frozenset(
        {
            Capability.PULL_CUSTOMERS,
            Capability.PULL_PRODUCTS,
            Capability.PULL_INVENTORY,
            Capability.PULL_ORDERS,
            Capability.LIVE_CHECK,
            Capability.TOKEN_REFRESH,
            Capability.WEBHOOKS,
        }
    )
    default_base_url = "https://{shop}.myshopify.com"
    docs_url = "https://shopify.dev/docs/api/admin-rest"
    rate_limit = RATE_LIMIT
    config_schema = {
        "type": "object",
        "properties": {
            "shop": {
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
                "description": "The store's subdomain: 'jewelia-demo' for jewelia-demo.myshopify.com.",
            },
            "api_version": {
                "type": "string",
                "pattern": r"^(\d{4}-(01|04|07|10)|unstable)$",
                "description": f"REST Admin API version; defaults to the pinned {API_VERSION}.",
            },
            "base_url": {
                "type": "string",
                "description": "Only for a sandbox or proxy: replaces https://{shop}.myshopify.com (host allow-list).",
            },
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        },
        "required": ["shop"],
        "additionalProperties": False,
    }
    credentials_schema = {
        "type": "object",
        "properties": {
            "access_token": {"type": "string", "minLength": 1, "description": "A custom app's Admin API token."},
            "client_id": {"type": "string", "minLength": 1},
            "client_secret": {"type": "string", "minLength": 1},
            "expires_at": {"type": "string", "description": "Set by the client-credentials grant."},
            "scope": {"type": "string", "description": "Set by the client-credentials grant."},
        },
        "anyOf": [{"required": ["access_token"]}, {"required": ["client_id", "client_secret"]}],
        "additionalProperties": False,
    }
    resources = (
        Resource("customers", RecordKind.CUSTOMER),
        Resource("products", RecordKind.PRODUCT),
        Resource("inventory", RecordKind.INVENTORY, cursor_style=CursorStyle.FULL, depends_on=("products",)),
        Resource("orders", RecordKind.ORDER, depends_on=("customers", "products")),
    )

    # --- hooks ----------------------------------------------------------------------------------------------------
    def client(self, connection: Connection) -> ProviderHttpClient:
        return shopify_client.http_client(connection)

    def _api(self, connection: Connection) -> ShopifyApi:
        return ShopifyApi(connection, self.client(connection))

    def fetch_page(
        self, connection: Connection, resource: str, *, cursor: dict[str, Any], since: datetime | None
    ) -> Page:
        api = self._api(connection)
        page_size = int(connection.config.get("page_size") or MAX_PAGE_SIZE)
        if resource == "inventory":
            return self._inventory_page(api, cursor, page_size)
        if resource not in _LISTS:
            raise KeyError(resource)
        endpoint, fixed, _ = _LISTS[resource]
        params: dict[str, Any] = {**fixed, "limit": page_size}
        if since is not None:
            params["updated_at_min"] = _iso(since)
        records, response = api.list_page(endpoint, next_url=cursor.get("next_url"), params=params)
        started = cursor.get("started_at") or _iso(response.server_date or datetime.now(UTC))
        extra: dict[str, Any] = {}
        if resource == "products":
            extra["currency"] = cursor.get("currency") or api.shop_currency()
            for product in records:
                if isinstance(product, dict):
                    product[mappers.SHOP_CURRENCY_KEY] = extra["currency"]
        next_url = response.links.get("next")
        return Page(
            records=records,
            cursor={"next_url": next_url, "started_at": started, **extra} if next_url else {},
            done=next_url is None,
            high_watermark=_high_watermark(records, cap=datetime.fromisoformat(started)),
        )

    def _inventory_page(self, api: ShopifyApi, cursor: dict[str, Any], page_size: int) -> Page:
        params = {"limit": page_size, "fields": "id,variants"}
        products, response = api.list_page("products", next_url=cursor.get("next_url"), params=params)
        variants = [
            (product, variant)
            for product in products
            if isinstance(product, dict)
            for variant in product.get("variants") or []
            if isinstance(variant, dict) and variant.get("id") and variant.get("inventory_item_id")
        ]
        levels = api.inventory_levels([variant["inventory_item_id"] for _, variant in variants])
        records = [
            _inventory_raw(product, variant, levels.get(variant["inventory_item_id"], []))
            for product, variant in variants
        ]
        next_url = response.links.get("next")
        return Page(records=records, cursor={"next_url": next_url} if next_url else {}, done=next_url is None)

    def transform(self, resource: str, raw: dict[str, Any], connection: Connection) -> list[Record]:
        build = mappers.inventory_records if resource == "inventory" else _LISTS[resource][2]
        return mappers.guarded(resource, raw, build, external_id=self.external_id(resource, raw))

    def external_id(self, resource: str, raw: dict[str, Any]) -> str:
        key = "inventory_item_id" if resource == "inventory" else "id"
        return str(raw.get(key, "")) if isinstance(raw, dict) else ""

    def fetch_record(self, connection: Connection, resource: str, external_id: str) -> dict[str, Any] | None:
        if resource not in _LISTS:
            # Inventory is read in full on every run, so a failed stock record is retried by the next run (or by
            # re-transforming its stored payload); REST has no single "stock of one variant" read anyway.
            raise NotImplementedError(resource)
        api = self._api(connection)
        record = api.record(resource, external_id, resource[:-1])
        if record is not None and resource == "products":
            record[mappers.SHOP_CURRENCY_KEY] = api.shop_currency()
        return record

    def check_connection(self, connection: Connection) -> None:
        api = self._api(connection)
        api.envelope(api.get(api.path("shop")), "shop")

    # --- webhooks (`shopify/webhooks.py`) ------------------------------------------------------------------------
    def verify_webhook(self, *, headers: Mapping[str, str], body: bytes, secrets: list[str], now: datetime) -> None:
        shopify_webhooks.verify(headers=headers, body=body, secrets=secrets, now=now)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> InboundEvent:
        return shopify_webhooks.parse(headers=headers, body=body)

    def webhook_handlers(self) -> dict[str, Callable[[InboundEvent, Connection], WebhookOutcome]]:
        return shopify_webhooks.handlers(api_factory=self._api, external_id=self.external_id)

    def refresh_credentials(self, connection: Connection) -> dict[str, Any] | None:
        if not shopify_client.uses_client_credentials(connection.credentials):
            return None  # a static custom-app token cannot be renewed: a 401 means it was revoked
        credentials = shopify_client.request_token(connection)
        connection.save_credentials(credentials)
        return credentials


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _high_watermark(records: list, *, cap: datetime) -> datetime | None:
    newest = None
    for record in records:
        try:
            updated = datetime.fromisoformat(record["updated_at"])
        except (KeyError, TypeError, ValueError):
            continue  # the transform reports the bad record; it must not move the watermark
        if updated.tzinfo is not None and (newest is None or updated > newest):
            newest = updated
    return min(newest, cap) if newest is not None else None


def _inventory_raw(product: dict[str, Any], variant: dict[str, Any], levels: list[dict]) -> dict[str, Any]:
    """The raw record of the `inventory` resource: one inventory item with every location's level."""
    return {
        "inventory_item_id": variant["inventory_item_id"],
        "sku": variant.get("sku"),
        "variant_id": variant["id"],
        "product_id": product.get("id"),
        "inventory_levels": levels,
    }

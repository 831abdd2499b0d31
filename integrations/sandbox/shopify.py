"""A fake Shopify store that speaks the REST Admin API's real shape (per `shared/providers/shopify.md`).

What it implements, because the provider must cope with it:

- URLs `/admin/api/{version}/{resource}.json` and `/admin/oauth/access_token` (client-credentials grant);
- `X-Shopify-Access-Token` on every Admin API call (401 with Shopify's message otherwise; tokens from the
  grant expire after `token_expires_in` seconds);
- cursor pagination: `limit` (default 50, max 250), a `Link` header with opaque `page_info` for `next` and
  `previous`, and a 400 when a request with `page_info` repeats a filter;
- the `X-Shopify-Shop-Api-Call-Limit` leaky bucket (40 requests, leaking 2/s): 429 with `Retry-After` when
  exceeded; `rate_limit=False` switches both the header and the 429s off (the benchmark);
- `updated_at_min`/`updated_at_max` filters, `since_id`, `fields`, and orders' `status` (default `open`, or
  `closed`, `cancelled`, `any`);
- customers, products with variants, locations, inventory levels (which need `inventory_item_ids` or
  `location_ids`, at most 50 ids), orders with line items and inline refunds, shop.json.

Data is a deterministic jewelry store generated lazily from the record's index: 100,000 orders cost nothing
until a page of them is read, and filtering by `updated_at_min` is a binary search because generated
`updated_at` grows with the id. Tests change the store through `update_order`, `add_order`, `make_malformed`,
`set_inventory_level`, ... and inject transport faults through the `SandboxApp` methods (`rate_limit_next`,
`fail_next`, `unauthorized_next`, `malformed_next`, `slow_next`, `disconnect_next`).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from integrations.sandbox.server import THROTTLED, SandboxApp, SandboxRequest, SandboxResponse

API_VERSION = "2026-04"
DEMO_SHOP = "jewelia-demo"
DEMO_ACCESS_TOKEN = "shpat_sandbox_00000000000000000000000000000000"
DEMO_CLIENT_ID = "sandbox-client-id-0000000000000000"
DEMO_CLIENT_SECRET = "shpss_sandbox_client_secret_000000000000"
MAX_LIMIT = 250
DEFAULT_LIMIT = 50
MAX_INVENTORY_ITEM_IDS = 50

SHOP_TZ = timezone(timedelta(hours=-5))
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=SHOP_TZ)
ORDER_STEP = timedelta(minutes=5)  # two orders share each timestamp: same-timestamp pages are exercised

CUSTOMER_BASE_ID = 207119551
PRODUCT_BASE_ID = 632910392
VARIANT_BASE_ID = 39072856
INVENTORY_ITEM_BASE_ID = 808950810
ORDER_BASE_ID = 450789469
LINE_ITEM_BASE_ID = 466157049
REFUND_BASE_ID = 509562969
TRANSACTION_BASE_ID = 389404469
LOCATIONS = [
    {"id": 655441491, "name": "Fifth Avenue Boutique", "city": "New York", "country_code": "US"},
    {"id": 905684977, "name": "Workshop & Warehouse", "city": "Newark", "country_code": "US"},
    {"id": 487838322, "name": "Miami Pop-up", "city": "Miami", "country_code": "US"},
]

FIRST_NAMES = ["Bob", "Ada", "Grace", "Alan", "Marie", "Nikola", "Frida", "Pablo", "Coco", "Audrey", "Elsa", "Yves"]
LAST_NAMES = ["Norman", "Lovelace", "Hopper", "Turing", "Curie", "Tesla", "Kahlo", "Picasso", "Chanel", "Hepburn"]
CITIES = [
    ("Louisville", "Kentucky", "KY", "40202"),
    ("New York", "New York", "NY", "10001"),
    ("Chicago", "Illinois", "IL", "60601"),
    ("Austin", "Texas", "TX", "73301"),
]

# (product_type, title, SKU stem, metal, gemstone, base price, option name, [(option value, SKU code, price delta)])
# fmt: off
CATALOG = [
    ("Ring", "18k Solitaire Ring", "RING-18K-SOL", "18k Yellow Gold", "Diamond", "398.00", "Size",
     [("5", "5", "0"), ("6", "6", "0"), ("7", "7", "0")]),
    ("Ring", "Platinum Eternity Band", "RING-PT-ETB", "Platinum", "Diamond", "1250.00", "Size",
     [("6", "6", "0"), ("7", "7", "0")]),
    ("Necklace", "Pearl Strand Necklace", "NECK-PRL-STR", "14k White Gold", "Pearl", "640.00", "Length",
     [("16 in", "16", "0"), ("18 in", "18", "60.00")]),
    ("Necklace", "Sapphire Pendant Necklace", "NECK-SAP-PND", "", "Sapphire", "520.00", "Metal",
     [("14k White Gold", "WG", "0"), ("14k Yellow Gold", "YG", "0")]),
    ("Bracelet", "Tennis Bracelet", "BRAC-TEN", "", "Diamond", "2100.00", "Metal",
     [("18k White Gold", "WG", "0"), ("Platinum", "PT", "400.00")]),
    ("Earrings", "Diamond Stud Earrings", "EARR-DIA-STD", "14k White Gold", "Diamond", "890.00", "Carat",
     [("0.5ct", "050", "0"), ("1ct", "100", "1100.00")]),
    ("Earrings", "Emerald Drop Earrings", "EARR-EME-DRP", "18k Yellow Gold", "Emerald", "760.00", None, []),
    ("Watch", "Classic Gold Watch", "WTCH-CLS-GLD", "18k Yellow Gold", "", "3400.00", None, []),
    ("Pendant", "Ruby Heart Pendant", "PEND-RUB-HRT", "14k Rose Gold", "Ruby", "455.00", None, []),
    ("Brooch", "Vintage Cameo Brooch", "BRCH-VIN-CAM", "Sterling Silver", "", "185.00", None, []),
]
# fmt: on

FINANCIAL_MIX = [  # (weight, financial_status, fulfillment_status, closed, cancelled, refund)
    (50, "paid", "fulfilled", True, False, None),
    (12, "paid", None, False, False, None),
    (8, "pending", None, False, False, None),
    (6, "authorized", None, False, False, None),
    (4, "partially_paid", "partial", False, False, None),
    (10, "partially_refunded", "fulfilled", True, False, "partial"),
    (5, "refunded", "restocked", True, True, "full"),
    (5, "voided", None, True, True, None),
]
_MIX_TOTAL = sum(row[0] for row in FINANCIAL_MIX)


def _pick_mix(rng: random.Random) -> tuple:
    pick = rng.randrange(_MIX_TOTAL)
    for weight, *outcome in FINANCIAL_MIX:
        if pick < weight:
            return tuple(outcome)
        pick -= weight
    raise AssertionError("unreachable: weights cover the range")


_CENT = Decimal("0.01")
ORDER_CUSTOMER_FIELDS = ("id", "email", "first_name", "last_name", "phone", "tags", "state", "created_at",
                         "updated_at", "verified_email", "default_address")  # fmt: skip


def ts(value: datetime) -> str:
    """Shopify's timestamp format: ISO 8601 with the shop's UTC offset, whole seconds."""
    return value.astimezone(SHOP_TZ).isoformat(timespec="seconds")


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def money(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _encode_page_info(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_page_info(value: str) -> dict[str, Any]:
    padded = value + "=" * (-len(value) % 4)
    state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(state, dict) or state.get("direction") not in ("next", "prev"):
        raise ValueError("bad page_info")
    return state


class _Collection:
    """Records generated lazily from an index (ids contiguous from `first_id`), plus overridden/added records.

    `updated_of(i)` must not decrease with `i`: it lets an `updated_at_min` filter start with a binary search.
    """

    def __init__(
        self, *, count: int, first_id: int, build: Callable[[int], dict], updated_of: Callable[[int], datetime]
    ):
        self.count = count
        self.first_id = first_id
        self.build = build
        self.updated_of = updated_of
        self.overrides: dict[int, dict] = {}
        self.added = 0

    def index_of(self, record_id: int) -> int | None:
        index = record_id - self.first_id
        return index if 0 <= index < self.count else None

    def get(self, record_id: int) -> dict | None:
        if record_id in self.overrides:
            return self.overrides[record_id]
        index = self.index_of(record_id)
        return self.build(index) if index is not None else None

    def put(self, record: dict) -> dict:
        self.overrides[record["id"]] = record
        return record

    def new_index(self) -> int:
        """The index for a record added after the generated ones (ids keep growing)."""
        self.added += 1
        return self.count + self.added - 1

    def _lower_bound(self, updated_min: datetime) -> int:
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            if self.updated_of(mid) < updated_min:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def iterate(
        self,
        *,
        after_id: int | None = None,
        updated_min: datetime | None = None,
        updated_max: datetime | None = None,
        match: Callable[[dict], bool] = lambda record: True,
    ) -> Iterator[dict]:
        """Matching records in ascending id order."""
        start = 0 if after_id is None else max(0, after_id - self.first_id + 1)
        if updated_min is not None:
            start = max(start, self._lower_bound(updated_min))
        # Overridden and added records are checked against their own times, wherever they sit.
        override_ids = sorted(i for i in self.overrides if after_id is None or i > after_id)
        yield from self._merge(override_ids, range(start, self.count), updated_min, updated_max, match)

    def _merge(self, override_ids, generated, updated_min, updated_max, match) -> Iterator[dict]:
        overrides = iter(override_ids)
        next_override = next(overrides, None)
        for index in generated:
            record_id = self.first_id + index
            while next_override is not None and next_override <= record_id:
                record = self.overrides[next_override]
                if self._in_window(record, updated_min, updated_max) and match(record):
                    yield record
                next_override = next(overrides, None)
            if record_id in self.overrides:
                continue
            if updated_max is not None and self.updated_of(index) > updated_max:
                break
            record = self.build(index)
            if match(record):
                yield record
        while next_override is not None:
            record = self.overrides[next_override]
            if self._in_window(record, updated_min, updated_max) and match(record):
                yield record
            next_override = next(overrides, None)

    @staticmethod
    def _in_window(record: dict, updated_min, updated_max) -> bool:
        try:
            updated = parse_ts(record["updated_at"])
        except (KeyError, TypeError, ValueError):
            return True  # a deliberately malformed record is still listed, as Shopify would list it
        return (updated_min is None or updated >= updated_min) and (updated_max is None or updated <= updated_max)


class ShopifySandbox(SandboxApp):
    """One fake Shopify store. Sizes are record counts; everything else has a realistic default."""

    name = "shopify"

    def __init__(
        self,
        *,
        orders: int = 30,
        customers: int = 12,
        products: int = 10,
        locations: int = 2,
        seed: int = 7,
        shop: str = DEMO_SHOP,
        version: str = API_VERSION,
        currency: str = "USD",
        access_token: str | None = DEMO_ACCESS_TOKEN,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        token_expires_in: int = 86399,
        rate_limit: bool = True,
        bucket_size: int = 40,
        leak_rate: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ):
        super().__init__()
        self.shop, self.version, self.currency, self.seed = shop, version, currency, seed
        self.client_id, self.client_secret, self.token_expires_in = client_id, client_secret, token_expires_in
        self.rate_limit, self.bucket_size, self.leak_rate = rate_limit, bucket_size, leak_rate
        self.clock = clock
        self.now = now or (lambda: datetime.now(SHOP_TZ).replace(microsecond=0))
        self._tokens: dict[str, float | None] = {}  # token -> expiry on `clock` (None: never expires)
        if access_token:
            self._tokens[access_token] = None
        self.access_token = access_token
        self.tokens_issued = 0
        self._bucket_level = 0.0
        self._bucket_at = clock()
        self.locations = LOCATIONS[: max(1, min(locations, len(LOCATIONS)))]
        self._level_overrides: dict[tuple[int, int], dict] = {}
        self._customer_cache: dict[int, dict] = {}

        self.customers = _Collection(
            count=customers, first_id=CUSTOMER_BASE_ID, build=self._build_customer, updated_of=self._customer_updated
        )
        self.products = _Collection(
            count=products, first_id=PRODUCT_BASE_ID, build=self._build_product, updated_of=self._product_updated
        )
        self.orders = _Collection(
            count=orders, first_id=ORDER_BASE_ID, build=self._build_order, updated_of=self._order_updated
        )
        # Variants that generated orders sell: fixed at start, so orders do not change when products are edited.
        self._catalog = [(v, p["title"]) for p in map(self._build_product, range(products)) for v in p["variants"]]
        self._routes_setup()

    # --- what tests configure the integration with --------------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        return {"shop": self.shop, "api_version": self.version, "base_url": self.url, **extra}

    def credentials(self) -> dict[str, str]:
        return {"access_token": self.access_token or ""}

    def client_credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    # --- mutations for tests -----------------------------------------------------------------------------------------
    def _touch(self, record: dict, touch: bool | datetime) -> None:
        if touch:
            record["updated_at"] = ts(touch if isinstance(touch, datetime) else self.now())

    def _update(self, collection: _Collection, record_id: int, fields: dict, touch: bool | datetime) -> dict:
        with self.lock:
            record = collection.get(record_id)
            if record is None:
                raise KeyError(record_id)
            record = json.loads(json.dumps(record))  # a private copy
            record.update(fields)
            self._touch(record, touch)
            return collection.put(record)

    def update_order(self, order_id: int, *, touch: bool | datetime = True, **fields: Any) -> dict:
        """Change an order's fields; `touch` moves its `updated_at` to now (or to the datetime given)."""
        return self._update(self.orders, order_id, fields, touch)

    def update_customer(self, customer_id: int, *, touch: bool | datetime = True, **fields: Any) -> dict:
        return self._update(self.customers, customer_id, fields, touch)

    def update_product(self, product_id: int, *, touch: bool | datetime = True, **fields: Any) -> dict:
        return self._update(self.products, product_id, fields, touch)

    def _add(self, collection: _Collection, fields: dict) -> dict:
        with self.lock:
            record = collection.build(collection.new_index())
            now = ts(self.now())
            record.update({"created_at": now, "updated_at": now})
            record.update(fields)
            return collection.put(record)

    def add_order(self, **fields: Any) -> dict:
        """A new order (next id and number), created and updated now unless `fields` say otherwise."""
        return self._add(self.orders, fields)

    def add_customer(self, **fields: Any) -> dict:
        return self._add(self.customers, fields)

    def delete(self, resource: str, record_id: int) -> None:
        """Remove a record from lists and lookups (Shopify lists never show deleted records)."""
        collection = self._collection(resource)
        with self.lock:
            collection.put({"id": record_id, "_deleted": True, "updated_at": ts(self.now())})

    MALFORMED = {
        "orders": {"total_price": "four hundred"},
        "customers": {"updated_at": "last tuesday"},
        "products": {"variants": [{"id": 1, "sku": "BROKEN", "price": "free", "title": "Default Title"}]},
    }

    def make_malformed(self, resource: str, record_id: int, *, touch: bool | datetime = False, **fields: Any) -> dict:
        """Give one record a value no transform can accept (default per resource, or the `fields` given)."""
        return self._update(self._collection(resource), record_id, fields or dict(self.MALFORMED[resource]), touch)

    def set_inventory_level(self, inventory_item_id: int, location_id: int, available: int | None) -> dict:
        with self.lock:
            level = self._level(inventory_item_id, location_id) or {}
            level = {**level, "available": available, "updated_at": ts(self.now())}
            self._level_overrides[(inventory_item_id, location_id)] = level
            return level

    def fill_bucket(self, used: float) -> None:
        """Pretend other callers already used `used` of the shop's call-limit bucket (it leaks from now)."""
        with self.lock:
            self._bucket_level, self._bucket_at = float(used), self.clock()

    def expire_tokens(self) -> None:
        """Every issued and static token stops working (the next Admin API call gets 401)."""
        with self.lock:
            self._tokens.clear()

    def _collection(self, resource: str) -> _Collection:
        return {"orders": self.orders, "customers": self.customers, "products": self.products}[resource]

    # --- read helpers for tests ---------------------------------------------------------------------------------------
    def order(self, order_id: int) -> dict | None:
        return self._visible(self.orders.get(order_id))

    def customer(self, customer_id: int) -> dict | None:
        return self._visible(self.customers.get(customer_id))

    def product(self, product_id: int) -> dict | None:
        return self._visible(self.products.get(product_id))

    def all(self, resource: str, **filters: Any) -> list[dict]:
        """Every record a full sync sees (`status="any"` for orders)."""
        match = self._order_status_match(filters.get("status", "any")) if resource == "orders" else _visible_only
        return list(self._collection(resource).iterate(match=match))

    def inventory_items(self) -> list[dict]:
        """(inventory_item_id, sku, variant) for every current variant."""
        return [
            {"inventory_item_id": v["inventory_item_id"], "sku": v["sku"], "variant_id": v["id"]}
            for product in self.all("products")
            for v in product.get("variants", [])
        ]

    def levels_for(self, inventory_item_id: int) -> list[dict]:
        return [lvl for loc in self.locations if (lvl := self._level(inventory_item_id, loc["id"])) is not None]

    @staticmethod
    def _visible(record: dict | None) -> dict | None:
        return None if record is None or record.get("_deleted") else record

    # --- generated data -------------------------------------------------------------------------------------------
    def _rng(self, kind: int, index: int) -> random.Random:
        return random.Random((self.seed * 8 + kind) * 1_000_003 + index)

    def _embedded_customer(self, index: int) -> dict:
        """The customer summary orders embed; cached because 100,000 orders share a few thousand customers."""
        summary = self._customer_cache.get(index)
        if summary is None:
            customer = self.customers.build(index)
            summary = self._customer_cache[index] = {k: customer[k] for k in ORDER_CUSTOMER_FIELDS}
        return summary

    @staticmethod
    def _customer_updated(index: int) -> datetime:
        return EPOCH - timedelta(days=60) + timedelta(hours=index) + timedelta(hours=2)

    def _build_customer(self, index: int) -> dict:
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
        customer_id = CUSTOMER_BASE_ID + index
        created = EPOCH - timedelta(days=60) + timedelta(hours=index)
        city, province, province_code, zip_code = CITIES[index % len(CITIES)]
        address = {
            "id": 207119551000 + index,
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "company": None,
            "address1": f"{100 + index % 900} Chestnut Street",
            "address2": "Suite 4" if index % 5 == 0 else None,
            "city": city,
            "province": province,
            "country": "United States",
            "zip": zip_code,
            "phone": None,
            "name": f"{first} {last}",
            "province_code": province_code,
            "country_code": "US",
            "country_name": "United States",
            "default": True,
        }
        subscribed = index % 3 != 0
        return {
            "id": customer_id,
            "email": f"{first.lower()}.{last.lower()}{index}@mail.example.com",
            "first_name": first,
            "last_name": last,
            "phone": f"+1613555{index % 10000:04d}" if index % 4 else None,
            "tags": ", ".join(t for t, on in (("vip", index % 7 == 0), ("bridal", index % 5 == 1)) if on),
            "state": "enabled",
            "verified_email": True,
            "note": "Prefers white gold" if index % 11 == 0 else None,
            "currency": self.currency,
            "created_at": ts(created),
            "updated_at": ts(self._customer_updated(index)),
            "email_marketing_consent": {
                "state": "subscribed" if subscribed else "not_subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": ts(created) if subscribed else None,
            },
            "default_address": address,
            "addresses": [address],
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        }

    @staticmethod
    def _product_updated(index: int) -> datetime:
        return EPOCH - timedelta(days=90) + timedelta(days=index, hours=1)

    def _build_product(self, index: int) -> dict:
        product_type, title, stem, metal, gem, base, option, values = CATALOG[index % len(CATALOG)]
        series = index // len(CATALOG)
        if series:
            title, stem = f"{title} No. {series + 1}", f"{stem}-S{series + 1}"
        product_id = PRODUCT_BASE_ID + index
        created = EPOCH - timedelta(days=90) + timedelta(days=index)
        tags = [t for t in (f"metal:{metal}" if metal else "", f"gemstone:{gem}" if gem else "", product_type) if t]
        variants = []
        for position, (value, code, delta) in enumerate(values or [(None, None, "0")], start=1):
            variant_id = VARIANT_BASE_ID + index * 10 + position - 1
            variants.append(
                {
                    "id": variant_id,
                    "product_id": product_id,
                    "title": f"{option} {value}" if option == "Size" else (value or "Default Title"),
                    "price": money(Decimal(base) + Decimal(delta)),
                    "compare_at_price": None,
                    "sku": f"{stem}-{code}" if code else stem,
                    "position": position,
                    "option1": value or "Default Title",
                    "option2": None,
                    "option3": None,
                    "taxable": True,
                    "barcode": None,
                    "grams": 6,
                    "weight": 6.0,
                    "weight_unit": "g",
                    "inventory_item_id": INVENTORY_ITEM_BASE_ID + index * 10 + position - 1,
                    "inventory_quantity": 0,
                    "created_at": ts(created),
                    "updated_at": ts(self._product_updated(index)),
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{variant_id}",
                }
            )
        for variant in variants:
            variant["inventory_quantity"] = sum(
                (self._generated_available(variant["inventory_item_id"], loc["id"]) or 0) for loc in self.locations
            )
        options = [
            {
                "id": 594680422 + index,
                "product_id": product_id,
                "name": option or "Title",
                "position": 1,
                "values": [v[0] for v in values] or ["Default Title"],
            }
        ]
        return {
            "id": product_id,
            "title": title,
            "body_html": f"<p>{title}, handmade in our workshop.</p>",
            "vendor": "Jewelia Atelier",
            "product_type": product_type,
            "handle": title.lower().replace(" ", "-").replace(".", ""),
            "status": "archived" if index % 13 == 12 else "active",
            "tags": ", ".join(tags),
            "created_at": ts(created),
            "updated_at": ts(self._product_updated(index)),
            "published_at": ts(created),
            "options": options,
            "variants": variants,
            "images": [],
            "admin_graphql_api_id": f"gid://shopify/Product/{product_id}",
        }

    @staticmethod
    def _order_updated(index: int) -> datetime:
        return EPOCH + ORDER_STEP * (index // 2) + timedelta(hours=1)

    def _build_order(self, index: int) -> dict:
        rng = self._rng(1, index)
        order_id = ORDER_BASE_ID + index
        created_at = ts(EPOCH + ORDER_STEP * (index // 2))
        updated_at = ts(self._order_updated(index))
        customer = self._embedded_customer((index * 7919) % self.customers.count) if self.customers.count else None
        financial, fulfillment, closed, cancelled, refund = _pick_mix(rng)

        line_items = []
        for position in range(rng.choice((1, 1, 1, 2, 2, 3)) if self._catalog else 0):
            variant, title = self._catalog[rng.randrange(len(self._catalog))]
            properties = [{"name": "Engraving", "value": "Forever yours"}] if rng.random() < 0.1 else []
            line_items.append(
                {
                    "id": LINE_ITEM_BASE_ID + index * 10 + position,
                    "product_id": variant["product_id"],
                    "variant_id": variant["id"],
                    "sku": variant["sku"],
                    "title": title,
                    "variant_title": None if variant["title"] == "Default Title" else variant["title"],
                    "name": title if variant["title"] == "Default Title" else f"{title} - {variant['title']}",
                    "quantity": 1 if rng.random() < 0.85 else 2,
                    "price": variant["price"],
                    "total_discount": "0.00",
                    "fulfillment_status": "fulfilled" if fulfillment in ("fulfilled", "restocked") else None,
                    "properties": properties,
                    "taxable": True,
                    "admin_graphql_api_id": f"gid://shopify/LineItem/{LINE_ITEM_BASE_ID + index * 10 + position}",
                }
            )
        items_total = sum((Decimal(li["price"]) * li["quantity"] for li in line_items), Decimal("0"))
        discount = (items_total * Decimal("0.10")).quantize(_CENT) if rng.random() < 0.15 else Decimal("0.00")
        subtotal = items_total - discount
        tax = (subtotal * Decimal("0.03")).quantize(_CENT)
        shipping = Decimal("0.00") if subtotal >= 500 else Decimal("15.00")
        total = subtotal + tax + shipping

        refunds = []
        if refund and line_items:
            amount = total if refund == "full" else Decimal(line_items[0]["price"])
            refund_id = REFUND_BASE_ID + index
            refunds.append(
                {
                    "id": refund_id,
                    "order_id": order_id,
                    "created_at": updated_at,
                    "processed_at": updated_at,
                    "note": "Customer changed their mind" if refund == "full" else "Returned one item",
                    "restock": True,
                    "refund_line_items": [
                        {
                            "id": refund_id * 10 + 1,
                            "line_item_id": line_items[0]["id"],
                            "quantity": 1,
                            "restock_type": "return",
                            "subtotal": line_items[0]["price"],
                            "total_tax": "0.00",
                        }
                    ],
                    "transactions": [
                        {
                            "id": TRANSACTION_BASE_ID + index,
                            "order_id": order_id,
                            "kind": "refund",
                            "status": "success",
                            "amount": money(amount),
                            "currency": self.currency,
                            "gateway": "shopify_payments",
                            "created_at": updated_at,
                        }
                    ],
                }
            )
        email = customer["email"] if customer else f"guest{index}@mail.example.com"
        shop_money = {"amount": money(total), "currency_code": self.currency}
        return {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{1001 + index}",
            "order_number": 1001 + index,
            "number": 1 + index,
            "email": email,
            "contact_email": email,
            "created_at": created_at,
            "updated_at": updated_at,
            "processed_at": created_at,
            "cancelled_at": updated_at if cancelled else None,
            "cancel_reason": "customer" if cancelled else None,
            "closed_at": updated_at if closed else None,
            "currency": self.currency,
            "presentment_currency": self.currency,
            "total_line_items_price": money(items_total),
            "total_discounts": money(discount),
            "subtotal_price": money(subtotal),
            "total_tax": money(tax),
            "total_price": money(total),
            "total_price_set": {"shop_money": shop_money, "presentment_money": dict(shop_money)},
            "total_shipping_price_set": {
                "shop_money": {"amount": money(shipping), "currency_code": self.currency},
                "presentment_money": {"amount": money(shipping), "currency_code": self.currency},
            },
            "financial_status": financial,
            "fulfillment_status": fulfillment,
            "payment_gateway_names": ["shopify_payments"],
            "source_name": "web",
            "note": "Gift wrap, please" if rng.random() < 0.1 else None,
            "tags": "",
            "test": False,
            "customer": customer,
            "line_items": line_items,
            "shipping_lines": [
                {
                    "id": 271878346 + index,
                    "title": "Insured Express",
                    "code": "insured-express",
                    "price": money(shipping),
                }
            ]
            if shipping
            else [],
            "refunds": refunds,
        }

    # --- inventory ---------------------------------------------------------------------------------------------
    def _variant_for_item(self, inventory_item_id: int) -> dict | None:
        offset = inventory_item_id - INVENTORY_ITEM_BASE_ID
        product = self.product(PRODUCT_BASE_ID + offset // 10) if offset >= 0 else None
        for variant in (product or {}).get("variants", []):
            if variant.get("inventory_item_id") == inventory_item_id:
                return variant
        return None

    def _generated_available(self, inventory_item_id: int, location_id: int) -> int | None:
        position = [loc["id"] for loc in self.locations].index(location_id)
        if position == 2 and inventory_item_id % 2:  # the pop-up stocks only some items
            return None
        return (inventory_item_id * 7 + position * 3) % 9

    def _level(self, inventory_item_id: int, location_id: int) -> dict | None:
        if (inventory_item_id, location_id) in self._level_overrides:
            override = self._level_overrides[(inventory_item_id, location_id)]
            base = {"inventory_item_id": inventory_item_id, "location_id": location_id}
            return {**base, **override, "admin_graphql_api_id": _level_gid(inventory_item_id, location_id)}
        if self._variant_for_item(inventory_item_id) is None:
            return None
        available = self._generated_available(inventory_item_id, location_id)
        if available is None:
            return None
        return {
            "inventory_item_id": inventory_item_id,
            "location_id": location_id,
            "available": available,
            "updated_at": ts(EPOCH - timedelta(days=1) + timedelta(minutes=inventory_item_id % 997)),
            "admin_graphql_api_id": _level_gid(inventory_item_id, location_id),
        }

    # --- HTTP ------------------------------------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        v = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)"
        self.route("POST", r"/admin/oauth/access_token", self._token)
        self.route("GET", v + r"/shop\.json", self._shop)
        self.route("GET", v + r"/locations\.json", self._locations)
        self.route("GET", v + r"/(?P<resource>orders|customers|products)\.json", self._list)
        self.route("GET", v + r"/(?P<resource>orders|customers|products)/count\.json", self._count)
        self.route("GET", v + r"/(?P<resource>orders|customers|products)/(?P<record_id>\d+)\.json", self._one)
        self.route("GET", v + r"/orders/(?P<record_id>\d+)/refunds\.json", self._refunds)
        self.route("GET", v + r"/inventory_levels\.json", self._inventory_levels)
        self.route("GET", v + r"/inventory_items/(?P<item_id>\d+)\.json", self._inventory_item)

    def before_request(self, request: SandboxRequest) -> SandboxResponse | None:
        if not request.path.startswith("/admin/api/"):
            return None
        with self.lock:
            token = request.header("x-shopify-access-token")
            if token not in self._tokens or (self._tokens[token] is not None and self._tokens[token] <= self.clock()):
                return SandboxResponse(
                    401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
                )
            if not self.rate_limit:
                return None
            now = self.clock()
            self._bucket_level = max(0.0, self._bucket_level - (now - self._bucket_at) * self.leak_rate)
            self._bucket_at = now
            if self._bucket_level + 1 > self.bucket_size:
                wait = (self._bucket_level + 1 - self.bucket_size) / self.leak_rate
                return SandboxResponse(
                    429,
                    {"errors": THROTTLED},
                    {
                        "Retry-After": f"{math.ceil(wait * 10) / 10:.1f}",
                        "X-Shopify-Shop-Api-Call-Limit": f"{self.bucket_size}/{self.bucket_size}",
                    },
                )
            self._bucket_level += 1
        return None

    def after_request(self, request: SandboxRequest, response: SandboxResponse) -> None:
        if self.rate_limit and request.path.startswith("/admin/api/") and response.status != 401:
            used = min(self.bucket_size, math.ceil(self._bucket_level))
            response.headers["X-Shopify-Shop-Api-Call-Limit"] = f"{used}/{self.bucket_size}"

    def _token(self, request: SandboxRequest) -> SandboxResponse:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return SandboxResponse(
                400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type."}
            )
        if not (
            secrets.compare_digest(form.get("client_id", ""), self.client_id)
            and secrets.compare_digest(form.get("client_secret", ""), self.client_secret)
        ):
            return SandboxResponse(
                400, {"error": "invalid_client", "error_description": "Client authentication failed."}
            )
        with self.lock:
            self.tokens_issued += 1
            token = f"shpat_sandbox_cc_{self.tokens_issued}_{secrets.token_hex(8)}"
            self._tokens[token] = self.clock() + self.token_expires_in
        scopes = "read_orders,read_all_orders,read_customers,read_products,read_inventory,read_locations"
        return SandboxResponse(200, {"access_token": token, "scope": scopes, "expires_in": self.token_expires_in})

    def _shop(self, request: SandboxRequest, version: str) -> SandboxResponse:
        domain = f"{self.shop}.myshopify.com"
        shop = {
            "id": 548380009,
            "name": "Jewelia Demo",
            "email": f"owner@{self.shop}.example",
            "domain": domain,
            "myshopify_domain": domain,
            "currency": self.currency,
            "iana_timezone": "America/New_York",
            "country_code": "US",
            "plan_name": "basic",
            "created_at": ts(EPOCH - timedelta(days=400)),
        }
        return SandboxResponse(200, {"shop": shop})

    def _locations(self, request: SandboxRequest, version: str) -> SandboxResponse:
        return SandboxResponse(200, {"locations": [{**loc, "active": True} for loc in self.locations]})

    def _one(self, request: SandboxRequest, version: str, resource: str, record_id: str) -> SandboxResponse:
        record = self._visible(self._collection(resource).get(int(record_id)))
        if record is None:
            return SandboxResponse(404, {"errors": "Not Found"})
        return SandboxResponse(200, {resource[:-1]: record})

    def _inventory_item(self, request: SandboxRequest, version: str, item_id: str) -> SandboxResponse:
        """`GET inventory_items/{id}.json` (REST InventoryItem, checked on shopify.dev: id, sku, tracked,
        requires_shipping, cost as a string in the shop's currency, origin and HS codes, timestamps): one item per
        current variant, 404 once its variant is gone."""
        variant = self._variant_for_item(int(item_id))
        if variant is None:
            return SandboxResponse(404, {"errors": "Not Found"})
        return SandboxResponse(
            200,
            {
                "inventory_item": {
                    "id": int(item_id),
                    "sku": variant.get("sku") or "",
                    "created_at": variant.get("created_at"),
                    "updated_at": variant.get("updated_at"),
                    "requires_shipping": True,
                    "cost": None,
                    "country_code_of_origin": None,
                    "province_code_of_origin": None,
                    "harmonized_system_code": None,
                    "tracked": True,
                    "country_harmonized_system_codes": [],
                    "admin_graphql_api_id": f"gid://shopify/InventoryItem/{item_id}",
                }
            },
        )

    def _refunds(self, request: SandboxRequest, version: str, record_id: str) -> SandboxResponse:
        order = self.order(int(record_id))
        if order is None:
            return SandboxResponse(404, {"errors": "Not Found"})
        return SandboxResponse(200, {"refunds": order.get("refunds", [])})

    # --- lists, filters and pagination -------------------------------------------------------------------------------
    FILTERS = {
        "orders": ("updated_at_min", "updated_at_max", "since_id", "status"),
        "customers": ("updated_at_min", "updated_at_max", "since_id"),
        "products": ("updated_at_min", "updated_at_max", "since_id"),
        "inventory_levels": ("inventory_item_ids", "location_ids", "updated_at_min"),
    }

    def _page_request(self, request: SandboxRequest, resource: str) -> tuple[dict, dict, int] | SandboxResponse:
        """(filters, position state, limit) of a list request, or the 400 Shopify would answer."""
        try:
            limit = int(request.param("limit", str(DEFAULT_LIMIT)))
        except ValueError:
            return SandboxResponse(400, {"errors": {"limit": "Invalid value."}})
        if not 1 <= limit <= MAX_LIMIT:
            return SandboxResponse(400, {"errors": {"limit": f"must be between 1 and {MAX_LIMIT}"}})
        page_info = request.param("page_info")
        if page_info is None:
            return {k: request.param(k) for k in self.FILTERS[resource] if request.param(k) is not None}, {}, limit
        repeated = [k for k in request.query if k not in ("page_info", "limit", "fields")]
        if repeated:
            return SandboxResponse(400, {"errors": f"{repeated[0]} cannot be passed when page_info is present"})
        try:
            state = _decode_page_info(page_info)
        except ValueError:
            return SandboxResponse(400, {"errors": {"page_info": "Invalid value."}})
        return state.get("filters", {}), state, limit

    def _order_status_match(self, status: str) -> Callable[[dict], bool]:
        if status == "any":
            return _visible_only
        if status == "open":
            return lambda o: _visible_only(o) and not o.get("closed_at") and not o.get("cancelled_at")
        if status == "closed":
            return lambda o: _visible_only(o) and bool(o.get("closed_at"))
        if status == "cancelled":
            return lambda o: _visible_only(o) and bool(o.get("cancelled_at"))
        raise ValueError(status)

    def _list(self, request: SandboxRequest, version: str, resource: str) -> SandboxResponse:
        parsed = self._page_request(request, resource)
        if isinstance(parsed, SandboxResponse):
            return parsed
        filters, state, limit = parsed
        try:
            updated_min = parse_ts(filters["updated_at_min"]) if "updated_at_min" in filters else None
            updated_max = parse_ts(filters["updated_at_max"]) if "updated_at_max" in filters else None
            since_id = int(filters["since_id"]) if "since_id" in filters else None
            match = self._order_status_match(filters.get("status", "open")) if resource == "orders" else _visible_only
        except ValueError as exc:
            return SandboxResponse(400, {"errors": f"Invalid filter: {exc}"})
        collection = self._collection(resource)
        with self.lock:
            if state.get("direction") == "prev":
                before = state["first_id"]
                matched = [
                    r
                    for r in collection.iterate(
                        after_id=since_id, updated_min=updated_min, updated_max=updated_max, match=match
                    )
                    if r["id"] < before
                ]
                page, has_next, has_prev = matched[-limit:], True, len(matched) > limit
            else:
                after = state.get("last_id", since_id)
                window = collection.iterate(
                    after_id=after, updated_min=updated_min, updated_max=updated_max, match=match
                )
                taken = list(itertools.islice(window, limit + 1))
                page, has_next, has_prev = taken[:limit], len(taken) > limit, bool(state)
        fields = request.param("fields")
        records = [self._project(r, fields) for r in page]
        headers = self._link_header(request, version, resource, filters, limit, fields, page, has_next, has_prev)
        return SandboxResponse(200, {resource: records}, headers)

    def _count(self, request: SandboxRequest, version: str, resource: str) -> SandboxResponse:
        filters = {k: request.param(k) for k in self.FILTERS[resource] if request.param(k) is not None}
        updated_min = parse_ts(filters["updated_at_min"]) if "updated_at_min" in filters else None
        match = self._order_status_match(filters.get("status", "open")) if resource == "orders" else _visible_only
        with self.lock:
            count = sum(1 for _ in self._collection(resource).iterate(updated_min=updated_min, match=match))
        return SandboxResponse(200, {"count": count})

    @staticmethod
    def _project(record: dict, fields: str | None) -> dict:
        if not fields:
            return record
        wanted = [f.strip() for f in fields.split(",") if f.strip()]
        return {k: record[k] for k in wanted if k in record}

    def _link_header(self, request, version, resource, filters, limit, fields, page, has_next, has_prev) -> dict:
        if not page:
            return {}
        links = []
        base = f"{request.base_url}/admin/api/{version}/{resource}.json"
        for rel, wanted, state in (
            ("previous", has_prev, {"direction": "prev", "first_id": page[0]["id"], "filters": filters}),
            ("next", has_next, {"direction": "next", "last_id": page[-1]["id"], "filters": filters}),
        ):
            if wanted:
                query = {
                    "limit": limit,
                    **({"fields": fields} if fields else {}),
                    "page_info": _encode_page_info(state),
                }
                links.append(f'<{base}?{urlencode(query)}>; rel="{rel}"')
        return {"Link": ", ".join(links)} if links else {}

    def _inventory_levels(self, request: SandboxRequest, version: str) -> SandboxResponse:
        parsed = self._page_request(request, "inventory_levels")
        if isinstance(parsed, SandboxResponse):
            return parsed
        filters, state, limit = parsed
        item_ids = [int(i) for i in filters.get("inventory_item_ids", "").split(",") if i.strip()]
        location_ids = [int(i) for i in filters.get("location_ids", "").split(",") if i.strip()]
        if not item_ids and not location_ids:
            return SandboxResponse(422, {"errors": "inventory_item_ids or location_ids must be present"})
        if len(item_ids) > MAX_INVENTORY_ITEM_IDS:
            return SandboxResponse(422, {"errors": f"inventory_item_ids: at most {MAX_INVENTORY_ITEM_IDS} ids"})
        updated_min = parse_ts(filters["updated_at_min"]) if "updated_at_min" in filters else None
        with self.lock:
            if not item_ids:
                item_ids = [item["inventory_item_id"] for item in self.inventory_items()]
            locations = location_ids or [loc["id"] for loc in self.locations]
            levels = [
                lvl
                for item_id in sorted(set(item_ids))
                for loc_id in locations
                if (lvl := self._level(item_id, loc_id)) is not None
                and (updated_min is None or parse_ts(lvl["updated_at"]) >= updated_min)
            ]
        offset = state.get("offset", 0) if state.get("direction") != "prev" else max(0, state["offset"] - limit)
        page = levels[offset : offset + limit]
        links = []
        base = f"{request.base_url}/admin/api/{version}/inventory_levels.json"
        if offset > 0:
            info = _encode_page_info({"direction": "prev", "offset": offset, "filters": filters})
            links.append(f'<{base}?{urlencode({"limit": limit, "page_info": info})}>; rel="previous"')
        if offset + limit < len(levels):
            info = _encode_page_info({"direction": "next", "offset": offset + limit, "filters": filters})
            links.append(f'<{base}?{urlencode({"limit": limit, "page_info": info})}>; rel="next"')
        return SandboxResponse(200, {"inventory_levels": page}, {"Link": ", ".join(links)} if links else {})


def _visible_only(record: dict) -> bool:
    return not record.get("_deleted")


def _level_gid(inventory_item_id: int, location_id: int) -> str:
    return f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}"

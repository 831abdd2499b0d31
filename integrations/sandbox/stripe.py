"""A fake Stripe account that speaks the API's real shape (per `shared/providers/stripe.md`).

What it implements, because the provider must cope with it:

- `Authorization: Bearer <key>` (or HTTP Basic with the key as user name) on every call: 401 with Stripe's
  error body for a missing or unknown key;
- list endpoints `/v1/customers`, `/v1/payment_intents`, `/v1/charges`, `/v1/refunds`, `/v1/disputes`,
  `/v1/events` returning `{"object": "list", "url": ..., "has_more": ..., "data": [...]}` newest first, with
  `limit` (1-100, default 10), `starting_after`/`ending_before`, `created` (exact or `[gt]`, `[gte]`, `[lt]`,
  `[lte]`), and for events `type` (with a `*` wildcard) and `types[]`; retrieval `/v1/<resource>/<id>`;
- `expand[]` of `latest_charge`, `payment_intent`, `charge`, `customer` on objects and `data.<...>` on lists,
  nested (`data.charge.payment_intent`);
- writes `POST /v1/customers` and `POST /v1/refunds` (form-encoded) with `Idempotency-Key`: the first response
  for a key is stored and replayed for every repeat (`Idempotent-Replayed: true`); a repeat with different
  parameters is a 400 `idempotency_error`;
- optional per-second rate limiting (25/s like test mode) answering 429 `rate_limit_error`; injected 429s and
  5xx can carry `Stripe-Should-Retry`, and `lose_response_next` processes a write and then drops its answer (so
  a client's retry must not write twice).

Data is a deterministic jewelry store's payment history (customers, PaymentIntents with their charges, partial
and full refunds, failures, authorisations, a dispute) built through the same mutation methods tests call
(`refund`, `dispute`, `update_customer`, `add_payment`, ...). Every mutation also records the Stripe events
it causes, with a snapshot of the object as it was, so `/v1/events` and signed webhook deliveries
(`deliver_events`) carry what Stripe would have sent.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import string
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import requests

from integrations.sandbox import signing
from integrations.sandbox.server import SandboxApp, SandboxRequest, SandboxResponse

API_VERSION = signing.STRIPE_API_VERSION
DEMO_API_KEY = "sk_test_sandbox_51JeweliaDemo0000000000000000"
DEMO_WEBHOOK_SECRET = "whsec_sandbox_jewelia_demo_000000000000"
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
DAY = 86_400

LISTS = {
    "customers": "customer",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "refunds": "refund",
    "disputes": "dispute",
    "events": "event",
}
# field -> the collection an id in it points to, for `expand[]`
EXPANDABLE = {
    "latest_charge": "charges",
    "payment_intent": "payment_intents",
    "charge": "charges",
    "customer": "customers",
}
PREFIX = {"customers": "cus", "payment_intents": "pi", "charges": "ch", "refunds": "re", "disputes": "dp"}

FIRST = ["Ada", "Grace", "Marie", "Frida", "Coco", "Audrey", "Elsa", "Yves", "Alan", "Nikola", "Pablo", "Bob"]
LAST = ["Lovelace", "Hopper", "Curie", "Kahlo", "Chanel", "Hepburn", "Schiaparelli", "Turing", "Tesla", "Norman"]
PIECES = [
    ("18k Solitaire Ring", 39800),
    ("Platinum Eternity Band", 125000),
    ("Pearl Strand Necklace", 64000),
    ("Sapphire Pendant Necklace", 52000),
    ("Tennis Bracelet", 210000),
    ("Diamond Stud Earrings", 89000),
    ("Emerald Drop Earrings", 76000),
    ("Classic Gold Watch", 340000),
    ("Ring resizing", 4500),
]
# Outcomes of generated payments, in a fixed cycle so counts are predictable: of every 12 payments, 5 are
# captured, 2 partially refunded, 1 fully refunded, 1 declined, 1 authorised only, 1 canceled, 1 disputed.
OUTCOMES = (
    "succeeded",
    "partially_refunded",
    "succeeded",
    "failed",
    "refunded",
    "succeeded",
    "requires_capture",
    "partially_refunded",
    "succeeded",
    "canceled",
    "disputed",
    "succeeded",
)


def _error(status: int, error_type: str, message: str, **extra: Any) -> SandboxResponse:
    return SandboxResponse(status, {"error": {"type": error_type, "message": message, **extra}})


def _bracket_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form/query encoding back to nested values: created[gte]=1 -> {"created": {"gte":
    "1"}}, expand[]=a -> {"expand": ["a"]}, metadata[k]=v -> {"metadata": {"k": "v"}}."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            name, _, sub = key[:-1].partition("[")
            target = out.setdefault(name, {})
            if isinstance(target, dict):
                target[sub] = value
        else:
            out[key] = value
    return out


class StripeSandbox(SandboxApp):
    """One fake Stripe account (test mode). Sizes are object counts; times are Unix seconds from `now`."""

    name = "stripe"

    def __init__(
        self,
        *,
        customers: int = 8,
        payments: int = 24,
        days_back: int = 20,
        seed: int = 11,
        api_key: str = DEMO_API_KEY,
        webhook_secret: str = DEMO_WEBHOOK_SECRET,
        currency: str = "usd",
        rate_limit: bool = False,
        per_second: int = 25,
        now: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.api_keys = {api_key}
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.currency = currency
        self.rate_limit, self.per_second = rate_limit, per_second
        self.now = now or (lambda: int(time.time()))
        self.clock = clock  # drives the per-second rate limiter (tests pass a fake one)
        self._rng = random.Random(seed)
        self._seq = 0
        self.objects: dict[str, dict[str, dict]] = {name: {} for name in LISTS}
        self._order: dict[str, int] = {}  # id -> creation sequence (tie breaker for equal `created`)
        self._idempotency: dict[str, tuple[str, SandboxResponse]] = {}
        self._lose_responses = 0
        self._window: tuple[int, int] = (0, 0)  # (second, requests in it) for the rate limiter
        self._generate(customers=customers, payments=payments, days_back=days_back)
        self._routes_setup()

    # --- what tests configure the integration with --------------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        return {"base_url": self.url, **extra}

    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    # --- ids and events --------------------------------------------------------------------------------------------
    def _id(self, prefix: str, length: int = 24) -> str:
        alphabet = string.ascii_letters + string.digits
        return f"{prefix}_" + "".join(self._rng.choice(alphabet) for _ in range(length))

    def _store(self, collection: str, obj: dict) -> dict:
        self._seq += 1
        self._order[obj["id"]] = self._seq
        self.objects[collection][obj["id"]] = obj
        return obj

    def emit(self, event_type: str, obj: dict, *, at: int | None = None, previous: dict | None = None) -> dict:
        """Record an event carrying a snapshot of `obj` as it is now (what /v1/events and webhooks show)."""
        created = self.now() if at is None else at
        event = signing.stripe_event(event_type, copy.deepcopy(obj), event_id=self._id("evt"), created=created)
        if previous:
            event["data"]["previous_attributes"] = previous
        event["request"]["idempotency_key"] = None
        return self._store("events", event)

    # --- mutations (tests, generation) ---------------------------------------------------------------------------
    def add_customer(self, *, at: int | None = None, **fields: Any) -> dict:
        with self.lock:
            at = self.now() if at is None else at
            index = len(self.objects["customers"])
            first, last = FIRST[index % len(FIRST)], LAST[(index // len(FIRST)) % len(LAST)]
            customer = {
                "id": self._id("cus", 14),
                "object": "customer",
                "address": None,
                "created": at,
                "description": None,
                "email": f"{first.lower()}.{last.lower()}{index}@mail.example.com",
                "livemode": False,
                "metadata": {},
                "name": f"{first} {last}",
                "phone": f"+1613555{index:04d}" if index % 3 else None,
                "shipping": None,
            }
            if index % 2 == 0:
                customer["address"] = {
                    "city": "New York",
                    "country": "US",
                    "line1": f"{100 + index} Fifth Avenue",
                    "line2": None,
                    "postal_code": "10001",
                    "state": "NY",
                }
            customer.update(fields)
            self._store("customers", customer)
            self.emit("customer.created", customer, at=at)
            return customer

    def update_customer(self, customer_id: str, *, at: int | None = None, **fields: Any) -> dict:
        with self.lock:
            customer = self.objects["customers"][customer_id]
            previous = {k: customer.get(k) for k in fields}
            customer.update(fields)
            self.emit("customer.updated", customer, at=at, previous=previous)
            return customer

    def add_payment(
        self,
        *,
        amount: int,
        outcome: str = "succeeded",
        customer: str | None = None,
        metadata: dict[str, str] | None = None,
        description: str = "",
        at: int | None = None,
    ) -> dict:
        """A PaymentIntent taken to `outcome` (succeeded, failed, requires_capture, canceled, processing,
        requires_payment_method), with its charge and the events Stripe sends on the way. Returns the intent."""
        with self.lock:
            at = self.now() if at is None else at
            intent = self._store(
                "payment_intents",
                {
                    "id": self._id("pi"),
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_capturable": 0,
                    "amount_received": 0,
                    "currency": self.currency,
                    "customer": customer,
                    "description": description or None,
                    "last_payment_error": None,
                    "latest_charge": None,
                    "livemode": False,
                    "metadata": dict(metadata or {}),
                    "payment_method_types": ["card"],
                    "receipt_email": None,
                    "status": "requires_payment_method",
                    "created": at,
                },
            )
            if outcome == "requires_payment_method":
                return intent
            charge = self._store(
                "charges",
                {
                    "id": self._id("ch"),
                    "object": "charge",
                    "amount": amount,
                    "amount_captured": 0,
                    "amount_refunded": 0,
                    "balance_transaction": None,
                    "billing_details": {"email": None, "name": None, "phone": None, "address": None},
                    "captured": False,
                    "created": at + 1,
                    "currency": self.currency,
                    "customer": customer,
                    "description": description or None,
                    "disputed": False,
                    "failure_code": None,
                    "livemode": False,
                    "metadata": {},
                    "paid": False,
                    "payment_intent": intent["id"],
                    "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
                    "receipt_email": None,
                    "refunded": False,
                    "status": "pending",
                },
            )
            intent["latest_charge"] = charge["id"]
            if outcome == "failed":
                charge.update(status="failed", failure_code="card_declined")
                intent["last_payment_error"] = {
                    "type": "card_error",
                    "code": "card_declined",
                    "message": "Your card was declined.",
                    "charge": charge["id"],
                }
                self.emit("charge.failed", charge, at=at + 1)
                self.emit("payment_intent.payment_failed", intent, at=at + 2)
            elif outcome == "processing":
                intent["status"] = "processing"
                self.emit("payment_intent.processing", intent, at=at + 1)
            elif outcome in ("requires_capture", "canceled"):
                charge.update(status="succeeded", paid=True, balance_transaction=self._id("txn"))
                intent.update(status="requires_capture", amount_capturable=amount)
                self.emit("charge.succeeded", charge, at=at + 1)
                if outcome == "canceled":
                    charge.update(refunded=True, amount_refunded=amount)
                    intent.update(status="canceled", amount_capturable=0)
                    self.emit("payment_intent.canceled", intent, at=at + 2)
            else:
                self.capture(intent["id"], at=at + 1)
            return intent

    def capture(self, intent_id: str, *, at: int | None = None) -> dict:
        with self.lock:
            intent = self.objects["payment_intents"][intent_id]
            charge = self.objects["charges"][intent["latest_charge"]]
            charge.update(
                status="succeeded",
                paid=True,
                captured=True,
                amount_captured=charge["amount"],
                balance_transaction=charge.get("balance_transaction") or self._id("txn"),
            )
            intent.update(status="succeeded", amount_received=intent["amount"], amount_capturable=0)
            self.emit("charge.succeeded", charge, at=at)
            self.emit("payment_intent.succeeded", intent, at=at)
            return intent

    def refund(
        self, intent_id: str, *, amount: int | None = None, status: str = "succeeded", at: int | None = None
    ) -> dict:
        """Refund (part of) a captured payment: a Refund object, the charge's refunded amount, and the
        `charge.refunded` + `refund.created` events."""
        with self.lock:
            at = self.now() if at is None else at
            intent = self.objects["payment_intents"][intent_id]
            charge = self.objects["charges"][intent["latest_charge"]]
            amount = charge["amount_captured"] - charge["amount_refunded"] if amount is None else amount
            refund = self._store(
                "refunds",
                {
                    "id": self._id("re"),
                    "object": "refund",
                    "amount": amount,
                    "charge": charge["id"],
                    "created": at,
                    "currency": charge["currency"],
                    "metadata": {},
                    "payment_intent": intent_id,
                    "reason": "requested_by_customer",
                    "status": status,
                },
            )
            if status in ("succeeded", "pending"):
                previous = {"amount_refunded": charge["amount_refunded"]}
                charge["amount_refunded"] += amount
                charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
                self.emit("charge.refunded", charge, at=at, previous=previous)
            self.emit("refund.created", refund, at=at)
            return refund

    def fail_refund(self, refund_id: str, *, at: int | None = None) -> dict:
        """A refund that bounced: its status becomes failed and the money is back on the charge."""
        with self.lock:
            refund = self.objects["refunds"][refund_id]
            charge = self.objects["charges"][refund["charge"]]
            refund["status"] = "failed"
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            self.emit("refund.failed", refund, at=at)
            self.emit("charge.refund.updated", refund, at=at)
            return refund

    def dispute(self, intent_id: str, *, reason: str = "fraudulent", at: int | None = None) -> dict:
        with self.lock:
            at = self.now() if at is None else at
            intent = self.objects["payment_intents"][intent_id]
            charge = self.objects["charges"][intent["latest_charge"]]
            charge["disputed"] = True
            dispute = self._store(
                "disputes",
                {
                    "id": self._id("dp"),
                    "object": "dispute",
                    "amount": charge["amount_captured"],
                    "charge": charge["id"],
                    "created": at,
                    "currency": charge["currency"],
                    "is_charge_refundable": False,
                    "livemode": False,
                    "metadata": {},
                    "payment_intent": intent_id,
                    "reason": reason,
                    "status": "needs_response",
                },
            )
            self.emit("charge.dispute.created", dispute, at=at)
            return dispute

    def _generate(self, *, customers: int, payments: int, days_back: int) -> None:
        start = self.now() - days_back * DAY
        step = max(1, (days_back * DAY - 2 * 3600) // max(1, customers + payments))
        at = start
        customer_ids = []
        for _ in range(customers):
            customer_ids.append(self.add_customer(at=at)["id"])
            at += step
        for index in range(payments):
            outcome = OUTCOMES[index % len(OUTCOMES)]
            piece, price = PIECES[index % len(PIECES)]
            metadata = {"jewelia_order": f"J-{index + 1:06d}"} if index % 4 else {"order_number": str(1001 + index)}
            intent = self.add_payment(
                amount=price,
                outcome="succeeded" if outcome in ("partially_refunded", "refunded", "disputed") else outcome,
                customer=customer_ids[index % len(customer_ids)] if customer_ids and index % 5 else None,
                metadata=metadata,
                description=piece,
                at=at,
            )
            later = at + step // 2
            if outcome == "partially_refunded":
                self.refund(intent["id"], amount=price // 4, at=later)
            elif outcome == "refunded":
                self.refund(intent["id"], at=later)
            elif outcome == "disputed":
                self.dispute(intent["id"], at=later)
            at += step

    # --- read helpers for tests ------------------------------------------------------------------------------------
    def all(self, collection: str) -> list[dict]:
        """Every object of a collection, newest first (as a full listing returns them)."""
        with self.lock:
            return self._sorted(collection)

    def get(self, object_id: str) -> dict | None:
        for collection in self.objects.values():
            if object_id in collection:
                return collection[object_id]
        return None

    def events(self, *types: str) -> list[dict]:
        return [e for e in self.all("events") if not types or e["type"] in types]

    # --- webhooks --------------------------------------------------------------------------------------------------
    def deliver_events(
        self,
        url: str,
        *,
        events: list[dict] | None = None,
        secret: str | None = None,
        session: requests.Session | None = None,
    ) -> list[requests.Response]:
        """POST `events` (default: every recorded event, oldest first) to `url`, each signed now with the
        endpoint secret, as Stripe delivers them."""
        chosen = events if events is not None else list(reversed(self.all("events")))
        responses = []
        for event in chosen:
            body, headers = signing.stripe_delivery(event, secret or self.webhook_secret, t=self.now())
            responses.append(signing.deliver(url, body=body, headers=headers, session=session))
        return responses

    # --- faults ----------------------------------------------------------------------------------------------------
    def rate_limit_next(self, count: int = 1, *, retry_after: str | None = None, path: str = "", should_retry=None):
        """The next `count` requests get Stripe's 429 (`rate_limit_error`), optionally with
        `Stripe-Should-Retry: true|false` and `Retry-After`."""
        headers = {}
        if should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        body = {"error": {"type": "rate_limit_error", "message": "Too many requests hit the API too quickly."}}
        self.inject("rate_limited", SandboxResponse(429, body, headers), count=count, path=path)

    def fail_next(self, count: int = 1, *, status: int = 500, body: Any = None, headers=None, path: str = ""):
        body = body or {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
        super().fail_next(count, status=status, body=body, headers=headers, path=path)

    def malformed_next(self, count: int = 1, *, path: str = "") -> None:
        truncated = b'{"object": "list", "data": [{"id": "ch_'
        response = SandboxResponse(200, truncated, {"Content-Type": "application/json"})
        self.inject("malformed", response, count=count, path=path)

    def lose_response_next(self, count: int = 1) -> None:
        """The next `count` POSTs are processed (and their idempotent answer stored), then answered 500: the
        client cannot know whether the write happened."""
        with self.lock:
            self._lose_responses += count

    # --- HTTP ------------------------------------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        names = "|".join(LISTS)
        self.route("GET", rf"/v1/(?P<collection>{names})", self._list)
        self.route("GET", rf"/v1/(?P<collection>{names})/(?P<object_id>[A-Za-z0-9_]+)", self._retrieve)
        self.route("POST", r"/v1/customers", self._create_customer)
        self.route("POST", r"/v1/refunds", self._create_refund)

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        response = super().handle(request)
        if request.method == "POST" and not request.fault and response.status < 500:
            with self.lock:
                if self._lose_responses > 0:
                    self._lose_responses -= 1
                    request.fault = "response_lost"
                    return _error(500, "api_error", "The response was lost on the way back.")
        return response

    def before_request(self, request: SandboxRequest) -> SandboxResponse | None:
        key = self._api_key(request)
        if key is None:
            return _error(401, "invalid_request_error", "You did not provide an API key.")
        if key not in self.api_keys:
            return _error(401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
        if self.rate_limit:
            with self.lock:
                second = int(self.clock())
                window_second, used = self._window
                used = used + 1 if window_second == second else 1
                self._window = (second, used)
                if used > self.per_second:
                    return _error(429, "rate_limit_error", "Too many requests hit the API too quickly.")
        return None

    @staticmethod
    def _api_key(request: SandboxRequest) -> str | None:
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "basic" and value.strip():
            try:
                return base64.b64decode(value.strip()).decode().split(":", 1)[0] or None
            except ValueError:
                return None
        return None

    def _sorted(self, collection: str) -> list[dict]:
        objects = self.objects[collection].values()
        return sorted(objects, key=lambda o: (o["created"], self._order[o["id"]]), reverse=True)

    def _list(self, request: SandboxRequest, collection: str) -> SandboxResponse:
        params = _bracket_params(parse_qsl(request.raw_query, keep_blank_values=True))
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except (TypeError, ValueError):
            return _error(400, "invalid_request_error", "Invalid integer: limit", param="limit")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, "invalid_request_error", "limit must be between 1 and 100", param="limit")
        if params.get("starting_after") and params.get("ending_before"):
            return _error(400, "invalid_request_error", "starting_after and ending_before are mutually exclusive")
        try:
            match = self._created_match(params.get("created"))
        except ValueError:
            return _error(400, "invalid_request_error", "Invalid created filter", param="created")
        types = self._event_types(params) if collection == "events" else None
        with self.lock:
            rows = [o for o in self._sorted(collection) if match(o["created"]) and (types is None or types(o["type"]))]
            cursor = params.get("starting_after") or params.get("ending_before")
            if cursor:
                position = next((i for i, o in enumerate(rows) if o["id"] == cursor), None)
                if position is None:
                    return _error(400, "invalid_request_error", f"No such object: '{cursor}'", code="resource_missing")
                if params.get("starting_after"):
                    page, has_more = rows[position + 1 : position + 1 + limit], len(rows) > position + 1 + limit
                else:
                    page, has_more = rows[max(0, position - limit) : position], position - limit > 0
            else:
                page, has_more = rows[:limit], len(rows) > limit
            expand = [path.removeprefix("data.") for path in params.get("expand", []) if path.startswith("data.")]
            data = [self._expanded(obj, expand) for obj in page]
        return SandboxResponse(200, {"object": "list", "url": f"/v1/{collection}", "has_more": has_more, "data": data})

    @staticmethod
    def _created_match(created: Any) -> Callable[[int], bool]:
        if created is None:
            return lambda value: True
        if isinstance(created, str):
            exact = int(created)
            return lambda value: value == exact
        bounds = {op: int(v) for op, v in created.items()}
        if set(bounds) - {"gt", "gte", "lt", "lte"}:
            raise ValueError(created)
        return lambda value: (
            value > bounds.get("gt", value - 1)
            and value >= bounds.get("gte", value)
            and value < bounds.get("lt", value + 1)
            and value <= bounds.get("lte", value)
        )

    @staticmethod
    def _event_types(params: dict[str, Any]) -> Callable[[str], bool] | None:
        wanted = list(params.get("types", []))
        if params.get("type"):
            wanted.append(params["type"])
        if not wanted:
            return None
        exact = {t for t in wanted if not t.endswith("*")}
        prefixes = tuple(t[:-1] for t in wanted if t.endswith("*"))
        return lambda event_type: event_type in exact or (bool(prefixes) and event_type.startswith(prefixes))

    def _expanded(self, obj: dict, paths: list[str]) -> dict:
        result = copy.deepcopy(obj)
        for path in paths:
            self._expand_path(result, path.split("."))
        return result

    def _expand_path(self, obj: dict, parts: list[str]) -> None:
        field, rest = parts[0], parts[1:]
        value = obj.get(field)
        if isinstance(value, str) and field in EXPANDABLE:
            target = self.objects[EXPANDABLE[field]].get(value)
            if target is not None:
                obj[field] = value = copy.deepcopy(target)
        if rest and isinstance(value, dict):
            self._expand_path(value, rest)

    def _retrieve(self, request: SandboxRequest, collection: str, object_id: str) -> SandboxResponse:
        params = _bracket_params(parse_qsl(request.raw_query, keep_blank_values=True))
        with self.lock:
            obj = self.objects[collection].get(object_id)
            if obj is None:
                kind = LISTS[collection]
                return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing")
            return SandboxResponse(200, self._expanded(obj, list(params.get("expand", []))))

    # --- writes ----------------------------------------------------------------------------------------------------
    def _idempotent(self, request: SandboxRequest, write: Callable[[dict[str, Any]], SandboxResponse]):
        params = _bracket_params(parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True))
        key = request.header("idempotency-key")
        fingerprint = json.dumps([request.path, params], sort_keys=True)
        with self.lock:
            if key and key in self._idempotency:
                seen_fingerprint, response = self._idempotency[key]
                if seen_fingerprint != fingerprint:
                    return _error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        "used with.",
                    )
                headers = {**response.headers, "Idempotent-Replayed": "true"}
                return SandboxResponse(response.status, response.body, headers)
            response = write(params)
            if key and response.status < 500:
                self._idempotency[key] = (fingerprint, response)
            return response

    def _create_customer(self, request: SandboxRequest) -> SandboxResponse:
        def write(params: dict[str, Any]) -> SandboxResponse:
            fields = {k: params[k] for k in ("email", "name", "phone", "description") if k in params}
            if isinstance(params.get("metadata"), dict):
                fields["metadata"] = params["metadata"]
            return SandboxResponse(200, copy.deepcopy(self.add_customer(**fields)))

        return self._idempotent(request, write)

    def _create_refund(self, request: SandboxRequest) -> SandboxResponse:
        def write(params: dict[str, Any]) -> SandboxResponse:
            intent_id = params.get("payment_intent")
            if not intent_id and params.get("charge"):
                charge = self.objects["charges"].get(params["charge"])
                intent_id = charge and charge.get("payment_intent")
            if not intent_id or intent_id not in self.objects["payment_intents"]:
                return _error(400, "invalid_request_error", "No such payment_intent or charge", param="payment_intent")
            charge = self.objects["charges"].get(self.objects["payment_intents"][intent_id].get("latest_charge") or "")
            if charge is None or charge["amount_captured"] == 0:
                message = "This payment has nothing to refund."
                return _error(400, "invalid_request_error", message, code="charge_not_refundable")
            remaining = charge["amount_captured"] - charge["amount_refunded"]
            try:
                amount = int(params.get("amount", remaining))
            except ValueError:
                return _error(400, "invalid_request_error", "Invalid integer: amount", param="amount")
            if not 0 < amount <= remaining:
                return _error(400, "invalid_request_error", "Refund amount is greater than unrefunded amount.",
                              code="amount_too_large")  # fmt: skip
            return SandboxResponse(200, copy.deepcopy(self.refund(intent_id, amount=amount)))

        return self._idempotent(request, write)

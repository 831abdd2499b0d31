"""A fake QuickBooks Online company and Intuit OAuth server speaking the real shapes (`providers/quickbooks.md`).

What it implements, because the provider must cope with it:

- **OAuth 2.0** (§3): `GET /connect/oauth2` redirects back to `redirect_uri` with `code`, `state` and `realmId`
  (or `error=access_denied` after `deny_consent()`); `POST /oauth2/v1/tokens/bearer` (HTTP Basic client
  authentication, form body) with the `authorization_code` grant (single-use codes bound to their redirect URI)
  and the `refresh_token` grant, which *rotates* the refresh token on every use: the old one then answers
  `invalid_grant`, as does a revoked one; `POST /v2/oauth2/tokens/revoke` (JSON `{"token": ...}`).
  `fail_token_endpoint(n)` makes the token endpoint answer 500. Access tokens expire after an hour
  (`expire_access_tokens()` ends them early).
- **The API** under `/v3/company/{realmId}/` with `Authorization: Bearer` (401 with Intuit's AUTHENTICATION
  fault otherwise, 403 AuthorizationFault for another company's path) and a required `minorversion`:
  `query` (GET `?query=` or POST `application/text`), `GET /{entity}/{id}`, `POST /{entity}` create, full or
  sparse update with `SyncToken` (400 Stale Object Error, code 5010, when it is not the current one), and
  `operation=delete`. Entities: Customer, Item, Invoice, SalesReceipt, Payment, Purchase.
- **The query language subset** the provider uses (§4): `SELECT * | COUNT(*) FROM <Entity> [WHERE <prop> <op>
  <value> [AND ...]] [ORDERBY <prop> [ASC|DESC]] [STARTPOSITION n] [MAXRESULTS m]`, operators `= < > <= >= IN
  LIKE`, single-quoted strings with backslash escapes; entity and property names are case-sensitive (an unknown
  property is a parser fault rather than an empty answer, so a misspelt filter cannot pass silently); OR is a
  parser fault; MAXRESULTS above 1000 is refused; STARTPOSITION is 1-based; an empty result has no entity key.
- **requestid idempotency** (§2): a write repeating a `requestid` gets the first answer back, nothing is written
  again; `lose_response_next(n)` applies the next writes and then answers 500 (so a retry must not write twice).
- **Faults** in Intuit's body shape; validation of the fields the provider sends (DisplayName and Item Name
  unique: 6240; references must exist: 2500; `Amount = Qty x UnitPrice`: 6070); **throttling**: 429 with the
  ThrottleExceeded fault past `max_concurrent` requests in flight (10, like Intuit) or `per_minute` requests a
  minute (off unless set), or on demand (`throttle_next`). `max_in_flight` records the most seen at once.
- **Webhooks** (§6): every write is logged as a change; `deliver_changes` POSTs them signed with the verifier
  token, in the legacy `eventNotifications` format or as CloudEvents.

Data is a deterministic jewelry business: customers, items (with a category folder), invoices (some carrying a
CRM order number as DocNumber, some numbered by QuickBooks), payments (full, partial, split over two invoices,
unapplied) and purchases (expenses), spread over the 30 days before `now`, two customers sharing an update time.
Tests change it through the same paths the API uses (`create`, `edit`, `record_payment`, `delete`).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests

from integrations.sandbox import signing
from integrations.sandbox.server import SandboxApp, SandboxRequest, SandboxResponse

DEMO_REALM_ID = "9341453050069178"
DEMO_CLIENT_ID = "ABsandboxJeweliaQuickBooksClientId00000000000000"
DEMO_CLIENT_SECRET = "sandbox-quickbooks-client-secret-0000000000"
DEMO_VERIFIER_TOKEN = "sandbox-intuit-verifier-token-000000000000"
DEMO_REFRESH_TOKEN = "AB11sandboxJeweliaDemoRefreshToken000000000000000"
DEMO_ACCESS_TOKEN = "eyJsandbox.JeweliaDemoAccessToken.0000000000000000"
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
MIN_MINOR_VERSION = 75
MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
ACCESS_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 8_726_400  # 101 days, what Intuit's x_refresh_token_expires_in reports
CODE_LIFETIME = 600
COMPANY_TZ = timezone(timedelta(hours=-8))  # QuickBooks times carry the company's offset (Pacific here)
CENT = Decimal("0.01")

ENTITY_PATHS = {
    "customer": "Customer",
    "item": "Item",
    "invoice": "Invoice",
    "salesreceipt": "SalesReceipt",
    "payment": "Payment",
    "purchase": "Purchase",
}
DELETABLE = {"Invoice", "SalesReceipt", "Payment", "Purchase"}
# Queryable properties besides whatever the stored objects carry (so a filter on an empty entity still parses).
KNOWN_PROPERTIES = {"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "Active", "DisplayName", "Name", "Sku"}
KNOWN_PROPERTIES |= {"DocNumber", "TxnDate", "Type", "SyncToken"}
ACCOUNTS = {"1": "Sales of Product Income", "35": "Checking", "41": "Cost of Goods Sold", "7": "Supplies"}
ITEM_TYPES = ("Inventory", "NonInventory", "Service", "Category", "Group")

# (Name, Sku, Type, UnitPrice, parent category)
CATALOG = [
    ("18k Solitaire Ring", "RING-18K-SOL", "NonInventory", "398.00", "Rings"),
    ("Platinum Eternity Band", "RING-PT-ETB", "NonInventory", "1250.00", "Rings"),
    ("Pearl Strand Necklace", "NECK-PRL-STR", "NonInventory", "640.00", ""),
    ("Sapphire Pendant", "PEND-SAP", "NonInventory", "520.00", ""),
    ("Tennis Bracelet", "BRAC-TEN", "NonInventory", "2100.00", ""),
    ("Diamond Stud Earrings", "EARR-DIA-STD", "NonInventory", "890.00", ""),
    ("Classic Gold Watch", "WTCH-CLS-GLD", "NonInventory", "3400.00", ""),
    ("Ring resizing", "SVC-RESIZE", "Service", "45.00", ""),
    ("Watch battery", "SVC-BATTERY", "Service", "12.75", ""),
    ("Shipping", "SHIPPING", "Service", "0", ""),
]
FIRST = ["Ada", "Grace", "Marie", "Frida", "Coco", "Audrey", "Elsa", "Yves", "Alan", "Nikola", "Pablo", "Bob"]
LAST = ["Lovelace", "Hopper", "Curie", "Kahlo", "Chanel", "Hepburn", "Schiaparelli", "Turing", "Tesla", "Norman"]


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _to_json(value: Any) -> Any:
    """Stored objects keep Decimals (bodies are parsed with parse_float=Decimal); answers carry JSON numbers."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _time_text(value: datetime) -> str:
    return value.astimezone(COMPANY_TZ).isoformat(timespec="seconds")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _required(detail: str) -> _Fault:
    return _Fault(400, "2020", "Required param missing, need to supply the required value for the API", detail)


class QueryError(ValueError):
    pass


class _Fault(Exception):
    """Raised inside a handler; becomes Intuit's Fault body."""

    def __init__(self, status: int, code: str, message: str, detail: str = "", kind: str = "ValidationFault"):
        super().__init__(message)
        self.status, self.code, self.message, self.detail, self.kind = status, code, message, detail, kind


def fault_body(kind: str, code: str, message: str, detail: str = "") -> dict[str, Any]:
    error = {"Message": message, "Detail": detail, "code": code, "element": ""}
    return {
        "Fault": {"Error": [error], "type": kind},
        "time": datetime.now(COMPANY_TZ).isoformat(timespec="milliseconds"),
    }


THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"


def throttle_response(retry_after: str | None = None) -> SandboxResponse:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = fault_body("ThrottlingFault", "3001", THROTTLE_MESSAGE, "The request limit was reached.")
    return SandboxResponse(429, body, headers)


# --- the query language ----------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|=|<|>|\(|\)|,|\*)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"Encountered an unexpected character at position {position}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class Query:
    """A parsed statement: entity, count or rows, conditions, order, start position, max results."""

    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.pos = 0
        self.conditions: list[tuple[str, str, Any]] = []
        self.order: tuple[str, bool] | None = None
        self.start = 1
        self.max_results = DEFAULT_RESULTS
        self._parse()

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise QueryError("Encountered end of statement")
        self.pos += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.pos += 1
            return True
        return False

    def _expect(self, word: str) -> None:
        if not self._keyword(word):
            raise QueryError(f"Expected {word}")

    def _value(self) -> Any:
        kind, text = self._take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return Decimal(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise QueryError(f"Encountered {text!r} where a value was expected")

    def _parse(self) -> None:
        self._expect("SELECT")
        kind, text = self._take()
        if kind == "op" and text == "*":
            self.count = False
        elif kind == "word" and text.upper() == "COUNT":
            if [self._take()[1] for _ in range(3)] != ["(", "*", ")"]:
                raise QueryError("Expected COUNT(*)")
            self.count = True
        else:
            raise QueryError("Only SELECT * and SELECT COUNT(*) are supported (no projections)")
        self._expect("FROM")
        kind, self.entity = self._take()
        if kind != "word":
            raise QueryError("Expected an entity name")
        if self._keyword("WHERE"):
            while True:
                self._condition()
                if self._keyword("OR"):
                    raise QueryError("OR is not supported")
                if not self._keyword("AND"):
                    break
        if self._keyword("ORDERBY"):
            kind, prop = self._take()
            if kind != "word":
                raise QueryError("Expected a property after ORDERBY")
            descending = self._keyword("DESC")
            if not descending:
                self._keyword("ASC")
            self.order = (prop, descending)
        if self._keyword("STARTPOSITION"):
            self.start = self._integer("STARTPOSITION")
        if self._keyword("MAXRESULTS"):
            self.max_results = self._integer("MAXRESULTS")
            if self.max_results > MAX_RESULTS:
                raise QueryError(f"QueryValidationError: value {self.max_results} is too large. Max allowed is 1000")
        if self._peek() is not None:
            raise QueryError(f"Encountered {self._peek()[1]!r} after the end of the statement")

    def _integer(self, what: str) -> int:
        kind, text = self._take()
        if kind != "num" or not text.isdigit() or int(text) < 1:
            raise QueryError(f"{what} needs a positive integer")
        return int(text)

    def _condition(self) -> None:
        kind, prop = self._take()
        if kind != "word":
            raise QueryError("Expected a property name")
        if self._keyword("IN"):
            if self._take() != ("op", "("):
                raise QueryError("Expected ( after IN")
            values = [self._value()]
            while self._peek() == ("op", ","):
                self.pos += 1
                values.append(self._value())
            if self._take() != ("op", ")"):
                raise QueryError("Expected ) after the IN list")
            self.conditions.append((prop, "IN", values))
            return
        if self._keyword("LIKE"):
            self.conditions.append((prop, "LIKE", self._value()))
            return
        kind, op = self._take()
        if kind != "op" or op not in ("=", "<", ">", "<=", ">="):
            raise QueryError(f"Encountered {op!r} where an operator was expected")
        self.conditions.append((prop, op, self._value()))


def _lookup(obj: dict, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _comparable(prop: str, value: Any) -> Any:
    if value is None:
        return None
    if prop.endswith("Time"):
        return _parse_time(value)
    if prop == "Id" or prop.endswith(".value"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return _dec(value)
    return str(value)


def _matches(obj: dict, prop: str, op: str, wanted: Any) -> bool:
    have = _comparable(prop, _lookup(obj, prop))
    if have is None:
        return False
    if op == "IN":
        return any(have == _comparable(prop, w) for w in wanted)
    if op == "LIKE":
        pattern = "^" + ".*".join(re.escape(part) for part in str(wanted).split("%")) + "$"
        return re.match(pattern, str(have), re.IGNORECASE) is not None
    want = _comparable(prop, wanted)
    if want is None:
        raise QueryError(f"cannot compare {prop} with {wanted!r}")
    try:
        return {
            "=": have == want,
            "<": have < want,
            ">": have > want,
            "<=": have <= want,
            ">=": have >= want,
        }[op]
    except TypeError:
        raise QueryError(f"cannot compare {prop} with {wanted!r}") from None


# --- the company ------------------------------------------------------------------------------------------------------
class QuickBooksSandbox(SandboxApp):
    """One fake QuickBooks company (`realm_id`) and the Intuit OAuth server for one app (client id/secret)."""

    name = "quickbooks"

    def __init__(
        self,
        *,
        realm_id: str = DEMO_REALM_ID,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        verifier_token: str = DEMO_VERIFIER_TOKEN,
        customers: int = 12,
        invoices: int = 16,
        purchases: int = 6,
        now: Callable[[], datetime] | None = None,
        latency: float = 0.0,
        max_concurrent: int = 10,
        per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        access_token_lifetime: int = ACCESS_TOKEN_LIFETIME,
        demo_tokens: bool = True,
    ):
        super().__init__()
        self.realm_id = realm_id
        self.client_id, self.client_secret = client_id, client_secret
        self.verifier_token = verifier_token
        self.now = now or (lambda: datetime.now(COMPANY_TZ))
        self.latency = latency
        self.max_concurrent, self.per_minute, self.clock = max_concurrent, per_minute, clock
        self.access_token_lifetime = access_token_lifetime
        self.entities: dict[str, dict[str, dict]] = {name: {} for name in ENTITY_PATHS.values()}
        self.changes: list[dict[str, str]] = []  # every write, for webhook deliveries
        self._next_id: dict[str, int] = {}
        self._next_doc_number = 1001
        self._codes: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.token_grants: list[str] = []  # grant types answered with tokens, in order
        self._consent = "grant"
        self._request_ids: dict[tuple[str, str], SandboxResponse] = {}
        self._lose_responses = 0
        self._pending_edits: dict[tuple[str, str], int] = {}
        self._minute: tuple[int, int] = (0, 0)
        self.in_flight = 0
        self.max_in_flight = 0
        if demo_tokens:
            self._issue(realm_id, refresh_token=DEMO_REFRESH_TOKEN, access_token=DEMO_ACCESS_TOKEN)
        self._generate(customers=customers, invoices=invoices, purchases=purchases)
        self._routes_setup()

    # --- what tests configure an integration with ---------------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "environment": "sandbox",
            "base_url": self.url,
            "oauth_base_url": self.url,
            "realm_id": self.realm_id,
            **extra,
        }

    def credentials(self) -> dict[str, str]:
        """A fresh token pair issued directly (as if the connect flow had run), in the stored shape."""
        with self.lock:
            access, refresh = self._issue(self.realm_id)
            return {
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "bearer",
                "expires_at": self.access_tokens[access]["expires"].isoformat(),
                "refresh_token_expires_at": self.refresh_tokens[refresh]["expires"].isoformat(),
                "scope": "",
            }

    # --- OAuth state ----------------------------------------------------------------------------------------------
    def _issue(self, realm_id: str, *, refresh_token: str | None = None, access_token: str | None = None):
        now = datetime.now(UTC)
        refresh = refresh_token or "AB11" + secrets.token_urlsafe(36)
        access = access_token or "eyJ" + secrets.token_urlsafe(48)
        self.refresh_tokens[refresh] = {
            "realm_id": realm_id,
            "status": "active",
            "expires": now + timedelta(seconds=REFRESH_TOKEN_LIFETIME),
        }
        self.access_tokens[access] = {
            "realm_id": realm_id,
            "expires": now + timedelta(seconds=self.access_token_lifetime),
            "refresh_token": refresh,
        }
        return access, refresh

    def deny_consent(self, deny: bool = True) -> None:
        """The next authorize requests are refused by the user (redirect with error=access_denied)."""
        self._consent = "deny" if deny else "grant"

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens.values():
                token["expires"] = datetime.now(UTC) - timedelta(seconds=1)

    def revoke_all(self) -> None:
        """What a user disconnecting the app in QuickBooks does: every token stops working."""
        with self.lock:
            for token in self.refresh_tokens.values():
                token["status"] = "revoked"
            self.access_tokens.clear()

    def fail_token_endpoint(self, count: int = 1) -> None:
        self.fail_next(count, status=500, body={"error": "server_error"}, path="/oauth2/v1/tokens/bearer")

    def active_refresh_tokens(self) -> list[str]:
        with self.lock:
            return [t for t, info in self.refresh_tokens.items() if info["status"] == "active"]

    # --- faults and observation -----------------------------------------------------------------------------------
    def throttle_next(self, count: int = 1, *, retry_after: str | None = None, path: str = "/v3/") -> None:
        self.inject("throttled", throttle_response(retry_after), count=count, path=path)

    def forbid_next(self, count: int = 1) -> None:
        body = fault_body("AuthorizationFault", "3100", "message=ApplicationAuthorizationFailed; errorCode=003100")
        self.inject("forbidden", SandboxResponse(403, body), count=count, path="/v3/")

    def fault_next(self, status: int, kind: str, code: str, message: str, *, count: int = 1, detail: str = ""):
        self.inject(f"fault_{code}", SandboxResponse(status, fault_body(kind, code, message, detail)), count=count)

    def lose_response_next(self, count: int = 1) -> None:
        """The next `count` writes are applied (and their requestid answer kept), then answered 500."""
        with self.lock:
            self._lose_responses += count

    def edit_before_next_update(self, entity: str, entity_id: str) -> None:
        """Someone edits this object in QuickBooks between a client's read and its update: the next update of it
        finds its SyncToken one version behind (and gets the stale-object fault). Called n times, the next n
        updates each meet one such edit."""
        with self.lock:
            key = (entity, entity_id)
            self._pending_edits[key] = self._pending_edits.get(key, 0) + 1

    def writes(self, entity: str | None = None) -> list[SandboxRequest]:
        path = f"/v3/company/[0-9]+/{entity.lower()}$" if entity else "/v3/company/[0-9]+/(?!query)[a-z]+$"
        return [r for r in self.requests_to(path) if r.method == "POST"]

    # --- data -------------------------------------------------------------------------------------------------------
    def all(self, entity: str) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(o) for o in sorted(self.entities[entity].values(), key=lambda o: int(o["Id"]))]

    def get(self, entity: str, entity_id: str) -> dict | None:
        with self.lock:
            obj = self.entities[entity].get(str(entity_id))
            return copy.deepcopy(obj) if obj else None

    def create(self, entity: str, body: dict[str, Any], *, at: datetime | None = None) -> dict:
        """Create as the API does (same validation), at `at` (default now); returns the stored object."""
        with self.lock:
            return copy.deepcopy(self._create(entity, copy.deepcopy(body), at or self.now()))

    def edit(self, entity: str, entity_id: str, *, at: datetime | None = None, **fields: Any) -> dict:
        """Someone changes the object in QuickBooks: fields merged, SyncToken and LastUpdatedTime bumped."""
        with self.lock:
            obj = self.entities[entity][str(entity_id)]
            body = {**fields, "Id": obj["Id"], "SyncToken": obj["SyncToken"], "sparse": True}
            return copy.deepcopy(self._update(entity, body, at or self.now()))

    def delete(self, entity: str, entity_id: str, *, at: datetime | None = None) -> None:
        with self.lock:
            self.entities[entity].pop(str(entity_id))
            self._log(entity, str(entity_id), "Delete", at or self.now())

    def record_payment(self, invoice_ids: list[str], amounts: list[Decimal | str], *, at=None, **fields) -> dict:
        """A customer payment applied to these invoices (lines in the same order)."""
        with self.lock:
            first = self.entities["Invoice"][str(invoice_ids[0])]
            lines = [
                {"Amount": _dec(amount), "LinkedTxn": [{"TxnId": str(invoice_id), "TxnType": "Invoice"}]}
                for invoice_id, amount in zip(invoice_ids, amounts, strict=True)
            ]
            total = fields.pop("TotalAmt", None) or sum((_dec(a) for a in amounts), Decimal("0"))
            body = {"CustomerRef": dict(first["CustomerRef"]), "TotalAmt": _dec(total), "Line": lines, **fields}
            return copy.deepcopy(self._create("Payment", body, at or self.now()))

    def _generate(self, *, customers: int, invoices: int, purchases: int) -> None:
        start = self.now() - timedelta(days=30)
        step = timedelta(minutes=47)
        at = start
        folder = self._create("Item", {"Name": "Rings", "Type": "Category"}, at)
        items = []
        for name, sku, kind, price, parent in CATALOG:
            at += step
            body: dict[str, Any] = {
                "Name": name,
                "Sku": sku,
                "Type": kind,
                "UnitPrice": Decimal(price),
                "IncomeAccountRef": {"value": "1", "name": ACCOUNTS["1"]},
            }
            if parent:
                body |= {"SubItem": True, "ParentRef": {"value": folder["Id"], "name": parent}}
            items.append(self._create("Item", body, at))
        customer_rows = []
        for index in range(customers):
            if index != 3:  # customers 2 and 3 share an update time: keyset paging must not lose either
                at += step
            first, last = FIRST[index % len(FIRST)], LAST[(index // len(FIRST) + index) % len(LAST)]
            body = {
                "DisplayName": f"{first} {last}" + (f" {index}" if index >= len(FIRST) else ""),
                "GivenName": first,
                "FamilyName": last,
                "PrimaryEmailAddr": {"Address": f"{first.lower()}.{last.lower()}{index}@mail.example.com"},
            }
            if index % 3 == 0:
                body["PrimaryPhone"] = {"FreeFormNumber": f"(415) 555-{1000 + index:04d}"}
            if index % 2 == 0:
                body["BillAddr"] = {
                    "Line1": f"{100 + index} Market Street",
                    "City": "San Francisco",
                    "CountrySubDivisionCode": "CA",
                    "PostalCode": "94103",
                    "Country": "US",
                }
            customer_rows.append(self._create("Customer", body, at))
        sellable = [item for item in items if item["Name"] != "Shipping"]
        invoice_rows = []
        for index in range(invoices):
            at += step
            customer = customer_rows[index % len(customer_rows)] if customer_rows else None
            if customer is None:
                break
            picks = [sellable[index % len(sellable)], sellable[(index * 3 + 1) % len(sellable)]][: 1 + index % 2]
            lines = [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": _dec(item["UnitPrice"]) * (1 + n),
                    "Description": item["Name"],
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": item["Id"], "name": item["Name"]},
                        "Qty": 1 + n,
                        "UnitPrice": _dec(item["UnitPrice"]),
                    },
                }
                for n, item in enumerate(picks)
            ]
            body = {
                "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
                "Line": lines,
                "TxnDate": at.date().isoformat(),
            }
            if index % 2 == 0:  # every other invoice came from the CRM: its DocNumber is the CRM order number
                body["DocNumber"] = f"J-{index + 1:06d}"
            invoice_rows.append(self._create("Invoice", body, at))
        for index, invoice in enumerate(invoice_rows[: max(0, len(invoice_rows) - 4)]):
            at += step
            total = _dec(invoice["TotalAmt"])
            if index % 4 == 1:
                self.record_payment([invoice["Id"]], [(total / 2).quantize(CENT)], at=at)
            elif index % 4 == 2 and index + 1 < len(invoice_rows):
                other = invoice_rows[index + 1]
                if other["CustomerRef"]["value"] == invoice["CustomerRef"]["value"]:
                    self.record_payment([invoice["Id"], other["Id"]], [total, _dec(other["TotalAmt"])], at=at)
                else:
                    self.record_payment(
                        [invoice["Id"]], [total], at=at, PaymentMethodRef={"value": "2", "name": "Visa"}
                    )
            else:
                self.record_payment([invoice["Id"]], [total], at=at)
        if customer_rows:
            at += step
            self._create(
                "Payment",
                {"CustomerRef": {"value": customer_rows[0]["Id"]}, "TotalAmt": Decimal("150.00"), "Line": []},
                at,
            )
        kinds = ["Cash", "Check", "CreditCard"]
        for index in range(purchases):
            at += step
            amount = Decimal(120 + 35 * index).quantize(CENT)
            self._create(
                "Purchase",
                {
                    "PaymentType": kinds[index % 3],
                    "AccountRef": {"value": "35", "name": ACCOUNTS["35"]},
                    "Line": [
                        {
                            "DetailType": "AccountBasedExpenseLineDetail",
                            "Amount": amount,
                            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7", "name": ACCOUNTS["7"]}},
                        }
                    ],
                },
                at,
            )

    # --- entity writes (call with the lock held) ------------------------------------------------------------------
    def _new_id(self, entity: str) -> str:
        base = {"Customer": 58, "Item": 1, "Invoice": 130, "SalesReceipt": 300, "Payment": 170, "Purchase": 210}
        self._next_id[entity] = self._next_id.get(entity, base[entity]) + 1
        return str(self._next_id[entity])

    def _log(self, entity: str, entity_id: str, operation: str, at: datetime) -> None:
        self.changes.append(
            {"realm_id": self.realm_id, "name": entity, "id": entity_id, "operation": operation, "at": _time_text(at)}
        )

    def _create(self, entity: str, body: dict[str, Any], at: datetime) -> dict:
        if body.get("Id"):
            raise _Fault(400, "2010", "Request has invalid or unsupported property", "Id is not allowed on create")
        obj = {**body, "Id": self._new_id(entity), "SyncToken": "0", "domain": "QBO", "sparse": False}
        obj["MetaData"] = {"CreateTime": _time_text(at), "LastUpdatedTime": _time_text(at)}
        self._complete(entity, obj, previous=None)
        self.entities[entity][obj["Id"]] = obj
        self._after_write(entity, obj, previous=None, at=at)
        self._log(entity, obj["Id"], "Create", at)
        return obj

    def _update(self, entity: str, body: dict[str, Any], at: datetime) -> dict:
        entity_id = str(body.get("Id"))
        current = self.entities[entity].get(entity_id)
        if current is None:
            raise _Fault(400, "610", "Object Not Found", f"Object Not Found : {entity} {entity_id} does not exist.")
        if self._pending_edits.get((entity, entity_id)):  # one concurrent edit lands before each update
            self._pending_edits[(entity, entity_id)] -= 1
            current["SyncToken"] = str(int(current["SyncToken"]) + 1)
            current["MetaData"]["LastUpdatedTime"] = _time_text(at)
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise _Fault(
                400,
                "5010",
                "Stale Object Error",
                "Stale Object Error : You and root were working on this at the same time. root finished before "
                "you did, so your work was not saved.",
            )
        previous = copy.deepcopy(current)
        fields = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse", "MetaData", "domain")}
        if body.get("sparse"):
            updated = {**current, **fields}
        else:
            keep = {k: current[k] for k in ("Id", "MetaData", "domain") if k in current}
            updated = {**fields, **keep}
        updated["SyncToken"] = str(int(current["SyncToken"]) + 1)
        updated["sparse"] = False
        updated["MetaData"] = {**current["MetaData"], "LastUpdatedTime": _time_text(at)}
        self._complete(entity, updated, previous=previous)
        self.entities[entity][entity_id] = updated
        self._after_write(entity, updated, previous=previous, at=at)
        self._log(entity, entity_id, "Update", at)
        return updated

    def _ref(self, entity: str, ref: Any, what: str) -> dict:
        value = ref.get("value") if isinstance(ref, dict) else None
        obj = self.entities[entity].get(str(value)) if value is not None else None
        if obj is None:
            raise _Fault(
                400, "2500", "Invalid Reference Id", f"Invalid Reference Id : {what} assigned is invalid: {value!r}"
            )
        return obj

    def _unique(self, entity: str, prop: str, obj: dict) -> None:
        value = str(obj.get(prop) or "").strip()
        if not value:
            raise _required(f"Required parameter {prop} is missing in the request")
        for other in self.entities[entity].values():
            if other["Id"] != obj["Id"] and str(other.get(prop, "")).strip().lower() == value.lower():
                raise _Fault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another {entity.lower()} is already using this name.",
                )

    def _complete(self, entity: str, obj: dict, *, previous: dict | None) -> None:
        """Validate `obj` as QuickBooks would and fill in what it computes (totals, balance, numbers, names)."""
        if entity == "Customer":
            self._unique("Customer", "DisplayName", obj)
            obj.setdefault("Active", True)
            obj.setdefault("Balance", Decimal("0"))
            obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        elif entity == "Item":
            self._unique("Item", "Name", obj)
            if obj.get("Type") not in ITEM_TYPES:
                raise _Fault(400, "2010", "Request has invalid or unsupported property", f"Type {obj.get('Type')!r}")
            if obj["Type"] in ("NonInventory", "Service", "Inventory"):
                account = obj.get("IncomeAccountRef")
                if not isinstance(account, dict) or str(account.get("value")) not in ACCOUNTS:
                    raise _required("Required parameter IncomeAccountRef is missing or invalid")
            parent = obj.get("ParentRef")
            parent_name = self.entities["Item"].get(str(parent.get("value")), {}).get("Name") if parent else None
            obj["FullyQualifiedName"] = f"{parent_name}:{obj['Name']}" if parent_name else obj["Name"]
            obj.setdefault("Active", True)
        elif entity in ("Invoice", "SalesReceipt"):
            self._complete_sale(entity, obj, previous)
        elif entity == "Payment":
            customer = self._ref("Customer", obj.get("CustomerRef"), "CustomerRef")
            obj["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
            if obj.get("TotalAmt") is None:
                raise _required("Required parameter TotalAmt is missing in the request")
            applied = Decimal("0")
            for line in obj.get("Line") or []:
                for linked in line.get("LinkedTxn") or []:
                    if linked.get("TxnType") == "Invoice":
                        self._ref("Invoice", {"value": linked.get("TxnId")}, "LinkedTxn")
                applied += _dec(line.get("Amount", 0))
            obj["TotalAmt"] = _dec(obj["TotalAmt"])
            obj["UnappliedAmt"] = obj["TotalAmt"] - applied
            obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
            obj.setdefault("TxnDate", self.now().date().isoformat())
        elif entity == "Purchase":
            if not obj.get("Line"):
                raise _required("Required parameter Line is missing in the request")
            self._account(obj.get("AccountRef"))
            obj["TotalAmt"] = sum((_dec(line.get("Amount", 0)) for line in obj["Line"]), Decimal("0"))
            obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
            obj.setdefault("TxnDate", self.now().date().isoformat())

    def _account(self, ref: Any) -> None:
        if not isinstance(ref, dict) or str(ref.get("value")) not in ACCOUNTS:
            raise _Fault(400, "2500", "Invalid Reference Id", "Invalid Reference Id : Account assigned is invalid")

    def _complete_sale(self, entity: str, obj: dict, previous: dict | None) -> None:
        lines = obj.get("Line")
        if not isinstance(lines, list) or not lines:
            raise _required("Required parameter Line is missing in the request")
        if entity == "Invoice" or obj.get("CustomerRef"):
            customer = self._ref("Customer", obj.get("CustomerRef"), "CustomerRef")
            obj["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        subtotal = discount = Decimal("0")
        for number, line in enumerate(lines, start=1):
            kind = line.get("DetailType")
            if kind == "SalesItemLineDetail":
                detail = line.get("SalesItemLineDetail") or {}
                item = self._ref("Item", detail.get("ItemRef"), "Item")
                detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
                amount = _dec(line.get("Amount", 0))
                if "Qty" in detail and "UnitPrice" in detail:
                    expected = (_dec(detail["Qty"]) * _dec(detail["UnitPrice"])).quantize(CENT)
                    if expected != amount.quantize(CENT):
                        said = f"Line {number}: Amount {amount} != {detail['Qty']} x {detail['UnitPrice']}"
                        raise _Fault(400, "6070", "Amount is not equal to UnitPrice * Qty", said)
                subtotal += amount
            elif kind == "DiscountLineDetail":
                discount += _dec(line.get("Amount", 0))
            elif kind != "SubTotalLineDetail":
                raise _Fault(400, "2010", "Request has invalid or unsupported property", f"DetailType {kind!r}")
            line.setdefault("Id", str(number))
            line["LineNum"] = number
        obj["Line"] = [line for line in lines if line.get("DetailType") != "SubTotalLineDetail"]
        obj["Line"].append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        obj["TotalAmt"] = subtotal - discount
        if not obj.get("DocNumber"):
            obj["DocNumber"] = (previous or {}).get("DocNumber") or str(self._next_doc_number)
            if not (previous or {}).get("DocNumber"):
                self._next_doc_number += 1
        obj.setdefault("TxnDate", self.now().date().isoformat())
        obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
        if entity == "Invoice":
            paid = _dec((previous or {}).get("TotalAmt", 0)) - _dec((previous or {}).get("Balance", 0))
            obj["Balance"] = obj["TotalAmt"] - paid
        else:
            obj["Balance"] = Decimal("0")

    def _after_write(self, entity: str, obj: dict, *, previous: dict | None, at: datetime) -> None:
        """A payment lowers the balance of the invoices it is applied to (which counts as their update)."""
        if entity != "Payment":
            return
        deltas: dict[str, Decimal] = {}
        for source, sign in ((obj, 1), (previous or {}, -1)):
            for line in source.get("Line") or []:
                for linked in line.get("LinkedTxn") or []:
                    if linked.get("TxnType") == "Invoice":
                        txn = str(linked.get("TxnId"))
                        deltas[txn] = deltas.get(txn, Decimal("0")) + sign * _dec(line.get("Amount", 0))
        for invoice_id, delta in deltas.items():
            invoice = self.entities["Invoice"].get(invoice_id)
            if invoice is not None and delta:
                invoice["Balance"] = _dec(invoice["Balance"]) - delta
                invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
                invoice["MetaData"]["LastUpdatedTime"] = _time_text(at)
                self._log("Invoice", invoice_id, "Update", at)

    # --- HTTP -----------------------------------------------------------------------------------------------------
    def _routes_setup(self) -> None:
        self.route("GET", r"/connect/oauth2", self._authorize)
        self.route("POST", r"/oauth2/v1/tokens/bearer", self._token)
        self.route("POST", r"/v2/oauth2/tokens/revoke", self._revoke)
        self.route("GET", r"/v3/company/(?P<realm>[0-9]+)/query", self._query)
        self.route("POST", r"/v3/company/(?P<realm>[0-9]+)/query", self._query)
        self.route("GET", r"/v3/company/(?P<realm>[0-9]+)/(?P<path>[a-z]+)/(?P<entity_id>[0-9]+)", self._read)
        self.route("POST", r"/v3/company/(?P<realm>[0-9]+)/(?P<path>[a-z]+)", self._write)

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if not request.path.startswith("/v3/"):
            return super().handle(request)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            over = self.in_flight > self.max_concurrent
        try:
            if over:
                with self.lock:
                    self.requests.append(request)
                request.fault, request.status = "too_many_concurrent", 429
                return throttle_response()
            if self.latency:
                time.sleep(self.latency)
            response = super().handle(request)
        finally:
            with self.lock:
                self.in_flight -= 1
        if request.method == "POST" and not request.path.endswith("/query") and not request.fault:
            with self.lock:
                if self._lose_responses > 0 and response.status < 500:
                    self._lose_responses -= 1
                    request.fault, request.status = "response_lost", 500
                    return SandboxResponse(500, fault_body("SystemFault", "10000", "An application error has occurred"))
        return response

    def before_request(self, request: SandboxRequest) -> SandboxResponse | None:
        if not request.path.startswith("/v3/"):
            return None
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        with self.lock:
            info = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            expired = info is not None and info["expires"] <= datetime.now(UTC)
            if info is None or expired:
                reason = "Token expired" if expired else "Token invalid"
                body = {
                    "fault": {
                        "error": [
                            {
                                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                "detail": f"{reason}: {token[:6]}...",
                                "code": "3200",
                            }
                        ],
                        "type": "AUTHENTICATION",
                    },
                    "time": _time_text(self.now()),
                }
                return SandboxResponse(401, body, {"WWW-Authenticate": 'Bearer realm="Intuit"'})
            realm = request.path.split("/")[3]
            if info["realm_id"] != realm:
                body = fault_body(
                    "AuthorizationFault",
                    "3100",
                    "message=ApplicationAuthorizationFailed; errorCode=003100",
                    f"the token is not for company {realm}",
                )
                return SandboxResponse(403, body)
            if self.per_minute is not None:
                minute = int(self.clock() // 60)
                window, used = self._minute
                used = used + 1 if window == minute else 1
                self._minute = (minute, used)
                if used > self.per_minute:
                    return throttle_response(retry_after=str(60 - int(self.clock() % 60)))
        version = request.param("minorversion")
        if not version or not version.isdigit() or int(version) < MIN_MINOR_VERSION:
            return SandboxResponse(
                400,
                fault_body(
                    "ValidationFault",
                    "2010",
                    "Request has invalid or unsupported property",
                    f"minorversion {version!r}: versions below {MIN_MINOR_VERSION} are no longer supported",
                ),
            )
        return None

    # --- OAuth endpoints ----------------------------------------------------------------------------------------
    @staticmethod
    def _redirect(uri: str, params: dict[str, str]) -> SandboxResponse:
        parts = urlsplit(uri)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return SandboxResponse(302, None, {"Location": urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))})

    def _authorize(self, request: SandboxRequest) -> SandboxResponse:
        if request.param("client_id") != self.client_id:
            return SandboxResponse(400, {"error": "invalid_client", "error_description": "unknown client_id"})
        redirect_uri = request.param("redirect_uri") or ""
        if not redirect_uri.startswith(("http://", "https://")):
            return SandboxResponse(400, {"error": "invalid_request", "error_description": "redirect_uri is required"})
        state = request.param("state") or ""
        back = {"state": state} if state else {}
        if request.param("response_type") != "code":
            return self._redirect(redirect_uri, {"error": "unsupported_response_type", **back})
        if ACCOUNTING_SCOPE not in (request.param("scope") or "").split():
            return self._redirect(redirect_uri, {"error": "invalid_scope", **back})
        if self._consent == "deny":
            return self._redirect(redirect_uri, {"error": "access_denied", **back})
        code = "AB11" + secrets.token_urlsafe(24)
        with self.lock:
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "expires": datetime.now(UTC) + timedelta(seconds=CODE_LIFETIME),
                "used": False,
            }
        return self._redirect(redirect_uri, {"code": code, **back, "realmId": self.realm_id})

    def _client_ok(self, request: SandboxRequest) -> bool:
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(secret, self.client_secret)

    def _token(self, request: SandboxRequest) -> SandboxResponse:
        if not self._client_ok(request):
            return SandboxResponse(401, {"error": "invalid_client"})
        form = request.form()
        grant = form.get("grant_type")
        invalid = SandboxResponse(400, {"error": "invalid_grant"})
        with self.lock:
            if grant == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if code is None or code["used"] or code["expires"] <= datetime.now(UTC):
                    return invalid
                if code["redirect_uri"] != form.get("redirect_uri"):
                    return invalid
                code["used"] = True
            elif grant == "refresh_token":
                token = self.refresh_tokens.get(form.get("refresh_token", ""))
                if token is None or token["status"] != "active" or token["expires"] <= datetime.now(UTC):
                    return invalid
                token["status"] = "used"  # rotation: the old refresh token stops working
            else:
                return SandboxResponse(400, {"error": "unsupported_grant_type"})
            access, refresh = self._issue(self.realm_id)
            self.token_grants.append(grant)
        return SandboxResponse(
            200,
            {
                "token_type": "bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": self.access_token_lifetime,
                "x_refresh_token_expires_in": REFRESH_TOKEN_LIFETIME,
            },
        )

    def _revoke(self, request: SandboxRequest) -> SandboxResponse:
        if not self._client_ok(request):
            return SandboxResponse(401, {"error": "invalid_client"})
        token = request.form().get("token", "")
        with self.lock:
            refresh = token if token in self.refresh_tokens else self.access_tokens.get(token, {}).get("refresh_token")
            if refresh in self.refresh_tokens:
                self.refresh_tokens[refresh]["status"] = "revoked"
                for access in [a for a, info in self.access_tokens.items() if info["refresh_token"] == refresh]:
                    del self.access_tokens[access]
        return SandboxResponse(200, None)

    # --- API endpoints --------------------------------------------------------------------------------------------
    def _answer(self, entity: str, obj: dict) -> SandboxResponse:
        return SandboxResponse(200, {entity: _to_json(obj), "time": self.now().isoformat(timespec="milliseconds")})

    def _query(self, request: SandboxRequest, realm: str) -> SandboxResponse:
        text = request.param("query") if request.method == "GET" else request.body.decode("utf-8", "replace")
        try:
            parsed = Query(text or "")
            with self.lock:
                rows = self._select(parsed)
        except QueryError as exc:
            detail = f"QueryParserError: {exc}"
            return SandboxResponse(400, fault_body("ValidationFault", "4000", "Error parsing query", detail))
        when = self.now().isoformat(timespec="milliseconds")
        if parsed.count:
            return SandboxResponse(200, {"QueryResponse": {"totalCount": len(rows)}, "time": when})
        page = rows[parsed.start - 1 : parsed.start - 1 + parsed.max_results]
        if not page:
            return SandboxResponse(200, {"QueryResponse": {}, "time": when})
        envelope = {parsed.entity: [_to_json(o) for o in page], "startPosition": parsed.start, "maxResults": len(page)}
        return SandboxResponse(200, {"QueryResponse": envelope, "time": when})

    def _select(self, parsed: Query) -> list[dict]:
        if parsed.entity not in self.entities:
            raise QueryError(f"Invalid context declaration : {parsed.entity}")
        objects = list(self.entities[parsed.entity].values())
        known = set(KNOWN_PROPERTIES)
        for obj in objects:
            known |= _paths(obj)
        for prop in [c[0] for c in parsed.conditions] + ([parsed.order[0]] if parsed.order else []):
            if prop not in known:
                raise QueryError(f"property '{prop}' is not queryable on {parsed.entity}")
        rows = [o for o in objects if all(_matches(o, p, op, v) for p, op, v in parsed.conditions)]
        rows.sort(key=lambda o: int(o["Id"]))
        if parsed.order:
            prop, descending = parsed.order
            with_value = [o for o in rows if _comparable(prop, _lookup(o, prop)) is not None]
            without = [o for o in rows if _comparable(prop, _lookup(o, prop)) is None]
            with_value.sort(key=lambda o: _comparable(prop, _lookup(o, prop)), reverse=descending)
            rows = with_value + without
        return [copy.deepcopy(o) for o in rows]

    def _read(self, request: SandboxRequest, realm: str, path: str, entity_id: str) -> SandboxResponse:
        entity = ENTITY_PATHS.get(path)
        if entity is None:
            return SandboxResponse(404, fault_body("ValidationFault", "610", "Object Not Found", f"unknown {path}"))
        with self.lock:
            obj = self.entities[entity].get(entity_id)
            if obj is None:
                detail = (
                    f"Object Not Found : Something you're trying to use has been made inactive: {entity} {entity_id}"
                )
                return SandboxResponse(400, fault_body("ValidationFault", "610", "Object Not Found", detail))
            return self._answer(entity, copy.deepcopy(obj))

    def _write(self, request: SandboxRequest, realm: str, path: str) -> SandboxResponse:
        entity = ENTITY_PATHS.get(path)
        if entity is None:
            return SandboxResponse(404, fault_body("ValidationFault", "2010", "Unsupported entity", path))
        request_id = request.param("requestid")
        with self.lock:
            if request_id and (realm, request_id) in self._request_ids:
                cached = self._request_ids[(realm, request_id)]
                return SandboxResponse(cached.status, copy.deepcopy(cached.body), dict(cached.headers))
            response = self._apply(request, entity)
            if request_id and response.status < 500:
                self._request_ids[(realm, request_id)] = response
            return SandboxResponse(response.status, copy.deepcopy(response.body), dict(response.headers))

    def _apply(self, request: SandboxRequest, entity: str) -> SandboxResponse:
        try:
            body = json.loads(request.body or b"null", parse_float=Decimal)
        except ValueError:
            return SandboxResponse(
                400,
                fault_body(
                    "ValidationFault", "2010", "Request has invalid or unsupported property", "the body is not JSON"
                ),
            )
        if not isinstance(body, dict):
            return SandboxResponse(400, fault_body("ValidationFault", "2010", "Request body is not an object"))
        now = self.now()
        try:
            if request.param("operation") == "delete":
                if entity not in DELETABLE:
                    raise _Fault(
                        400, "2010", "Operation not supported", f"{entity} cannot be deleted; make it inactive"
                    )
                current = self.entities[entity].get(str(body.get("Id")))
                if current is None:
                    raise _Fault(400, "610", "Object Not Found", f"Object Not Found : {entity} {body.get('Id')}")
                if str(body.get("SyncToken")) != current["SyncToken"]:
                    raise _Fault(400, "5010", "Stale Object Error", "Stale Object Error")
                self.delete(entity, current["Id"], at=now)
                return SandboxResponse(200, {entity: {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}})
            obj = self._update(entity, body, now) if body.get("Id") else self._create(entity, body, now)
        except _Fault as fault:
            return SandboxResponse(fault.status, fault_body(fault.kind, fault.code, fault.message, fault.detail))
        except (InvalidOperation, TypeError, ValueError, AttributeError) as exc:
            return SandboxResponse(
                400,
                fault_body("ValidationFault", "2010", "Request has invalid or unsupported property", str(exc)[:200]),
            )
        return self._answer(entity, copy.deepcopy(obj))

    # --- webhooks -------------------------------------------------------------------------------------------------
    def webhook_payload(self, changes: list[dict[str, str]], *, body_format: str = "cloudevents") -> Any:
        """Changes from `self.changes` as one delivery body in `body_format` ("cloudevents" or "legacy")."""
        verbs = {"Create": "created", "Update": "updated", "Delete": "deleted", "Merge": "merged", "Void": "voided"}
        if body_format == "legacy":
            return signing.intuit_legacy_payload(
                [
                    {
                        "realm_id": c["realm_id"],
                        "name": c["name"],
                        "id": c["id"],
                        "operation": c["operation"],
                        "last_updated": c["at"],
                    }
                    for c in changes
                ]
            )
        return [
            signing.intuit_cloudevent(
                realm_id=c["realm_id"],
                entity=c["name"],
                entity_id=c["id"],
                verb=verbs.get(c["operation"], c["operation"].lower()),
                time=datetime.fromisoformat(c["at"]).astimezone(UTC).isoformat().replace("+00:00", "Z"),
            )
            for c in changes
        ]

    def deliver_changes(
        self,
        url: str,
        changes: list[dict[str, str]] | None = None,
        *,
        body_format: str = "cloudevents",
        verifier_token: str | None = None,
        session: requests.Session | None = None,
    ) -> requests.Response:
        """POST `changes` (default: every change so far) to `url` as one signed delivery."""
        payload = self.webhook_payload(self.changes if changes is None else changes, body_format=body_format)
        body, headers = signing.intuit_delivery(payload, verifier_token or self.verifier_token)
        return signing.deliver(url, body=body, headers=headers, session=session)


def _paths(obj: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in obj.items():
        path = f"{prefix}{key}"
        found.add(path)
        if isinstance(value, dict):
            found |= _paths(value, path + ".")
    return found


def authorize_redirect(url: str) -> dict[str, str]:
    """The query parameters of an authorize redirect's `Location` (for tests and the demo)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}

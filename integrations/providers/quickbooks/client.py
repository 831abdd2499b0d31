"""The QuickBooks Online Accounting API (v3) on the shared HTTP layer. Facts: `shared/providers/quickbooks.md`.

What this adds to `ProviderHttpClient`:

- `Authorization: Bearer <access token>`; the token is refreshed before it expires (1 hour) and once on a 401,
  through `connection.refresh()` (the engine's lock, then `QuickBooksProvider.refresh_credentials`);
- every path under `/v3/company/{realmId}/` and every call with the pinned `minorversion` (§2);
- the limits of §5 across every worker: 500 requests per minute per company through the shared token bucket
  (`RATE_LIMIT`), and at most `MAX_CONCURRENT` requests in flight per company through the shared concurrency
  limiter (`integrations.ratelimit.concurrency_slot`), held only while a request is on the wire;
- `Fault` bodies translated once into the error family (`fault_error`), see the table there.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from integrations.errors import AuthError, PermanentError, ProviderError, RateLimitedError
from integrations.http import HttpResponse, ProviderHttpClient
from integrations.providers.base import Connection, RateLimit
from integrations.ratelimit import ConcurrencyLimiter, concurrency_slot, get_concurrency_limiter

from . import query as q

logger = logging.getLogger("integrations.providers.quickbooks")

PRODUCTION_URL = "https://quickbooks.api.intuit.com"
SANDBOX_URL = "https://sandbox-quickbooks.api.intuit.com"
BASE_URLS = {"production": PRODUCTION_URL, "sandbox": SANDBOX_URL}
# Intuit retired minor versions 1-74 on 2025-08-01 (python-quickbooks' citation of Intuit's blog; the blog itself
# was not read, sheet §2), so 75 is the floor. Configurable per integration with `minor_version`.
MINOR_VERSION = 75

# 500 requests per minute per company (sheet §5). A token bucket lets `burst + rate * 60` calls through in any
# minute, so 50 at once plus 450 a minute keeps every 60-second window at or under Intuit's 500.
RATE_LIMIT = RateLimit(requests=450, per_seconds=60.0, burst=50)
# Intuit answers 429 past 10 concurrent requests per company and app. We stay two under it: a request that
# outlives its lease (`slot_lease`) frees its slot early, and webhook handlers of the same app share the count.
MAX_CONCURRENT = 8
TOKEN_RENEW_MARGIN = timedelta(minutes=5)

STALE_OBJECT_CODE = "5010"
OBJECT_NOT_FOUND_CODE = "610"
DUPLICATE_NAME_CODE = "6240"
THROTTLE_CODES = frozenset({"3001", "003001"})


class StaleObjectError(PermanentError):
    """The write carried an old `SyncToken` (Fault code 5010): someone changed the object since we read it."""


class ObjectNotFound(PermanentError):
    """The object does not exist (Fault code 610, or 404)."""


# --- Fault bodies -------------------------------------------------------------------------------------------------
@dataclass
class Fault:
    """`{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`. Intuit spells the keys with a capital
    letter on most faults and in lower case on some authentication faults; both are read."""

    type: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        return {e["code"] for e in self.errors if e.get("code")}

    @property
    def text(self) -> str:
        parts = []
        for error in self.errors[:3]:
            message, detail, code = error.get("message", ""), error.get("detail", ""), error.get("code", "")
            said = f"{message}: {detail}" if detail and detail != message else message or detail
            parts.append(f"{said} (code {code})" if code else said)
        return "; ".join(p for p in parts if p)[:400] or self.type

    def says(self, word: str) -> bool:
        return word.lower() in (self.type + " " + self.text).lower()


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    """A key in either spelling: "Fault" or "fault", "Message" or "message"."""
    if name in mapping:
        return mapping[name]
    return mapping.get(name[:1].swapcase() + name[1:])


def parse_fault(data: Any) -> Fault | None:
    """The Fault of a parsed body, or None when it carries none."""
    if not isinstance(data, Mapping):
        return None
    fault = _get(data, "Fault")
    if not isinstance(fault, Mapping):
        return None
    errors = []
    for error in _get(fault, "Error") or []:
        if isinstance(error, Mapping):
            errors.append(
                {name.lower(): str(_get(error, name) or "") for name in ("Message", "Detail")}
                | {"code": str(error.get("code") or error.get("Code") or "")}
            )
    return Fault(type=str(_get(fault, "type") or ""), errors=errors)


_TEXT_PATTERNS = {
    "type": re.compile(r'"type"\s*:\s*"([^"]*)"', re.IGNORECASE),
    "code": re.compile(r'"code"\s*:\s*"([^"]*)"', re.IGNORECASE),
    "message": re.compile(r'"message"\s*:\s*"([^"]*)"', re.IGNORECASE),
}


def fault_from_text(text: str) -> Fault | None:
    """The Fault in an error body as the shared layer keeps it (a redacted excerpt of at most 500 characters,
    possibly cut in the middle): parsed as JSON when it is whole, else read field by field."""
    if not text:
        return None
    try:
        return parse_fault(json.loads(text))
    except ValueError:
        pass
    if "fault" not in text.lower():
        return None
    kind = _TEXT_PATTERNS["type"].search(text)
    codes = _TEXT_PATTERNS["code"].findall(text)
    messages = _TEXT_PATTERNS["message"].findall(text)
    errors = [
        {"code": code, "message": messages[i] if i < len(messages) else "", "detail": ""}
        for i, code in enumerate(codes or [""])
    ]
    return Fault(type=kind.group(1) if kind else "", errors=errors)


def fault_error(fault: Fault, *, status: int | None, what: str, cause: ProviderError | None = None) -> ProviderError:
    """One Fault -> the error class the engine acts on.

    | Fault                                                     | raised                              |
    |-----------------------------------------------------------|-------------------------------------|
    | `AuthenticationFault`/`AUTHENTICATION`, AuthenticationFailed | `AuthError` (after the 401 refresh) |
    | `AuthorizationFault` (403: no access to this company)     | `AuthError`                         |
    | throttling (ThrottleExceeded, code 003001), any status    | `RateLimitedError`                  |
    | code 5010 Stale Object Error                              | `StaleObjectError` (push re-reads)  |
    | code 610 Object Not Found                                 | `ObjectNotFound`                    |
    | `ValidationFault` and anything else                       | `PermanentError` (push: BadRecordError) |

    Transient statuses (5xx, 429) never get here as a `PermanentError`: the shared layer retried them.
    """
    message = f"QuickBooks {what}: {fault.text or fault.type or 'fault'}"
    kind = fault.type.lower()
    details = {"fault_type": fault.type, "codes": sorted(fault.codes)}
    if kind in ("authenticationfault", "authentication") or fault.says("AuthenticationFailed"):
        return AuthError(message + " (reconnect the integration)", status=status, details=details)
    if kind == "authorizationfault" or status == 403:
        return AuthError(
            message + " (the connected user has no access to this company or feature: reconnect as an admin)",
            status=status,
            details=details,
        )
    if fault.codes & THROTTLE_CODES or fault.says("ThrottleExceeded"):
        retry_after = cause.retry_after if cause is not None else None
        return RateLimitedError(message, status=status, retry_after=retry_after or 60.0, details=details)
    if STALE_OBJECT_CODE in fault.codes or fault.says("Stale Object"):
        return StaleObjectError(message, status=status, details=details)
    if OBJECT_NOT_FOUND_CODE in fault.codes or status == 404:
        return ObjectNotFound(message, status=status, details=details)
    return PermanentError(message, status=status, details=details)


def should_retry(response: requests.Response) -> bool | None:
    """For the shared layer: a throttling Fault sent with a status other than 429 is still retried (Intuit's
    throttling fault text is `message=ThrottleExceeded; errorCode=003001; statusCode=429`, sheet §4, 3rd-party);
    everything else follows the shared rules."""
    if response.status_code == 429 or response.status_code < 400:
        return None
    try:
        fault = parse_fault(response.json())
    except ValueError:
        return None
    if fault is not None and (fault.codes & THROTTLE_CODES or fault.says("ThrottleExceeded")):
        return True
    return None


# --- auth -----------------------------------------------------------------------------------------------------------
def auth_headers(credentials: dict[str, Any]) -> dict[str, str]:
    token = credentials.get("access_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def needs_refresh(credentials: dict[str, Any]) -> bool:
    """Refresh before the first call without an access token and in the last minutes of its hour."""
    if not credentials.get("access_token"):
        return bool(credentials.get("refresh_token"))
    expires_at = parse_time(credentials.get("expires_at"))
    return expires_at is not None and expires_at - TOKEN_RENEW_MARGIN <= datetime.now(UTC)


class _SlotSession:
    """Wraps the client's `requests.Session` so each request sent holds a concurrency slot while on the wire
    (not during the shared layer's backoff sleeps between attempts)."""

    def __init__(self, session: requests.Session, slot: Callable[[], Any]):
        self._session = session
        self._slot = slot

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        with self._slot():
            return self._session.request(*args, **kwargs)


class QuickBooksClient(ProviderHttpClient):
    """`ProviderHttpClient` for one QuickBooks company (`config["realm_id"]`)."""

    def __init__(self, connection: Connection, *, concurrency: ConcurrencyLimiter | None = None):
        super().__init__(
            connection,
            auth_headers=auth_headers,
            needs_refresh=needs_refresh,
            rate_limit=RATE_LIMIT,
            should_retry=should_retry,
            name="quickbooks",
        )
        self.realm_id = str(connection.config.get("realm_id") or "")
        self.minor_version = int(connection.config.get("minor_version") or MINOR_VERSION)
        if connection.rate_limiting:
            self._concurrency = concurrency or get_concurrency_limiter()
            self.session = _SlotSession(self.session, self._slot)  # type: ignore[assignment]

    def _slot(self):
        # The lease outlives the longest a request can take (connect + read timeouts) with a margin.
        lease = self.policy.connect_timeout + self.policy.read_timeout + 15.0
        return concurrency_slot(
            self._concurrency,
            f"quickbooks:{self.realm_id}",
            MAX_CONCURRENT,
            lease=lease,
            max_wait=self.policy.max_wait,
            sleep=self.sleep,
            clock=self.clock,
        )

    # --- calls --------------------------------------------------------------------------------------------------
    def company_path(self, tail: str) -> str:
        if not self.realm_id:
            raise AuthError("QuickBooks: this integration has no company (realm_id) yet: connect it first")
        return f"/v3/company/{self.realm_id}/{tail.lstrip('/')}"

    def api(
        self,
        method: str,
        tail: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """One API call under the company path with `minorversion`; Faults become the error family."""
        path = self.company_path(tail)
        query = {**(params or {}), "minorversion": self.minor_version}
        try:
            response = self.request(method, path, params=query, json_body=json_body, data=data, headers=headers)
        except PermanentError as exc:
            fault = fault_from_text(str(exc.details.get("body") or ""))
            if fault is None:
                if exc.status == 404:
                    raise ObjectNotFound(exc.message, status=404, details=exc.details) from None
                raise
            raise fault_error(fault, status=exc.status, what=what, cause=exc) from None
        except RateLimitedError as exc:
            fault = fault_from_text(str(exc.details.get("body") or ""))
            if fault is not None and fault.text:
                exc.message = f"{exc.message}: {fault.text}"
                exc.args = (exc.message,)
            raise
        fault = parse_fault(response.data)
        if fault is not None:  # a Fault inside a 2xx (Intuit does this on some validation errors)
            raise fault_error(fault, status=response.status, what=what)
        if not isinstance(response.data, dict):
            raise PermanentError(f"QuickBooks {what}: the answer is not a JSON object", status=response.status)
        return response

    def query(self, statement: str) -> tuple[dict[str, Any], HttpResponse]:
        """Run one query (POSTed as `application/text`, so long `IN` lists never hit a URL length limit) and
        return (`QueryResponse`, the response). A query that matches nothing has no entity key."""
        response = self.api(
            "POST", "query", what="query", data=statement.encode("utf-8"), headers={"Content-Type": "application/text"}
        )
        envelope = response.data.get("QueryResponse")
        if not isinstance(envelope, dict):
            raise PermanentError("QuickBooks answered a query without a QueryResponse", status=response.status)
        return envelope, response

    def query_rows(self, statement: str, entity: str) -> list[dict[str, Any]]:
        envelope, _ = self.query(statement)
        rows = envelope.get(entity) or []
        if not isinstance(rows, list):
            raise PermanentError(f"QuickBooks {entity} query rows are not a list")
        return [row for row in rows if isinstance(row, dict)]

    def read(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """`GET /{entity}/{id}`: the object, or None when QuickBooks no longer has it."""
        if not str(entity_id).isdigit():
            return None
        try:
            response = self.api("GET", f"{entity.lower()}/{entity_id}", what=f"read {entity} {entity_id}")
        except ObjectNotFound:
            return None
        obj = response.data.get(entity)
        if not isinstance(obj, dict):
            raise PermanentError(f"QuickBooks answered a {entity} read without a {entity}")
        return obj

    def write(
        self, entity: str, body: dict[str, Any], *, request_id: str, operation: str | None = None
    ) -> dict[str, Any]:
        """`POST /{entity}?requestid=...`: create (no `Id`) or update (`Id` + `SyncToken`). QuickBooks answers a
        repeated `requestid` with the first response instead of writing again, so the shared layer's retries of
        this POST, and a later retry of the same outbox entry, cannot create a second object."""
        params = {"requestid": request_id}
        if operation:
            params["operation"] = operation
        response = self.api("POST", entity.lower(), what=f"write {entity}", params=params, json_body=body)
        obj = response.data.get(entity)
        if not isinstance(obj, dict) or not obj.get("Id"):
            raise PermanentError(f"QuickBooks answered a {entity} write without the {entity}")
        return obj

    def find(self, entity: str, prop: str, value: str) -> dict[str, Any] | None:
        """The first `entity` whose `prop` equals `value` (exact), or None."""
        rows = self.query_rows(q.select(entity, where=[q.condition(prop, "=", value)], max_results=1), entity)
        return rows[0] if rows else None

"""The shared HTTP layer every provider talks through (DESIGN.md rule 4).

`ProviderHttpClient` wraps `requests` so that no provider has to decide, on its own, what a timeout or a 503
means. For every call it:

- applies a (connect, read) timeout;
- takes a token from the client-side rate limiter shared by every worker of the integration
  (`integrations.ratelimit`, keyed by `connection.rate_limit_key`) unless `connection.rate_limiting` is off;
- retries transient failures (connection errors, timeouts, 408, 429, 5xx, an unparseable 2xx body) with
  exponential backoff and full jitter, honouring `Retry-After` (seconds, possibly fractional, or an HTTP date);
- lets the provider slow every worker down from its own rate-limit headers (`rate_limit_hint`, e.g. Shopify's
  `X-Shopify-Shop-Api-Call-Limit: 38/40`), and spreads a 429's `Retry-After` to the other workers;
- on a 401 calls `connection.refresh()` exactly once and retries once; a second 401 (or a refresh that
  returns None) is an `AuthError`;
- classifies everything else once: 3xx (redirects are never followed: a redirect to another host would leak
  the auth header) and 4xx are `PermanentError`s, unless the provider's `should_retry(response)` reads an
  explicit answer from its own headers (Stripe's `Stripe-Should-Retry`).

Waiting happens in-process only up to `RetryPolicy.max_wait` seconds per call (and `max_attempts` attempts):
past that the client raises `TransientError`/`RateLimitedError` with `retry_after` set, so the engine keeps
the retry schedule in the database instead of a worker sleeping for minutes.

A 2xx whose body is not valid JSON is a `TransientError`: in practice it is a truncated transfer or a proxy's
HTML error page, both of which go away on a retry; the bounded attempts and the engine's retry budget stop a
provider that keeps sending garbage from looping forever. A record that parses but makes no sense is a
different matter: the provider's transform raises `BadRecordError` for that one record.

Secrets never reach a log line: auth headers and secret-looking query parameters are redacted, and so is any
credential value that a provider echoes back in an error body. urllib3's own debug lines (which print request
paths with their query strings) go through the same redaction.

Tests inject the sleep, the clock, the jitter source and the limiter with `http_overrides(...)`, so no test
ever really sleeps and every wait can be asserted exactly.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

from integrations.errors import AuthError, PermanentError, ProviderError, RateLimitedError, TransientError

if TYPE_CHECKING:
    from integrations.providers.base import Connection, RateLimit
    from integrations.ratelimit import RateLimiter

logger = logging.getLogger("integrations.http")

REDACTED = "[redacted]"

# Header and query-parameter names that carry secrets in the providers we speak to. Providers add their own
# (e.g. Shopify's X-Shopify-Access-Token) through `secret_headers`.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token", "x-access-token"}
)
SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "client_secret",
        "code",
        "consumer_key",
        "consumer_secret",
        "key",
        "oauth_signature",
        "password",
        "refresh_token",
        "secret",
        "sig",
        "signature",
        "token",
    }
)
BODY_EXCERPT_CHARS = 500


# --- policy and test seams -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before handing the retry to the database schedule.

    `max_attempts` counts requests sent for transient failures (the single retry after a token refresh is not
    counted); `max_wait` caps the seconds slept in-process during one call, rate-limiter waits included.
    Backoff before attempt n+1 is uniform in [0, min(backoff_cap, backoff_base * 2**(n-1))] ("full jitter").
    """

    max_attempts: int = 4
    max_wait: float = 30.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        from django.conf import settings

        return cls(
            max_attempts=getattr(settings, "INTEGRATIONS_HTTP_MAX_ATTEMPTS", cls.max_attempts),
            max_wait=getattr(settings, "INTEGRATIONS_HTTP_MAX_WAIT", cls.max_wait),
            connect_timeout=getattr(settings, "INTEGRATIONS_HTTP_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=getattr(settings, "INTEGRATIONS_HTTP_READ_TIMEOUT", cls.read_timeout),
        )

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        return rand() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))


@dataclass
class _Overrides:
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None
    now: Callable[[], datetime] | None = None
    random: Callable[[], float] | None = None
    limiter: RateLimiter | None = None
    policy: RetryPolicy | None = None
    session: requests.Session | None = None


_overrides: contextvars.ContextVar[_Overrides] = contextvars.ContextVar("integrations_http_overrides")


@contextlib.contextmanager
def http_overrides(**kwargs: Any) -> Iterator[_Overrides]:
    """Replace the sleep, clock, wall clock (`now`), jitter source, limiter, policy or session of every
    `ProviderHttpClient` built inside the block (in this context). For tests; production uses the defaults."""
    current = _overrides.get(_Overrides())
    token = _overrides.set(replace(current, **kwargs))
    try:
        yield _overrides.get()
    finally:
        _overrides.reset(token)


_thread_sessions = threading.local()


def _thread_session() -> requests.Session:
    """One pooled session per thread: keep-alive across the pages of a run, no sharing between threads."""
    session = getattr(_thread_sessions, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        _thread_sessions.session = session
    return session


# --- redaction ---------------------------------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """The URL with secret-looking query values and any userinfo replaced, safe for a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="[],:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_headers(headers: Mapping[str, str], secret_headers: frozenset[str] = frozenset()) -> dict[str, str]:
    hidden = SECRET_HEADERS | secret_headers
    return {k: (REDACTED if k.lower() in hidden else v) for k, v in headers.items()}


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _UrllibRedactingFilter(logging.Filter):
    """urllib3 logs `"GET /path?query HTTP/1.1" 200` at DEBUG; redact the query before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_url(arg) if isinstance(arg, str) and "?" in arg and "=" in arg else arg for arg in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_UrllibRedactingFilter())


# --- header parsing ------------------------------------------------------------------------------------------------
def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """`Retry-After` as seconds: a (possibly fractional) number, or an HTTP date. None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


@dataclass
class HttpResponse:
    """A successful response: status, headers, parsed JSON body (None when empty) and `Link` rels -> URLs."""

    status: int
    headers: CaseInsensitiveDict
    data: Any
    url: str
    links: dict[str, str] = field(default_factory=dict)

    @property
    def server_date(self) -> datetime | None:
        """The response's `Date` header as an aware datetime (the provider's clock), if it sent a valid one."""
        value = self.headers.get("Date")
        if not value:
            return None
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)


class ProviderHttpClient:
    """One provider's view of the shared HTTP layer for one integration (see the module docstring).

    `auth_headers(credentials)` returns the headers that authenticate a call; `needs_refresh(credentials)`
    says whether the stored credentials are missing or about to expire (then `connection.refresh()` runs once
    before the call); `rate_limit_hint(response)` returns seconds every worker should pause before the next
    call (None: no pause); `secret_headers` are provider-specific header names to redact.
    `should_retry(response)` lets a provider overrule the retry decision for a failed (non-2xx, non-401)
    response from its own headers: True retries it as transient, False makes it a `PermanentError`, None keeps
    the rules above (Stripe's `Stripe-Should-Retry`; added for the Stripe provider).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        auth_headers: Callable[[dict[str, Any]], dict[str, str]] | None = None,
        needs_refresh: Callable[[dict[str, Any]], bool] | None = None,
        rate_limit: RateLimit | None = None,
        rate_limit_hint: Callable[[requests.Response], float | None] | None = None,
        should_retry: Callable[[requests.Response], bool | None] | None = None,
        default_headers: Mapping[str, str] | None = None,
        secret_headers: tuple[str, ...] = (),
        policy: RetryPolicy | None = None,
        name: str = "provider",
    ):
        overrides = _overrides.get(_Overrides())
        self.connection = connection
        self.name = name
        self.auth_headers = auth_headers
        self.needs_refresh = needs_refresh
        self.rate_limit = rate_limit
        self.rate_limit_hint = rate_limit_hint
        self.should_retry = should_retry
        self.default_headers = {"Accept": "application/json", "User-Agent": "Jewelia-CRM/1.0"}
        self.default_headers.update(default_headers or {})
        self.secret_headers = frozenset(h.lower() for h in secret_headers)
        self.policy = overrides.policy or policy or RetryPolicy.from_settings()
        self.session = overrides.session or _thread_session()
        self.sleep = overrides.sleep or time.sleep
        self.clock = overrides.clock or time.monotonic
        self.now = overrides.now or (lambda: datetime.now(UTC))
        self.random = overrides.random or random.random
        self._limiter = overrides.limiter
        origin = urlsplit(connection.base_url)
        self._origin = (origin.scheme.lower(), origin.netloc.lower())

    # --- public API ------------------------------------------------------------------------------------------------
    def get(
        self, url: str, *, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None, **kwargs: Any
    ) -> HttpResponse:
        """`params` as a mapping, or as (name, value) pairs when a name repeats (Stripe's `expand[]`)."""
        return self.request("GET", url, params=params, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
    ) -> HttpResponse:
        """Send one logical request (with its retries) and return the parsed 2xx response.

        `url` is a path under the connection's base URL or an absolute URL on the same origin (a pagination
        link); anything else is refused, so a provider response cannot steer our credentials to another host.
        `authenticate=False` sends no auth headers and treats a 401 as final (token endpoints).
        Raises `TransientError`/`RateLimitedError` (with `retry_after`), `AuthError`, `PermanentError`.
        """
        full_url = self._resolve(url)
        shown = redact_url(full_url if not params else f"{full_url}?{urlencode(params, doseq=True)}")
        refreshed = False
        if authenticate and self.needs_refresh and self.needs_refresh(self.connection.credentials):
            self._refresh(shown, reason="credentials missing or expiring")
            refreshed = True

        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            waited += self._throttle(shown, budget=self.policy.max_wait - waited)
            send_headers = dict(self.default_headers)
            if authenticate and self.auth_headers:
                send_headers.update(self.auth_headers(self.connection.credentials))
            send_headers.update(headers or {})
            error = self._send(method, full_url, shown, params, json_body, data, send_headers)
            if isinstance(error, HttpResponse):
                return error
            if isinstance(error, _Unauthorized):
                if not authenticate or refreshed:
                    raise AuthError(f"{self.name}: {method} {shown} was refused (401) after a refresh", status=401)
                self._refresh(shown, reason="401")
                refreshed = True
                attempt -= 1  # the one retry after a refresh is not a transient attempt
                continue

            delay = error.retry_after
            if delay is None:
                delay = self.policy.backoff(attempt, self.random)
            if isinstance(error, RateLimitedError):
                self._defer(delay)
            if attempt >= self.policy.max_attempts or waited + delay > self.policy.max_wait:
                error.retry_after = delay
                logger.warning(
                    "%s: %s %s failed after %d attempt(s): %s; retry in %.2fs",
                    self.name,
                    method,
                    shown,
                    attempt,
                    error.message,
                    delay,
                )
                raise error
            logger.info(
                "%s: %s %s attempt %d failed (%s); retrying in %.2fs",
                self.name,
                method,
                shown,
                attempt,
                error.message,
                delay,
            )
            self.sleep(delay)
            waited += delay

    # --- internals -----------------------------------------------------------------------------------------------
    def _resolve(self, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            return f"{self.connection.base_url.rstrip('/')}/{url.lstrip('/')}"
        parts = urlsplit(url)
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            raise PermanentError(
                f"{self.name}: refusing to call {redact_url(url)}: not on the integration's base URL",
                details={"base_url": self.connection.base_url},
            )
        return url

    def _send(
        self, method, url, shown, params, json_body, data, headers
    ) -> HttpResponse | ProviderError | _Unauthorized:
        started = self.clock()
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                data=data,
                headers=headers,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            return TransientError(f"{self.name}: {method} {shown} timed out")
        except requests.ConnectionError as exc:
            return TransientError(f"{self.name}: {method} {shown} could not connect ({type(exc).__name__})")
        except requests.RequestException as exc:
            raise PermanentError(f"{self.name}: {method} {shown} could not be sent ({type(exc).__name__})") from None
        status = response.status_code
        logger.debug("%s: %s %s -> %d in %.0f ms", self.name, method, shown, status, (self.clock() - started) * 1000)
        if status != 429:  # on a 429 its Retry-After is the authority, not the usage header
            self._apply_hint(response)

        if 200 <= status < 300:
            try:
                payload = json.loads(response.content) if response.content.strip() else None
            except ValueError:
                return TransientError(
                    f"{self.name}: {method} {shown} returned a body that is not valid JSON",
                    status=status,
                    details={"body": self._excerpt(response)},
                )
            links = {rel: link["url"] for rel, link in response.links.items() if "url" in link}
            return HttpResponse(status=status, headers=response.headers, data=payload, url=response.url, links=links)
        if status == 401:
            return _Unauthorized()
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self.now())
        details = {"body": self._excerpt(response)}
        decision = self.should_retry(response) if self.should_retry else None
        if decision is False:
            raise PermanentError(
                f"{self.name}: {method} {shown} failed with {status}; the provider says not to retry",
                status=status,
                details=details,
            )
        if status == 429:
            return RateLimitedError(
                f"{self.name}: {method} {shown} was rate limited (429)",
                status=status,
                retry_after=retry_after,
                details=details,
            )
        if status == 408 or status >= 500 or decision:
            return TransientError(
                f"{self.name}: {method} {shown} failed with {status}",
                status=status,
                retry_after=retry_after,
                details=details,
            )
        if 300 <= status < 400:
            raise PermanentError(
                f"{self.name}: {method} {shown} answered with a redirect ({status}); redirects are not followed",
                status=status,
                details={"location": redact_url(response.headers.get("Location", ""))},
            )
        raise PermanentError(f"{self.name}: {method} {shown} was refused ({status})", status=status, details=details)

    def _excerpt(self, response: requests.Response) -> str:
        text = response.content[:BODY_EXCERPT_CHARS].decode("utf-8", errors="replace")
        return redact_text(text, self._secret_values())

    def _secret_values(self) -> list[str]:
        values = [v for v in self.connection.credentials.values() if isinstance(v, str) and len(v) >= 6]
        return sorted(values, key=len, reverse=True)

    def _refresh(self, shown: str, *, reason: str) -> None:
        logger.info(
            "%s: refreshing credentials for integration %s (%s)", self.name, self.connection.integration_id, reason
        )
        credentials = self.connection.refresh()
        if credentials is None:
            raise AuthError(f"{self.name}: credentials were refused and cannot be refreshed ({shown})", status=401)
        self.connection.credentials = credentials

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            from integrations.ratelimit import get_rate_limiter

            self._limiter = get_rate_limiter()
        return self._limiter

    def _limiting(self) -> bool:
        return bool(self.connection.rate_limiting and self.rate_limit)

    def _throttle(self, shown: str, *, budget: float) -> float:
        """Wait for a token from the shared limiter; past the in-process budget, hand the wait to the caller."""
        if not self._limiting():
            return 0.0
        wait = self.limiter.acquire(self.connection.rate_limit_key, self.rate_limit, max_wait=max(0.0, budget))
        if wait > budget:
            raise RateLimitedError(
                f"{self.name}: client-side rate limit for {shown}: next slot in {wait:.2f}s", retry_after=wait
            )
        if wait > 0:
            self.sleep(wait)
        return wait

    def _defer(self, seconds: float) -> None:
        if self._limiting() and seconds > 0:
            self.limiter.defer(self.connection.rate_limit_key, self.rate_limit, seconds)

    def _apply_hint(self, response: requests.Response) -> None:
        if not (self.rate_limit_hint and self._limiting()):
            return
        pause = self.rate_limit_hint(response)
        if pause:
            logger.debug("%s: provider rate-limit header asks for a %.2fs pause", self.name, pause)
            self._defer(pause)


class _Unauthorized:
    """Marker for a 401 inside the retry loop (it is not an error until the refresh has been tried)."""

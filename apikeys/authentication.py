"""API-key authentication for DRF: `Authorization: Bearer <key>` or `X-API-Key: <key>`.

On success `request.user` is an `ApiKeyPrincipal` (an authenticated, non-staff stand-in with no Django
permissions, so code that needs a real `User` fails loudly instead of acting as someone) and `request.auth` is
the `ApiKey`; `Actor.from_request(request)` then records the key as the actor.

Failures are 401s with `WWW-Authenticate`. A malformed key, an unknown public id and a wrong secret for a known
id all get the same answer, so nobody learns which keys exist; only the holder of a complete, correct key is
told that it is expired, revoked, rotated or used from an address it is not allowed from.

The same cache round trip judges the request against the key's per-minute rate limit (`ratelimit`, a
sliding-window counter); the verdict rides on `request.api_key_rate` and `permissions.enforce_rate_limit` turns a
refusal into a 429 with `Retry-After`. The verdict uses the limit on the row this process had cached: when that
row turns out to be stale, the current row applies from the key's next request.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from jewelia.core.exceptions import JeweliaError

from . import tokens
from .cache import key_lookup, key_store
from .models import USABLE_STATUSES, ApiKey, KeyStatus
from .ratelimit import RateDecision, window_position

logger = logging.getLogger(__name__)

AUTH_SCHEME = "Bearer"
INVALID_KEY_MESSAGE = "Invalid API key."

_REJECTIONS = {
    KeyStatus.EXPIRED: "This API key has expired.",
    KeyStatus.REVOKED: "This API key has been revoked.",
    KeyStatus.ROTATED: "This API key was rotated and its grace period has ended.",
}


class ApiKeyPrincipal(AnonymousUser):
    """`request.user` for API-key requests: authenticated, never staff, no model permissions."""

    is_anonymous = False
    is_authenticated = True
    is_active = True

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    @property
    def username(self) -> str:
        return f"api-key:{self.api_key.identifier}"

    def __str__(self) -> str:
        return self.username

    def __eq__(self, other) -> bool:
        return isinstance(other, ApiKeyPrincipal) and other.api_key.pk == self.api_key.pk

    def __hash__(self) -> int:
        return hash(("api_key", self.api_key.pk))


class InvalidApiKey(exceptions.AuthenticationFailed):
    def __init__(self, message: str = INVALID_KEY_MESSAGE, *, reason: str = "invalid"):
        super().__init__(message)
        self.error_details = {"reason": reason}


class KeyCheckUnavailable(JeweliaError):
    status_code = 503
    code = "service_unavailable"
    default_message = "API keys cannot be checked right now; retry shortly."


def _judge(key: ApiKey, now, ip: str | None) -> tuple[KeyStatus, bool]:
    """The key's status now, and whether this request may use it (usable status, allowed address)."""
    status = key.status_at(now)
    return status, status in USABLE_STATUSES and key.allows_ip(ip)


def presented_key(request) -> str | None:
    """The key from the `Authorization: Bearer` header, else from `X-API-Key`; None when neither is sent."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == AUTH_SCHEME.lower():
        return credentials.strip()
    header = request.META.get("HTTP_X_API_KEY")
    return header.strip() if header is not None else None


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or the address the trusted reverse proxies saw (APIKEYS_TRUSTED_PROXY_COUNT)."""
    trusted = settings.APIKEYS_TRUSTED_PROXY_COUNT
    if trusted > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= trusted:
            return hops[-trusted]
    return request.META.get("REMOTE_ADDR")


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = presented_key(request)
        if raw is None:
            return None  # not ours: let session or basic authentication try
        parsed = tokens.parse(raw)
        if parsed is None:
            raise InvalidApiKey()
        try:
            key, status, accepted, now, rate = self._admit(request, raw, parsed.public_id)
        except RedisError:
            # Without the cache neither revocations nor rate limits can be checked: refuse, do not guess.
            logger.exception("API-key authentication could not reach the cache")
            raise KeyCheckUnavailable() from None

        # Read after the response by ApiKeyUsageMiddleware (errors) and by ScopedPermission (rate limit).
        request._request.api_key_usage = (key.pk, now.date())
        request.api_key_rate = rate
        if status not in USABLE_STATUSES:
            raise InvalidApiKey(_REJECTIONS[status], reason=status.value)
        if not accepted:
            raise InvalidApiKey("This API key may not be used from this IP address.", reason="ip_not_allowed")
        return ApiKeyPrincipal(key), key

    @staticmethod
    def _admit(request, raw: str, public_id: str) -> tuple[ApiKey, KeyStatus, bool, datetime, RateDecision]:
        """Verify the key, then judge and count the request in one cache round trip; reload the row if it changed."""
        key, version = key_lookup(public_id)
        # The hash of a public id never changes, so even a row cached before a change verifies correctly.
        if key is None or not tokens.matches(raw, key.key_hash):
            raise InvalidApiKey()
        now = timezone.now()
        ip = client_ip(request)
        window, elapsed_ms = window_position(now)
        limit = key.rate_limit_per_minute
        status, accepted = _judge(key, now, ip)
        admission = key_store().admit(
            key_id=key.pk,
            public_id=key.public_id,
            version=version,
            limit=limit,
            window=window,
            elapsed_ms=elapsed_ms,
            day=now.date(),
            used=(now, ip) if accepted else None,
        )
        if admission.version != version:
            # The key changed since this process cached it (revoked, rotated, new scopes): use the current row.
            key, _ = key_lookup(public_id, fresh=True)
            if key is None:
                raise InvalidApiKey()
            status, accepted = _judge(key, now, ip)
            if accepted:
                key_store().touch(key_id=key.pk, used=(now, ip))
        rate = RateDecision(
            limit=limit,
            admitted=admission.admitted,
            previous=admission.previous,
            current=admission.current,
            elapsed_ms=elapsed_ms,
        )
        return key, status, accepted, now, rate

    def authenticate_header(self, request):
        if presented_key(request) is not None:
            return f'{AUTH_SCHEME} realm="api", error="invalid_token"'
        return f'{AUTH_SCHEME} realm="api"'

"""Provider-independent OAuth 2.0 calls (RFC 6749 authorization code grant, RFC 7636 PKCE, RFC 7009 revocation).

Every OAuth provider describes itself with an `OAuthSpec` (`integrations.providers.base`); these functions do the
token-endpoint work for any of them, so the connect flow, the refresh under the engine's lock and disconnect
share one implementation:

- `authorize_url(spec, ...)`: where to send the user (with `state`, and a PKCE challenge when the spec wants it);
- `exchange_code(spec, code, redirect_uri, code_verifier=None)`: the code for tokens;
- `refresh_token(spec, refresh_token)`: a refresh-token grant;
- `revoke_token(spec, token)`: revocation at the provider's revoke endpoint.

The client id and secret are app-level and read from the settings the spec names (never from an integration
row). They are sent with HTTP Basic (`client_secret_basic`, the method RFC 6749 §2.3.1 says every server must
support, and the only one Intuit accepts).

Token requests go out on plain `requests` with the shared (connect, read) timeouts and are never retried
here: a refresh whose answer was lost may already have rotated the refresh token at the provider, and sending
the old one again would then be refused as `invalid_grant`; the caller (the engine's refresh under its lock)
decides what happens next. Errors are translated once into `integrations.errors`:

| token endpoint says                              | raised                                   |
|--------------------------------------------------|------------------------------------------|
| `invalid_grant` (used, revoked, expired grant)   | `AuthError` ("reconnect the integration")|
| `invalid_client` / 401 (wrong client id/secret)  | `AuthError` (fix the app's credentials)  |
| 429                                              | `RateLimitedError` (with `Retry-After`)  |
| 5xx, timeout, connection error, non-JSON 2xx     | `TransientError`                         |
| any other 4xx, a 2xx without an access token     | `PermanentError`                         |

Tokens and secrets never appear in an exception message or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from integrations.errors import AuthError, PermanentError, RateLimitedError, TransientError
from integrations.http import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from integrations.providers.base import OAuthSpec

# The common seconds-until-expiry field of a token response for the refresh token; a provider names its own
# (`OAuthSpec.refresh_expiry_fields`).
REFRESH_EXPIRY_FIELD = "refresh_token_expires_in"
ERROR_TEXT_CHARS = 200


@dataclass
class TokenSet:
    """A token endpoint's answer, with lifetimes turned into absolute times.

    `as_credentials()` is the shape stored (encrypted) on the integration and read by providers:
    `access_token`, `refresh_token`, `token_type`, `expires_at`, `refresh_token_expires_at`, `scope` (ISO times,
    empty strings when unknown). `raw` is the whole response for provider quirks; it is never logged.
    """

    access_token: str
    refresh_token: str = ""
    token_type: str = "bearer"
    expires_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    scope: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never print tokens
        return f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r})"

    def as_credentials(self) -> dict[str, str]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at.isoformat() if self.expires_at else "",
            "refresh_token_expires_at": (
                self.refresh_token_expires_at.isoformat() if self.refresh_token_expires_at else ""
            ),
            "scope": self.scope,
        }


# --- client credentials and the authorize step --------------------------------------------------------------------
def client_credentials(spec: OAuthSpec) -> tuple[str, str]:
    """(client id, client secret) from the settings the spec names. Raises `PermanentError` when either is
    unset: no retry can help until the deployment is configured."""
    from django.conf import settings

    client_id = str(getattr(settings, spec.client_id_setting, "") or "")
    client_secret = str(getattr(settings, spec.client_secret_setting, "") or "")
    if not client_id or not client_secret:
        raise PermanentError(f"OAuth is not configured: set {spec.client_id_setting} and {spec.client_secret_setting}")
    return client_id, client_secret


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, S256 code_challenge) pair (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(64)[:128]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
    return verifier, challenge.decode("ascii")


def authorize_url(spec: OAuthSpec, *, redirect_uri: str, state: str, code_challenge: str | None = None) -> str:
    """The URL to send the user to: client id, `response_type=code`, the spec's scopes (space-separated),
    `redirect_uri`, `state`, the spec's extra parameters and, when given, an S256 PKCE challenge."""
    client_id, _ = client_credentials(spec)
    params: list[tuple[str, str]] = [
        ("client_id", client_id),
        ("response_type", "code"),
        ("scope", " ".join(spec.scopes)),
        ("redirect_uri", redirect_uri),
        ("state", state),
        *spec.extra_authorize_params,
    ]
    if code_challenge:
        params += [("code_challenge", code_challenge), ("code_challenge_method", "S256")]
    parts = urlsplit(spec.authorize_url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


# --- token endpoint --------------------------------------------------------------------------------------------------
def exchange_code(
    spec: OAuthSpec,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    *,
    now: datetime | None = None,
) -> TokenSet:
    """Exchange an authorization code for tokens. `redirect_uri` must be the one the authorize URL carried."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    return _token_request(spec, form, now=now)


def refresh_token(spec: OAuthSpec, refresh_token: str, *, now: datetime | None = None) -> TokenSet:
    """A refresh-token grant. When the answer carries no refresh token (providers that do not rotate), the one
    sent stays valid and is returned in the token set, so callers can always store `as_credentials()`."""
    if not refresh_token:
        raise AuthError("No refresh token is stored: reconnect the integration")
    tokens = _token_request(spec, {"grant_type": "refresh_token", "refresh_token": refresh_token}, now=now)
    if not tokens.refresh_token:
        tokens.refresh_token = refresh_token
    return tokens


def revoke_token(spec: OAuthSpec, token: str, *, token_type_hint: str | None = None, json_body: bool = False) -> None:
    """Revoke `token` (a refresh token revokes the whole grant at most providers). RFC 7009 sends a form;
    `json_body=True` sends `{"token": ...}` instead (Intuit's revoke endpoint). A token the provider no longer
    knows is not an error (RFC 7009 §2.2: it answers 200)."""
    if not spec.revoke_url:
        raise PermanentError("This provider has no revoke endpoint")
    payload: dict[str, str] = {"token": token}
    if token_type_hint:
        payload["token_type_hint"] = token_type_hint
    response = _post(spec, spec.revoke_url, json=payload) if json_body else _post(spec, spec.revoke_url, data=payload)
    if 200 <= response.status_code < 300:
        return
    _raise_for(response, action="revoke the token")


def _token_request(spec: OAuthSpec, form: dict[str, str], *, now: datetime | None) -> TokenSet:
    response = _post(spec, spec.token_url, data=form)
    if not 200 <= response.status_code < 300:
        _raise_for(response, action="obtain tokens")
    try:
        data = response.json()
    except ValueError:
        raise TransientError(
            "The token endpoint answered with a body that is not JSON", status=response.status_code
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise PermanentError("The token endpoint's answer carries no access_token", status=response.status_code)
    return parse_token_response(data, spec=spec, now=now or datetime.now(UTC))


def parse_token_response(data: dict[str, Any], *, spec: OAuthSpec, now: datetime) -> TokenSet:
    """A token response -> `TokenSet`: `expires_in` (else the spec's access token lifetime) and the refresh
    token's own lifetime field (else the spec's known refresh token lifetime) become absolute times."""
    access_lifetime = _seconds(data.get("expires_in"))
    if access_lifetime is None and spec.access_token_lifetime is not None:
        access_lifetime = spec.access_token_lifetime.total_seconds()
    refresh_lifetime = next(
        (
            s
            for s in (_seconds(data.get(name)) for name in (REFRESH_EXPIRY_FIELD, *spec.refresh_expiry_fields))
            if s is not None
        ),
        None,
    )
    refresh_token_value = str(data.get("refresh_token") or "")
    if refresh_lifetime is None and refresh_token_value and spec.refresh_token_lifetime is not None:
        refresh_lifetime = spec.refresh_token_lifetime.total_seconds()
    return TokenSet(
        access_token=str(data["access_token"]),
        refresh_token=refresh_token_value,
        token_type=str(data.get("token_type") or "bearer"),
        expires_at=now + timedelta(seconds=access_lifetime) if access_lifetime is not None else None,
        refresh_token_expires_at=now + timedelta(seconds=refresh_lifetime) if refresh_lifetime is not None else None,
        scope=str(data.get("scope") or ""),
        raw=data,
    )


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and seconds == seconds else None


def _post(spec: OAuthSpec, url: str, **body: Any) -> requests.Response:
    client_id, client_secret = client_credentials(spec)
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
    policy = RetryPolicy.from_settings()
    with requests.Session() as session:
        session.trust_env = False  # no proxies or .netrc credentials from the environment
        try:
            return session.post(
                url,
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                timeout=(policy.connect_timeout, policy.read_timeout),
                allow_redirects=False,
                **body,
            )
        except requests.Timeout:
            raise TransientError(f"The OAuth endpoint {_origin(url)} timed out") from None
        except requests.ConnectionError:
            raise TransientError(f"Could not connect to the OAuth endpoint {_origin(url)}") from None
        except requests.RequestException as exc:
            raise PermanentError(f"Could not call the OAuth endpoint {_origin(url)} ({type(exc).__name__})") from None


def _raise_for(response: requests.Response, *, action: str) -> None:
    status = response.status_code
    error, description = _oauth_error(response)
    said = f"{error}: {description}" if description else error
    if error == "invalid_grant":
        raise AuthError(
            "The provider refused the grant (invalid_grant: the authorization was revoked, has expired or was "
            "already used); reconnect the integration",
            status=status,
            details={"error": error},
        )
    if error == "invalid_client" or status == 401:
        raise AuthError(
            f"The provider refused the app's client credentials ({said or status}); check the client id and secret",
            status=status,
            details={"error": error},
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=datetime.now(UTC))
        raise RateLimitedError(f"Could not {action}: rate limited (429)", status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        raise TransientError(f"Could not {action}: the OAuth endpoint failed with {status}", status=status)
    raise PermanentError(
        f"Could not {action}: the OAuth endpoint refused the request ({status}{', ' + said if said else ''})",
        status=status,
        details={"error": error},
    )


def _oauth_error(response: requests.Response) -> tuple[str, str]:
    """(error, error_description) of an RFC 6749 §5.2 error body, shortened; empty strings when absent."""
    try:
        data = response.json()
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error")
    description = data.get("error_description")
    return (
        str(error)[:ERROR_TEXT_CHARS] if isinstance(error, str) else "",
        str(description)[:ERROR_TEXT_CHARS] if isinstance(description, str) else "",
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

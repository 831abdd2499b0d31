"""OAuth for QuickBooks against the sandbox's Intuit endpoints: the generic `integrations.oauth_client` (authorize
URL, code exchange, refresh, revoke, error mapping) and the provider's refresh with rotation
(`shared/providers/quickbooks.md` §3)."""

import base64
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations import oauth_client
from integrations.errors import AuthError, PermanentError, TransientError
from integrations.providers.quickbooks.provider import OAUTH, _hard_refresh_expiry
from integrations.sandbox.quickbooks import DEMO_CLIENT_ID, authorize_redirect
from integrations.tests.providers import test_quickbooks as qb_fixtures
from integrations.tests.providers.test_quickbooks import qb_connect

# The provider fixture, shared with test_quickbooks.py (the sandbox fixtures come from conftest).
provider = qb_fixtures.provider

CALLBACK = "https://crm.example.com/oauth/callback/quickbooks"


@pytest.fixture
def spec(provider, qb_sandbox):
    return provider.oauth_spec(qb_sandbox.config())


def authorize(spec, state="state-123"):
    """Follow the authorize URL as the user's browser would, up to the redirect back: its query parameters."""
    url = oauth_client.authorize_url(spec, redirect_uri=CALLBACK, state=state)
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return authorize_redirect(location)


def just_about(value: datetime | None, delta: timedelta) -> bool:
    return value is not None and abs((value - datetime.now(UTC) - delta).total_seconds()) < 60


# --- authorize URL and code exchange ---------------------------------------------------------------------------------


def test_the_authorize_url_carries_client_id_code_response_scope_redirect_and_state(spec):
    url = oauth_client.authorize_url(spec, redirect_uri=CALLBACK, state="s-1")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == spec.authorize_url
    assert parse_qs(parts.query) == {
        "client_id": [DEMO_CLIENT_ID],
        "response_type": ["code"],
        "scope": ["com.intuit.quickbooks.accounting"],
        "redirect_uri": [CALLBACK],
        "state": ["s-1"],
    }


def test_a_pkce_challenge_is_the_s256_of_its_verifier_and_goes_on_the_authorize_url(spec):
    verifier, challenge = oauth_client.pkce_pair()

    url = oauth_client.authorize_url(spec, redirect_uri=CALLBACK, state="s", code_challenge=challenge)

    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected and 43 <= len(verifier) <= 128
    query = parse_qs(urlsplit(url).query)
    assert (query["code_challenge"], query["code_challenge_method"]) == ([challenge], ["S256"])


def test_consent_redirects_back_with_code_state_and_realm_then_the_code_buys_working_tokens(provider, spec, qb_sandbox):
    back = authorize(spec)
    extras = provider.oauth_callback_extras(back)

    tokens = oauth_client.exchange_code(spec, back["code"], CALLBACK)

    assert back["state"] == "state-123" and extras == {"realm_id": qb_sandbox.realm_id}
    credentials = tokens.as_credentials()
    assert set(credentials) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_at",
        "refresh_token_expires_at",
        "scope",
    }
    assert just_about(tokens.expires_at, timedelta(hours=1))
    assert just_about(tokens.refresh_token_expires_at, timedelta(seconds=8_726_400))
    connection = qb_connect(provider, qb_sandbox, credentials=credentials, **extras)
    provider.check_connection(connection)
    assert qb_sandbox.token_grants == ["authorization_code"]


def test_the_token_request_authenticates_the_app_with_http_basic(spec, qb_sandbox):
    back = authorize(spec)

    oauth_client.exchange_code(spec, back["code"], CALLBACK)

    request = qb_sandbox.requests_to(r"/oauth2/v1/tokens/bearer$")[-1]
    expected = base64.b64encode(f"{DEMO_CLIENT_ID}:{qb_sandbox.client_secret}".encode()).decode()
    assert request.header("authorization") == f"Basic {expected}"
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["authorization_code"],
        "code": [back["code"]],
        "redirect_uri": [CALLBACK],
    }


def test_denied_consent_redirects_back_with_access_denied_and_no_code(spec, qb_sandbox):
    qb_sandbox.deny_consent()

    assert authorize(spec, state="s-9") == {"error": "access_denied", "state": "s-9"}


def test_a_code_used_twice_is_an_invalid_grant(spec):
    back = authorize(spec)
    oauth_client.exchange_code(spec, back["code"], CALLBACK)

    with pytest.raises(AuthError, match="invalid_grant"):
        oauth_client.exchange_code(spec, back["code"], CALLBACK)


def test_a_code_exchanged_for_another_redirect_uri_is_refused(spec):
    back = authorize(spec)

    with pytest.raises(AuthError, match="invalid_grant"):
        oauth_client.exchange_code(spec, back["code"], "https://evil.example.com/callback")


def test_a_wrong_client_secret_is_an_auth_error_about_the_app_credentials(spec, settings):
    settings.QUICKBOOKS_CLIENT_SECRET = "not-the-secret"

    with pytest.raises(AuthError, match="client credentials") as caught:
        oauth_client.refresh_token(spec, "AB11whatever")
    assert caught.value.status == 401


def test_unset_client_settings_are_a_permanent_error_naming_them(spec, settings):
    settings.QUICKBOOKS_CLIENT_ID = ""

    with pytest.raises(PermanentError, match="set QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET"):
        oauth_client.authorize_url(spec, redirect_uri=CALLBACK, state="s")


def test_a_token_endpoint_failure_is_transient(spec, qb_sandbox):
    qb_sandbox.fail_token_endpoint()

    with pytest.raises(TransientError, match="failed with 500"):
        oauth_client.refresh_token(spec, qb_sandbox.credentials()["refresh_token"])


def test_a_token_endpoint_slower_than_the_read_timeout_is_transient(spec, qb_sandbox, settings):
    settings.INTEGRATIONS_HTTP_READ_TIMEOUT = 0.2
    qb_sandbox.slow_next(delay=1.0, path="/oauth2/v1/tokens/bearer")

    with pytest.raises(TransientError, match="timed out"):
        oauth_client.refresh_token(spec, qb_sandbox.credentials()["refresh_token"])


def test_a_token_response_without_lifetimes_uses_the_specs():
    now = datetime(2026, 1, 1, tzinfo=UTC)

    tokens = oauth_client.parse_token_response({"access_token": "a", "refresh_token": "r"}, spec=OAUTH, now=now)

    assert (tokens.expires_at, tokens.refresh_token_expires_at) == (
        now + timedelta(hours=1),
        now + timedelta(days=100),
    )


def test_a_token_set_never_prints_its_tokens():
    tokens = oauth_client.TokenSet(access_token="secret-access", refresh_token="secret-refresh")

    assert "secret" not in repr(tokens)


# --- refresh with rotation -------------------------------------------------------------------------------------------


def test_every_refresh_rotates_the_refresh_token_and_the_old_one_stops_working(spec, qb_sandbox):
    first = qb_sandbox.credentials()["refresh_token"]

    rotated = oauth_client.refresh_token(spec, first)

    assert rotated.refresh_token != first
    with pytest.raises(AuthError, match="invalid_grant"):
        oauth_client.refresh_token(spec, first)
    oauth_client.refresh_token(spec, rotated.refresh_token)


def test_refresh_credentials_saves_the_new_access_and_refresh_tokens_together(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    old = dict(connection.credentials)

    returned = provider.refresh_credentials(connection)

    assert connection.saved_credentials == [returned]
    assert returned["refresh_token"] != old["refresh_token"]
    assert returned["access_token"] != old["access_token"]
    assert returned["refresh_token"] in qb_sandbox.active_refresh_tokens()
    assert old["refresh_token"] not in qb_sandbox.active_refresh_tokens()
    assert just_about(datetime.fromisoformat(returned["expires_at"]), timedelta(hours=1))
    assert just_about(datetime.fromisoformat(returned["refresh_token_expires_at"]), timedelta(seconds=8_726_400))


def test_an_invalid_grant_on_refresh_is_an_auth_error_asking_to_reconnect_and_saves_nothing(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    qb_sandbox.revoke_all()

    with pytest.raises(AuthError, match=r"^QuickBooks: .*invalid_grant.*reconnect the integration$"):
        provider.refresh_credentials(connection)
    assert connection.saved_credentials == []


def test_a_401_mid_sync_refreshes_once_and_the_call_succeeds(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    qb_sandbox.expire_access_tokens()

    page = provider.fetch_page(connection, "customers", cursor={}, since=None)

    assert len(page.records) == 12
    assert (connection.refreshes, qb_sandbox.token_grants) == (1, ["refresh_token"])
    assert [r.status for r in qb_sandbox.requests_to(r"/query$")] == [401, 200]
    assert connection.credentials["refresh_token"] in qb_sandbox.active_refresh_tokens()


def test_a_token_in_its_last_minutes_is_refreshed_before_the_call(provider, qb_sandbox):
    credentials = qb_sandbox.credentials()
    credentials["expires_at"] = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    connection = qb_connect(provider, qb_sandbox, credentials=credentials)

    provider.check_connection(connection)

    assert connection.refreshes == 1
    assert [r.status for r in qb_sandbox.requests_to(r"/query$")] == [200]


def test_a_revoked_grant_makes_the_next_call_an_auth_error(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)
    qb_sandbox.revoke_all()

    with pytest.raises(AuthError, match="invalid_grant"):
        provider.check_connection(connection)


def test_revoke_credentials_ends_the_grant_at_intuit(provider, qb_sandbox):
    connection = qb_connect(provider, qb_sandbox)

    provider.revoke_credentials(connection)

    request = qb_sandbox.requests_to(r"/v2/oauth2/tokens/revoke$")[-1]
    assert request.json() == {"token": connection.credentials["refresh_token"]}
    assert qb_sandbox.active_refresh_tokens() == ["AB11sandboxJeweliaDemoRefreshToken000000000000000"]
    with pytest.raises(AuthError):
        provider.check_connection(connection)


def test_no_token_reaches_an_error_message_or_a_log_line(provider, qb_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    connection = qb_connect(provider, qb_sandbox)
    tokens = [connection.credentials["access_token"], connection.credentials["refresh_token"]]
    provider.refresh_credentials(connection)
    qb_sandbox.revoke_all()

    with pytest.raises(AuthError) as caught:
        provider.refresh_credentials(connection)

    tokens += [connection.credentials["access_token"], connection.credentials["refresh_token"]]
    for token in tokens:
        assert token not in str(caught.value) and token not in caplog.text


def test_a_configured_hard_expiry_field_caps_the_refresh_token_expiry(settings):
    settings.QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS = ["refresh_token_max_expires_in", "refresh_token_valid_until"]
    now = datetime(2026, 1, 1, tzinfo=UTC)

    found = _hard_refresh_expiry(
        {"refresh_token_max_expires_in": 86_400 * 700, "refresh_token_valid_until": "2027-06-01T00:00:00Z"}, now=now
    )

    assert found == datetime(2027, 6, 1, tzinfo=UTC)
    settings.QUICKBOOKS_REFRESH_TOKEN_EXPIRY_FIELDS = []
    assert _hard_refresh_expiry({"refresh_token_valid_until": "2027-06-01T00:00:00Z"}, now=now) is None

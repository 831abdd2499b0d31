"""The generic OAuth 2.0 connect flow (`integrations.oauth`) against the QuickBooks sandbox's Intuit endpoints:
start (API and admin button), the provider's consent redirect, the shared callback, and every way it can fail
without changing anything; disconnect with revocation.

The other OAuth and outbox test modules import the fixtures and helpers from here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.messages import get_messages
from django.core import signing

from integrations.models import IdentityMapping, Integration, OAuthState
from integrations.oauth import STATE_SALT
from integrations.providers.registry import get_provider

CALLBACK_PATH = "/api/oauth/callback/"


@pytest.fixture
def staff_session(api_client, staff_user):
    """A logged-in staff browser (a session, so the plain callback view sees the user too)."""
    api_client.force_login(staff_user)
    return api_client


@pytest.fixture
def make_qb_integration(db, qb_sandbox):
    """A QuickBooks integration on the sandbox: a draft without tokens, or active with sandbox-issued ones."""
    from integrations.services import integration_create
    from jewelia.core.actors import Actor

    def make(*, connected: bool = False, sandbox=None, name: str = "QuickBooks", **config):
        sandbox = sandbox or qb_sandbox
        base = sandbox.config(**config)
        if not connected:
            base.pop("realm_id")
        return integration_create(
            actor=Actor.system("tests"),
            name=name,
            provider="quickbooks",
            config=base,
            credentials=sandbox.credentials() if connected else None,
        )

    return make


def consent(authorize_url: str) -> str:
    """Follow the authorize URL as the user's browser would; the callback path and query it is sent back to."""
    response = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == CALLBACK_PATH
    return f"{location.path}?{location.query}"


def oauth_connect(client, integration) -> object:
    """The whole flow through the API: start, consent at the sandbox, callback. Returns the callback response."""
    started = client.post(f"/api/integrations/{integration.pk}/oauth/start/")
    assert started.status_code == 200, started.content
    return client.get(consent(started.json()["authorize_url"]))


def flash(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def snapshot(integration) -> tuple:
    row = Integration.objects.get(pk=integration.pk)
    return (row.status, row.config, row.credentials_encrypted, row.next_sync_at)


# --- the flow that works ----------------------------------------------------------------------------------------------


def test_connecting_stores_the_tokens_and_realm_activates_and_returns_to_the_admin_page(
    staff_session, make_qb_integration, qb_sandbox
):
    integration = make_qb_integration()

    response = oauth_connect(staff_session, integration)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/integrations/integration/{integration.pk}/change/"
    assert flash(response) == [("success", "Connected to QuickBooks Online.")]
    integration.refresh_from_db()
    credentials = integration.get_credentials()
    assert integration.status == "active" and integration.config["realm_id"] == qb_sandbox.realm_id
    assert qb_sandbox.token_grants == ["authorization_code"]
    assert qb_sandbox.active_refresh_tokens()[-1] == credentials["refresh_token"]
    expires_at = datetime.fromisoformat(credentials["expires_at"])
    assert abs((expires_at - datetime.now(UTC) - timedelta(hours=1)).total_seconds()) < 60
    assert credentials["refresh_token"] not in integration.credentials_encrypted
    assert OAuthState.objects.get().outcome == "connected"


def test_a_connected_integration_can_call_the_provider(staff_session, make_qb_integration):
    integration = make_qb_integration()
    oauth_connect(staff_session, integration)
    integration.refresh_from_db()

    provider = get_provider("quickbooks")
    from integrations.sync.connection import connection_build

    provider.check_connection(connection_build(integration, provider=provider))


def test_start_returns_the_authorize_url_with_a_signed_state_bound_to_the_integration(
    staff_session, make_qb_integration, qb_sandbox, settings
):
    integration = make_qb_integration()

    body = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/").json()

    query = parse_qs(urlsplit(body["authorize_url"]).query)
    assert body["authorize_url"].startswith(qb_sandbox.url + "/connect/oauth2?")
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"] == [settings.SITE_URL + CALLBACK_PATH] == [body["redirect_uri"]]
    assert query["state"] == [body["state"]]
    state = signing.loads(body["state"], salt=STATE_SALT)
    row = OAuthState.objects.get()
    assert state == {"n": row.nonce, "i": str(integration.pk)}
    assert (row.started_by_type, row.consumed_at) == ("user", None)
    assert abs((row.expires_at - row.created_at).total_seconds() - 600) < 2


def test_the_admin_connect_button_starts_the_same_flow(staff_session, make_qb_integration):
    integration = make_qb_integration()
    page = staff_session.get(f"/admin/integrations/integration/{integration.pk}/change/")
    assert b">Connect</a>" in page.content

    start = staff_session.post(f"/admin/integrations/integration/{integration.pk}/oauth/connect/")
    done = staff_session.get(consent(start["Location"]))

    assert flash(done) == [("success", "Connected to QuickBooks Online.")]
    assert Integration.objects.get(pk=integration.pk).status == "active"
    page = staff_session.get(f"/admin/integrations/integration/{integration.pk}/change/")
    assert b">Reconnect</a>" in page.content and b">Disconnect</a>" in page.content


def test_an_api_key_can_start_the_flow_and_the_browser_needs_no_session(make_qb_integration, api_client):
    from integrations.tests.test_api import _key_client

    integration = make_qb_integration()
    writer, reader = _key_client("integrations:write"), _key_client("integrations:read")

    assert reader.post(f"/api/integrations/{integration.pk}/oauth/start/").status_code == 403
    started = writer.post(f"/api/integrations/{integration.pk}/oauth/start/").json()
    api_client.get(consent(started["authorize_url"]))

    assert Integration.objects.get(pk=integration.pk).status == "active"
    assert OAuthState.objects.get().started_by_type == "api_key"


def test_a_provider_without_oauth_cannot_start_the_flow(staff_session, make_integration):
    integration = make_integration()

    response = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_oauth"
    assert OAuthState.objects.count() == 0


def test_starting_without_the_apps_client_credentials_names_the_settings(staff_session, make_qb_integration, settings):
    integration = make_qb_integration()
    settings.QUICKBOOKS_CLIENT_SECRET = ""

    response = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "oauth_not_configured",
        "message": "OAuth is not configured: set QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET",
        "details": {},
        "request_id": response.json()["error"]["request_id"],
    }


# --- failures change nothing ------------------------------------------------------------------------------------------


def test_denied_consent_ends_on_a_message_and_changes_nothing(staff_session, make_qb_integration, qb_sandbox):
    integration = make_qb_integration()
    before = snapshot(integration)
    qb_sandbox.deny_consent()

    response = oauth_connect(staff_session, integration)

    assert response["Location"] == f"/admin/integrations/integration/{integration.pk}/change/"
    denied = "QuickBooks Online: access was not granted (consent denied). Nothing changed."
    assert flash(response) == [("error", denied)]
    assert snapshot(integration) == before
    assert qb_sandbox.token_grants == []
    assert OAuthState.objects.get().outcome == "denied"


def test_a_replayed_callback_is_refused_and_changes_nothing(staff_session, make_qb_integration, qb_sandbox):
    integration = make_qb_integration()
    started = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/").json()
    callback = consent(started["authorize_url"])
    assert flash(staff_session.get(callback)) == [("success", "Connected to QuickBooks Online.")]
    after_first = snapshot(integration)

    replayed = staff_session.get(callback)

    # (the first callback's message is still waiting to be shown: it is not consumed until a page renders it)
    assert flash(replayed)[-1] == ("error", "This connection link was already used. Start the connection again.")
    assert snapshot(integration) == after_first
    assert qb_sandbox.token_grants == ["authorization_code"]


def test_a_token_endpoint_failure_ends_on_a_message_and_changes_nothing(staff_session, make_qb_integration, qb_sandbox):
    integration = make_qb_integration()
    before = snapshot(integration)
    qb_sandbox.fail_token_endpoint()

    response = oauth_connect(staff_session, integration)

    assert flash(response) == [
        (
            "error",
            "QuickBooks Online did not hand out tokens (Could not obtain tokens: the OAuth endpoint failed with 500)."
            " Nothing changed; connect again.",
        )
    ]
    assert snapshot(integration) == before
    assert OAuthState.objects.get().outcome == "failed"


def test_a_forged_state_is_refused_and_sent_to_the_integrations_list(staff_session, make_qb_integration, qb_sandbox):
    integration = make_qb_integration()
    before = snapshot(integration)
    started = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/").json()
    callback = consent(started["authorize_url"])

    response = staff_session.get(callback.replace("state=", "state=x"))

    assert response["Location"] == "/admin/integrations/integration/"
    assert flash(response) == [
        ("error", "The provider sent you back without a valid state, so the connection was refused. Start it again.")
    ]
    assert snapshot(integration) == before and qb_sandbox.token_grants == []


def test_a_state_older_than_its_lifetime_is_refused(staff_session, make_qb_integration, qb_sandbox, monkeypatch):
    integration = make_qb_integration()
    before = snapshot(integration)
    started = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/").json()
    callback = consent(started["authorize_url"])
    real_time = signing.time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() + 601)

    response = staff_session.get(callback)

    assert flash(response) == [
        ("error", "The connection attempt expired before the provider sent you back. Start it again.")
    ]
    assert snapshot(integration) == before and qb_sandbox.token_grants == []


def test_the_callback_must_come_back_to_the_user_who_started(
    staff_session, make_qb_integration, qb_sandbox, django_user_model
):
    from rest_framework.test import APIClient

    integration = make_qb_integration()
    before = snapshot(integration)
    started = staff_session.post(f"/api/integrations/{integration.pk}/oauth/start/").json()
    other = APIClient()
    other.force_login(django_user_model.objects.create_superuser("mallory", "m@example.com", "pw"))

    response = other.get(consent(started["authorize_url"]))

    assert flash(response) == [
        ("error", "This connection was started by staff; sign in as that user, or start it again yourself.")
    ]
    assert snapshot(integration) == before and qb_sandbox.token_grants == []


def test_a_grant_for_another_company_than_the_synced_one_is_refused_and_revoked(
    staff_session, make_qb_integration, make_qb_sandbox, qb_sandbox
):
    from django.contrib.contenttypes.models import ContentType

    from orders.models import Customer

    integration = make_qb_integration(connected=True)
    customer = Customer.objects.create(name="Ada")
    IdentityMapping.objects.create(
        integration=integration,
        resource="customers",
        external_id="59",
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=customer.pk,
        content_hash="x",
    )
    other_company = make_qb_sandbox(realm_id="4620816365000000001")
    Integration.objects.filter(pk=integration.pk).update(
        config={**integration.config, "oauth_base_url": other_company.url}
    )
    before = snapshot(integration)

    response = oauth_connect(staff_session, integration)

    assert flash(response) == [
        (
            "error",
            "QuickBooks Online connected a different account (realm_id changed) than the one this integration has "
            "synced. Nothing changed; create a new integration for that account.",
        )
    ]
    assert snapshot(integration) == before
    assert other_company.active_refresh_tokens() == ["AB11sandboxJeweliaDemoRefreshToken000000000000000"]


# --- disconnect -------------------------------------------------------------------------------------------------------


def test_disconnect_revokes_the_grant_at_the_provider_and_forgets_the_tokens(
    staff_session, make_qb_integration, qb_sandbox
):
    integration = make_qb_integration(connected=True)
    refresh_token = integration.get_credentials()["refresh_token"]

    response = staff_session.post(f"/api/integrations/{integration.pk}/disconnect/", {}, format="json")

    assert response.status_code == 200 and response.json()["status"] == "disconnected"
    assert refresh_token not in qb_sandbox.active_refresh_tokens()
    assert qb_sandbox.requests_to(r"/v2/oauth2/tokens/revoke$")[-1].json() == {"token": refresh_token}
    assert Integration.objects.get(pk=integration.pk).get_credentials() == {}


def test_a_disconnect_the_provider_cannot_revoke_changes_nothing_unless_forced(
    staff_session, make_qb_integration, qb_sandbox
):
    integration = make_qb_integration(connected=True)
    before = snapshot(integration)
    qb_sandbox.fail_next(1, status=503, path="/v2/oauth2/tokens/revoke")

    refused = staff_session.post(f"/api/integrations/{integration.pk}/disconnect/", {}, format="json")

    assert refused.status_code == 502 and refused.json()["error"]["code"] == "provider_error"
    assert snapshot(integration) == before
    qb_sandbox.fail_next(1, status=503, path="/v2/oauth2/tokens/revoke")
    forced = staff_session.post(f"/api/integrations/{integration.pk}/disconnect/", {"force": True}, format="json")
    assert forced.status_code == 200 and Integration.objects.get(pk=integration.pk).get_credentials() == {}


def test_the_admin_disconnect_button_revokes_too(staff_session, make_qb_integration, qb_sandbox):
    integration = make_qb_integration(connected=True)
    refresh_token = integration.get_credentials()["refresh_token"]

    confirm = staff_session.get(f"/admin/integrations/integration/{integration.pk}/oauth/disconnect/")
    done = staff_session.post(f"/admin/integrations/integration/{integration.pk}/oauth/disconnect/")

    assert confirm.status_code == 200 and b"revoked at QuickBooks Online" in confirm.content
    assert done.status_code == 302 and refresh_token not in qb_sandbox.active_refresh_tokens()
    assert Integration.objects.get(pk=integration.pk).status == "disconnected"


# --- a provider with nothing but an OAuth spec ------------------------------------------------------------------------


def generic_oauth_provider(sandbox, *, pkce: bool = False):
    """A provider that declares only its OAuthSpec (the sandbox's Intuit endpoints): everything else is the base
    class's generic flow, refresh and RFC 7009 revocation."""
    from integrations.providers.base import AuthKind, Category, OAuthSpec, Provider

    class GenericOAuthProvider(Provider):
        key = "genericoauth"
        name = "Generic OAuth"
        category = Category.ACCOUNTING
        auth_kind = AuthKind.OAUTH2
        oauth = OAuthSpec(
            authorize_url=sandbox.url + "/connect/oauth2",
            token_url=sandbox.url + "/oauth2/v1/tokens/bearer",
            revoke_url=sandbox.url + "/v2/oauth2/tokens/revoke",
            scopes=("com.intuit.quickbooks.accounting",),
            client_id_setting="QUICKBOOKS_CLIENT_ID",
            client_secret_setting="QUICKBOOKS_CLIENT_SECRET",
            pkce=pkce,
        )

    return GenericOAuthProvider


@pytest.fixture
def generic_integration(db, monkeypatch, qb_sandbox):
    from integrations.services import integration_create
    from integrations.tests.conftest import register_provider
    from jewelia.core.actors import Actor

    register_provider(monkeypatch, generic_oauth_provider(qb_sandbox, pkce=True))
    return integration_create(actor=Actor.system("tests"), name="Generic", provider="genericoauth")


def test_any_oauth_provider_connects_through_the_same_flow_with_pkce(staff_session, generic_integration, qb_sandbox):
    import base64
    import hashlib

    started = staff_session.post(f"/api/integrations/{generic_integration.pk}/oauth/start/").json()
    response = staff_session.get(consent(started["authorize_url"]))

    assert flash(response) == [("success", "Connected to Generic OAuth.")]
    query = parse_qs(urlsplit(started["authorize_url"]).query)
    assert query["code_challenge_method"] == ["S256"]
    sent = parse_qs(qb_sandbox.requests_to(r"/tokens/bearer$")[-1].body.decode())
    verifier = sent["code_verifier"][0]
    assert (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        == (query["code_challenge"][0])
    )
    row = Integration.objects.get(pk=generic_integration.pk)
    assert row.status == "active" and row.get_credentials()["refresh_token"] in qb_sandbox.active_refresh_tokens()
    assert verifier not in OAuthState.objects.get().code_verifier_encrypted


def test_any_oauth_provider_disconnects_with_an_rfc7009_revocation(staff_session, generic_integration, qb_sandbox):
    oauth_connect(staff_session, generic_integration)
    refresh_token = Integration.objects.get(pk=generic_integration.pk).get_credentials()["refresh_token"]

    response = staff_session.post(f"/api/integrations/{generic_integration.pk}/disconnect/", {}, format="json")

    assert response.status_code == 200
    revoke = qb_sandbox.requests_to(r"/v2/oauth2/tokens/revoke$")[-1]
    assert parse_qs(revoke.body.decode()) == {"token": [refresh_token], "token_type_hint": ["refresh_token"]}
    assert refresh_token not in qb_sandbox.active_refresh_tokens()


def test_any_oauth_provider_refreshes_with_rotation_keeping_its_other_secrets(generic_integration, qb_sandbox):
    from integrations.providers.registry import get_provider as registered
    from integrations.sync.connection import connection_build

    row = Integration.objects.get(pk=generic_integration.pk)
    row.set_credentials({**qb_sandbox.credentials(), "webhook_secret": "kept-secret"})
    row.save()
    old = row.get_credentials()

    fresh = connection_build(row, provider=registered("genericoauth")).refresh()

    stored = Integration.objects.get(pk=row.pk).get_credentials()
    assert stored == fresh and stored["webhook_secret"] == "kept-secret"
    assert (
        stored["refresh_token"] != old["refresh_token"]
        and stored["refresh_token"] in qb_sandbox.active_refresh_tokens()
    )

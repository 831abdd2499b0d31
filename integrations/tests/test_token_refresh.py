"""Token refresh through the engine's connection (`integrations.sync.connection`) against the QuickBooks sandbox,
which rotates the refresh token on every use: before expiry and on a 401, once under concurrency, always storing
the newest token; a refused grant disconnects once with a reconnect link; expiring refresh tokens warn once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection as db_connection

from integrations.errors import AuthError
from integrations.models import Integration
from integrations.oauth import oauth_refresh_expiry_warn
from integrations.providers.registry import get_provider
from integrations.sync import connection as connection_module
from integrations.sync.connection import connection_build
from integrations.tests import test_oauth_flow as flow

# Fixtures shared with the connect-flow tests.
make_qb_integration = flow.make_qb_integration
staff_session, oauth_connect = flow.staff_session, flow.oauth_connect

PROVIDER = get_provider("quickbooks")


@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    return mail.outbox


def stored(integration) -> dict:
    return Integration.objects.get(pk=integration.pk).get_credentials()


def expire(integration, sandbox) -> None:
    """The access token ran out: at the sandbox, and by the stored expiry time."""
    sandbox.expire_access_tokens()
    row = Integration.objects.get(pk=integration.pk)
    credentials = row.get_credentials()
    credentials["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    row.set_credentials(credentials)
    row.save(update_fields=["credentials_encrypted"])


def check(integration) -> None:
    row = Integration.objects.get(pk=integration.pk)
    PROVIDER.check_connection(connection_build(row, provider=PROVIDER))


# --- one worker -------------------------------------------------------------------------------------------------------


def test_a_token_past_its_expiry_is_refreshed_before_the_call_and_both_new_tokens_are_stored(
    make_qb_integration, qb_sandbox
):
    integration = make_qb_integration(connected=True)
    old = stored(integration)
    expire(integration, qb_sandbox)

    check(integration)

    new = stored(integration)
    assert qb_sandbox.token_grants == ["refresh_token"]
    assert [r.status for r in qb_sandbox.requests_to(r"/query$")] == [200]
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert qb_sandbox.active_refresh_tokens()[-1] == new["refresh_token"]
    assert old["refresh_token"] not in qb_sandbox.active_refresh_tokens()
    assert datetime.fromisoformat(new["expires_at"]) > datetime.now(UTC) + timedelta(minutes=55)


def test_a_401_refreshes_once_and_persists_the_rotated_refresh_token(make_qb_integration, qb_sandbox):
    integration = make_qb_integration(connected=True)
    qb_sandbox.expire_access_tokens()  # the stored expiry still says the token is good

    check(integration)

    assert [r.status for r in qb_sandbox.requests_to(r"/query$")] == [401, 200]
    assert qb_sandbox.token_grants == ["refresh_token"]
    assert stored(integration)["refresh_token"] == qb_sandbox.active_refresh_tokens()[-1]


def test_a_worker_holding_old_tokens_uses_the_ones_another_worker_stored(make_qb_integration, qb_sandbox):
    integration = make_qb_integration(connected=True)
    row = Integration.objects.get(pk=integration.pk)
    first, second = connection_build(row, provider=PROVIDER), connection_build(row, provider=PROVIDER)
    qb_sandbox.expire_access_tokens()

    PROVIDER.check_connection(first)
    PROVIDER.check_connection(second)

    assert qb_sandbox.token_grants == ["refresh_token"]
    assert second.credentials == first.credentials == stored(integration)


# --- many workers at once ---------------------------------------------------------------------------------------------


def _twenty_workers_hit_an_expired_token(integration, sandbox) -> list:
    expire(integration, sandbox)
    barrier = threading.Barrier(20)
    outcomes: list = []

    def worker() -> None:
        try:
            row = Integration.objects.get(pk=integration.pk)
            connection = connection_build(row, provider=PROVIDER)
            barrier.wait(timeout=10)
            PROVIDER.check_connection(connection)
            outcomes.append("ok")
        except Exception as exc:  # recorded and asserted on below
            outcomes.append(repr(exc))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.services
def test_twenty_concurrent_workers_on_an_expired_token_refresh_once_and_all_succeed(
    transactional_db, make_qb_sandbox, make_qb_integration, monkeypatch
):
    """Each thread acts as a separate worker process (no process-local lock shared): the row lock alone
    serialises them, each on its own PostgreSQL connection."""
    monkeypatch.setattr(connection_module, "_process_lock", lambda integration_id: threading.Lock())
    sandbox = make_qb_sandbox(max_concurrent=50)
    integration = make_qb_integration(connected=True, sandbox=sandbox)

    outcomes = _twenty_workers_hit_an_expired_token(integration, sandbox)

    assert outcomes == ["ok"] * 20
    assert sandbox.token_grants == ["refresh_token"]
    assert stored(integration)["refresh_token"] == sandbox.active_refresh_tokens()[-1]


@pytest.mark.skipif(settings.USING_POSTGRES, reason="PostgreSQL runs the variant above, with the row lock alone")
def test_twenty_concurrent_threads_on_sqlite_refresh_once_too(transactional_db, make_qb_sandbox, make_qb_integration):
    """The process-local half of the lock: threads of one worker queue up before touching the database (on
    SQLite, where `SELECT ... FOR UPDATE` does nothing, it is the whole lock)."""
    sandbox = make_qb_sandbox(max_concurrent=50)
    integration = make_qb_integration(connected=True, sandbox=sandbox)

    outcomes = _twenty_workers_hit_an_expired_token(integration, sandbox)

    assert outcomes == ["ok"] * 20
    assert sandbox.token_grants == ["refresh_token"]
    assert stored(integration)["refresh_token"] == sandbox.active_refresh_tokens()[-1]


# --- a refused grant --------------------------------------------------------------------------------------------------


def test_invalid_grant_disconnects_with_one_alert_and_reconnecting_works(
    make_qb_integration, qb_sandbox, admins, staff_session, django_capture_on_commit_callbacks
):
    integration = make_qb_integration(connected=True)
    qb_sandbox.revoke_all()  # the user disconnected the app in QuickBooks

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):  # three workers in turn
            with pytest.raises(AuthError):
                check(integration)

    row = Integration.objects.get(pk=integration.pk)
    assert (row.status, row.health_status) == ("disconnected", "disconnected")
    assert qb_sandbox.token_grants == [] and len(qb_sandbox.requests_to(r"/tokens/bearer$")) == 1
    assert [m.subject for m in admins] == ["[Django] Integration QuickBooks: disconnected"]
    assert f"Reconnect: http://127.0.0.1:8000/admin/integrations/integration/{row.pk}/oauth/connect/" in admins[0].body

    oauth_connect(staff_session, integration)

    assert Integration.objects.get(pk=integration.pk).status == "active"
    check(integration)


def test_a_sync_run_on_a_refused_grant_fails_as_auth_without_a_second_alert(
    make_qb_integration, qb_sandbox, admins, run_sync
):
    integration = make_qb_integration(connected=True)
    expire(integration, qb_sandbox)
    qb_sandbox.revoke_all()

    run = run_sync(Integration.objects.get(pk=integration.pk), resources=["customers"])

    assert (run.status, run.error_kind) == ("failed", "auth")
    assert Integration.objects.get(pk=integration.pk).status == "disconnected"
    assert len(admins) == 1


# --- refresh tokens running out ---------------------------------------------------------------------------------------


def _refresh_expiry(integration, when: datetime) -> None:
    row = Integration.objects.get(pk=integration.pk)
    row.set_credentials({**row.get_credentials(), "refresh_token_expires_at": when.isoformat()})
    row.save(update_fields=["credentials_encrypted"])


def test_a_refresh_token_expiring_within_the_warning_window_alerts_once(make_qb_integration, admins):
    integration = make_qb_integration(connected=True)
    expires = datetime.now(UTC) + timedelta(days=5)
    _refresh_expiry(integration, expires)

    first, second = oauth_refresh_expiry_warn(), oauth_refresh_expiry_warn()

    assert (first, second) == ([str(integration.pk)], [])
    assert [m.subject for m in admins] == [f"[Django] Integration QuickBooks: reconnect before {expires:%Y-%m-%d}"]
    assert "its OAuth authorization expires in 5 days" in admins[0].body
    assert "/oauth/connect/" in admins[0].body


def test_a_new_refresh_token_gets_its_own_warning(make_qb_integration, admins):
    integration = make_qb_integration(connected=True)
    _refresh_expiry(integration, datetime.now(UTC) + timedelta(days=5))
    oauth_refresh_expiry_warn()

    _refresh_expiry(integration, datetime.now(UTC) + timedelta(days=6))

    assert oauth_refresh_expiry_warn() == [str(integration.pk)]
    assert len(admins) == 2


def test_a_refresh_token_far_from_expiry_does_not_warn(make_qb_integration, admins):
    integration = make_qb_integration(connected=True)  # the sandbox's refresh tokens last 101 days

    assert oauth_refresh_expiry_warn() == []
    assert admins == [] and Integration.objects.get(pk=integration.pk).refresh_token_warned_for is None

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apikeys import tokens
from apikeys.models import ApiKey

from .factories import create_key

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_prints_the_key_once():
    output = _run(
        "apikey_create", "--name", "Nightly export", "--scope", "orders:read", "--scope", "customers:read",
        "--expires-in", "30d", "--allowed-network", "10.0.0.0/8", "--rate-limit", "30",
    )  # fmt: skip
    key = ApiKey.objects.get()
    header, raw = output.splitlines()
    assert header == f"Created API key {key.identifier} (id {key.pk}), shown once:"
    assert tokens.matches(raw, key.key_hash)
    assert (key.name, key.scopes, key.allowed_networks, key.rate_limit_per_minute) == (
        "Nightly export",
        ["orders:read", "customers:read"],
        ["10.0.0.0/8"],
        30,
    )
    assert (key.created_by_type, key.created_by_label) == ("system", "manage.py apikey_create")


def test_create_refuses_bad_input_and_creates_nothing():
    with pytest.raises(CommandError, match="expires_at"):
        _run("apikey_create", "--name", "x", "--scope", "orders:read", "--expires-in", "400d")
    with pytest.raises(CommandError, match="duration"):
        _run("apikey_create", "--name", "x", "--scope", "orders:read", "--expires-in", "soon")
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("by", ["id", "identifier"])
def test_revoke_by_id_or_identifier(by):
    key, _ = create_key(name="Old shop")
    output = _run("apikey_revoke", str(key.pk) if by == "id" else key.identifier)
    assert output == f"Revoked API key {key.identifier} (Old shop).\n"
    key.refresh_from_db()
    assert (key.revoked_by_type, key.revoked_by_label) == ("system", "manage.py apikey_revoke")


def test_revoke_unknown_key_fails():
    with pytest.raises(CommandError, match="No API key"):
        _run("apikey_revoke", "jwl_doesnotexist")


def test_list_shows_identifiers_and_status_but_no_secret():
    key, raw = create_key(name="Listed", scopes=["orders:read"])
    output = _run("apikey_list")
    assert key.identifier in output
    assert "active" in output
    assert "Listed / orders:read" in output
    assert raw not in output and key.key_hash not in output


def test_list_filters_by_status():
    create_key(name="Kept")
    gone, _ = create_key(name="Gone")
    _run("apikey_revoke", str(gone.pk))
    output = _run("apikey_list", "--status", "revoked")
    assert "Gone" in output and "Kept" not in output

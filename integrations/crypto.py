"""Encryption at rest for integration secrets (DESIGN.md rule 5).

Credentials are stored as a Fernet token of their JSON. Keys come from `FIELD_ENCRYPTION_KEYS`: a comma-separated
list of urlsafe-base64 32-byte Fernet keys, newest first. `MultiFernet` encrypts with the first key and decrypts
with any of them, so a rotation is: put a new key in front, deploy, run `manage.py rotate_encryption_key` (which
re-encrypts every row with the newest key), then drop the old key.

With no keys configured (development, tests) one key is derived from `SECRET_KEY`, so a fresh laptop works
without setup. Production should set `FIELD_ENCRYPTION_KEYS`: the derived key changes whenever `SECRET_KEY`
does, which would make every stored secret unreadable.
"""

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """A stored secret cannot be read with any configured key (a key was dropped before rotating)."""


def derived_key(secret_key: str) -> bytes:
    """The development/test key: SHA-256 of SECRET_KEY with a purpose label, as a Fernet key."""
    digest = hashlib.sha256(b"jewelia.integrations.credentials:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    raw = [key.strip() for key in keys if key.strip()] or [derived_key(secret_key).decode()]
    try:
        return MultiFernet([Fernet(key.encode()) for key in raw])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must hold urlsafe-base64 32-byte Fernet keys") from exc


def fernet() -> MultiFernet:
    return _multifernet(tuple(getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) or ()), settings.SECRET_KEY)


def encrypt_json(value: dict[str, Any]) -> str:
    """Encrypt a JSON-serialisable dict; an empty dict is stored as an empty string (nothing to protect)."""
    if not value:
        return ""
    return fernet().encrypt(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise DecryptionError("stored credentials cannot be decrypted with the configured keys") from exc


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (MultiFernet.rotate); empty stays empty."""
    if not token:
        return ""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored credentials cannot be decrypted with the configured keys") from exc

"""The API-key format: generation, offline validation and hashing.

A key looks like ``jwl_<public id>_<secret><checksum>``, for example::

    jwl_4fQm2ZkP9sXa_0Q3l...(43 characters)...Vd81Kp

- ``jwl_`` is a fixed prefix so leaked keys are easy to grep for and to register with secret scanners;
- the public id (12 base62 characters) identifies the row and is shown in lists; it is not secret;
- the secret is 256 bits from `secrets`, base62-encoded in 43 characters;
- the checksum is the CRC32 of everything before it, base62 in 6 characters (as GitHub's tokens do), so a
  mistyped or truncated key is refused before any cache or database lookup.

Only an HMAC-SHA256 of the whole key is stored. Keys carry 256 bits of entropy, so a fast keyed hash is as
strong as a password hasher here and keeps verification at a few microseconds; the pepper (server-side HMAC
key) means a stolen database alone is not enough to test guesses offline.
"""

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

PREFIX = "jwl_"
PUBLIC_ID_LENGTH = 12
SECRET_BITS = 256
SECRET_LENGTH = 43  # 62**43 > 2**256
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_LENGTH = len(PREFIX) + PUBLIC_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_RE = re.compile(
    rf"^{PREFIX}(?P<public_id>[0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


@dataclass(frozen=True)
class ParsedKey:
    public_id: str


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, _ALPHABET[0])


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_public_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


def generate(public_id: str) -> str:
    """A new key for `public_id`; the caller shows it once and stores only `key_hash(key)`."""
    body = f"{PREFIX}{public_id}_{_base62(secrets.randbits(SECRET_BITS), SECRET_LENGTH)}"
    return body + _checksum(body)


def parse(raw: str) -> ParsedKey | None:
    """The key's public id when `raw` is well formed and its checksum matches; None otherwise (no I/O)."""
    if len(raw) != KEY_LENGTH:
        return None
    match = _KEY_RE.match(raw)
    if match is None or _checksum(raw[:-CHECKSUM_LENGTH]) != match["checksum"]:
        return None
    return ParsedKey(public_id=match["public_id"])


def display_prefix(public_id: str) -> str:
    """What lists show to identify a key: enough to recognise it, nothing secret."""
    return f"{PREFIX}{public_id}"


@lru_cache(maxsize=4)
def _derived_pepper(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"jewelia.apikeys.pepper.v1", hashlib.sha256).digest()


def _pepper() -> bytes:
    configured = settings.APIKEYS_PEPPER
    return configured.encode() if configured else _derived_pepper(settings.SECRET_KEY)


def key_hash(raw: str) -> str:
    """HMAC-SHA256 of the whole key under the server-side pepper, as 64 hex characters."""
    return hmac.new(_pepper(), raw.encode("ascii"), hashlib.sha256).hexdigest()


def matches(raw: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key against a stored hash."""
    return hmac.compare_digest(key_hash(raw), stored_hash)

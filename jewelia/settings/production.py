"""Production differs from base only by environment variables, and refuses unsafe ones."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import APIKEYS_PEPPER, DEBUG, FIELD_ENCRYPTION_KEYS, SECRET_KEY, env

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or set DEBUG=false).")
if not SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 32 characters in production.")
# Dev and test derive these two from SECRET_KEY. In production that would tie every API key's hash and every
# stored credential to SECRET_KEY: rotating it would silently invalidate all keys and make credentials unreadable.
if not APIKEYS_PEPPER or len(APIKEYS_PEPPER) < 32:
    raise ImproperlyConfigured("APIKEYS_PEPPER must be set to a random value of at least 32 characters in production.")
if not [key for key in FIELD_ENCRYPTION_KEYS if key.strip()]:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS must hold at least one Fernet key in production (generate one with "
        '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).'
    )

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_CONTENT_TYPE_NOSNIFF = True
# /healthz and /readyz are probed over plain HTTP by the orchestrator.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

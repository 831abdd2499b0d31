"""Writes of API keys (what views, admin actions, commands and tasks call)."""

from .expiry import api_key_expiry_notify
from .keys import (
    MAX_GRACE_PERIOD,
    PrivilegeEscalation,
    api_key_check_expiry,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
)
from .usage import api_key_usage_flush

__all__ = [
    "MAX_GRACE_PERIOD",
    "PrivilegeEscalation",
    "api_key_check_expiry",
    "api_key_create",
    "api_key_expiry_notify",
    "api_key_revoke",
    "api_key_rotate",
    "api_key_update",
    "api_key_usage_flush",
]

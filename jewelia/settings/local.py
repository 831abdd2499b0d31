"""Development on a laptop: DEBUG on, a throwaway secret when none is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="") or "insecure-local-development-key-do-not-use-in-production"

# The provider sandbox (`python -m integrations.sandbox`) runs on this machine: let integrations reach it.
INTEGRATIONS_ALLOWED_LOCAL_HOSTS = env.list("INTEGRATIONS_ALLOWED_LOCAL_HOSTS", default=["127.0.0.1", "localhost"])

# The QuickBooks sandbox's demo Intuit app (integrations/sandbox/quickbooks.py), so the seeded integration can
# refresh and reconnect locally. Production reads the real app's id and secret from the environment.
QUICKBOOKS_CLIENT_ID = env.str("QUICKBOOKS_CLIENT_ID", default="ABsandboxJeweliaQuickBooksClientId00000000000000")
QUICKBOOKS_CLIENT_SECRET = env.str("QUICKBOOKS_CLIENT_SECRET", default="sandbox-quickbooks-client-secret-0000000000")
# and its webhook verifier token, for the app-level receiver POST /api/webhooks/providers/quickbooks/.
QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS = env.list(
    "QUICKBOOKS_WEBHOOK_VERIFIER_TOKENS", default=["sandbox-intuit-verifier-token-000000000000"]
)

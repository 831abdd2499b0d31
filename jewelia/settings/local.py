"""Development on a laptop: DEBUG on, a throwaway secret when none is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="") or "insecure-local-development-key-do-not-use-in-production"

# The provider sandbox (`python -m integrations.sandbox`) runs on this machine: let integrations reach it.
INTEGRATIONS_ALLOWED_LOCAL_HOSTS = env.list("INTEGRATIONS_ALLOWED_LOCAL_HOSTS", default=["127.0.0.1", "localhost"])

"""Development on a laptop: DEBUG on, a throwaway secret when none is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="") or "insecure-local-development-key-do-not-use-in-production"

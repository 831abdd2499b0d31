"""Test runs: the same services as configured (SQLite by default, PostgreSQL/Redis when their URLs are set)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="") or "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["*"]
# Provider sandboxes listen on 127.0.0.1 in tests (worker subprocesses read this too).
INTEGRATIONS_ALLOWED_LOCAL_HOSTS = env.list("INTEGRATIONS_ALLOWED_LOCAL_HOSTS", default=["127.0.0.1", "localhost"])

# Tasks run inline unless a test starts a real worker (the `celery_worker_process` fixture switches this off).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)

# A test database of its own per test process, so that concurrent runs on one PostgreSQL server (developers,
# helpers, CI) never drop each other's database.
if USING_POSTGRES:  # noqa: F405
    import os

    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405

# The QuickBooks sandbox's demo Intuit app (integrations/sandbox/quickbooks.py), so the seeded integration can
# refresh and reconnect locally. Production reads the real app's id and secret from the environment.
QUICKBOOKS_CLIENT_ID = env.str("QUICKBOOKS_CLIENT_ID", default="ABsandboxJeweliaQuickBooksClientId00000000000000")
QUICKBOOKS_CLIENT_SECRET = env.str("QUICKBOOKS_CLIENT_SECRET", default="sandbox-quickbooks-client-secret-0000000000")

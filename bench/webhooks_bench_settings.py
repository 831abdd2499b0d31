"""Settings of `bench/webhooks_bench.py`'s gunicorn server and worker: production settings (everything from the
environment, as deployed) with the bench URLconf, which adds the two comparison views to the project's URLs."""

from jewelia.settings.production import *  # noqa: F403

ROOT_URLCONF = "webhooks_bench_urls"
ALLOWED_HOSTS = ["127.0.0.1"]

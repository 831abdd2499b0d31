from celery import shared_task
from django.core.cache import cache


@shared_task(name="core.heartbeat")
def heartbeat(token: str) -> None:
    """Write a token into the cache: operators and tests use it to prove a worker consumes the broker."""
    cache.set(f"heartbeat:{token}", "seen", timeout=300)

from celery import shared_task

from .services import api_key_expiry_notify, api_key_usage_flush


@shared_task(name="apikeys.flush_usage", ignore_result=True)
def flush_usage() -> int:
    """Move API-key usage counters from the cache to the database (beat: every APIKEYS_USAGE_FLUSH_SECONDS)."""
    return api_key_usage_flush()


@shared_task(name="apikeys.notify_expiring", ignore_result=True)
def notify_expiring() -> int:
    """Mail staff about keys that expire soon; each key is named once (beat: hourly)."""
    return api_key_expiry_notify()

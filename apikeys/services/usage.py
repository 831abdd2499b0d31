"""Moving usage counters from the cache into the database."""

from django.db import transaction
from django.db.models import F, Q

from apikeys.cache import UsageBatch, key_store
from apikeys.models import ApiKey, ApiKeyUsage


def api_key_usage_flush() -> int:
    """Move usage counters from the cache into `ApiKeyUsage` rows and `last_used_*`; returns requests moved.

    The counters are taken out of the cache first. If the database write fails they are put back, so only a
    hard crash between the two loses counts, at most one flush interval's worth.
    """
    store = key_store()
    batch = store.drain()
    if not batch:
        return 0
    try:
        with transaction.atomic():
            moved = _write_usage(batch)
    except Exception:
        store.restore(batch)
        raise
    return moved


def _write_usage(batch: UsageBatch) -> int:
    ids = {key_id for key_id, _ in batch.counts} | set(batch.last_used)
    known = set(ApiKey.objects.filter(pk__in=ids).values_list("pk", flat=True))
    rows = [(key_id, day, counts) for (key_id, day), counts in sorted(batch.counts.items()) if key_id in known]
    ApiKeyUsage.objects.bulk_create(
        [ApiKeyUsage(api_key_id=key_id, date=day) for key_id, day, _ in rows], ignore_conflicts=True
    )
    for key_id, day, (requests, errors) in rows:
        ApiKeyUsage.objects.filter(api_key_id=key_id, date=day).update(
            request_count=F("request_count") + requests, error_count=F("error_count") + errors
        )
    for key_id, (used_at, ip) in batch.last_used.items():
        if key_id in known:
            ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=used_at), pk=key_id).update(
                last_used_at=used_at, last_used_ip=ip or None
            )
    return sum(requests for _, _, (requests, _) in rows)

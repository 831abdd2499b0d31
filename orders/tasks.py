"""Periodic upkeep of the orders domain (beat entries in the settings' orders block)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from .services import order_stats_reconcile, order_stats_refresh


@shared_task(name="orders.stats_refresh", ignore_result=True)
def stats_refresh() -> int:
    """Recompute the stats rollups of days whose orders changed (beat: every ORDERS_STATS_REFRESH_SECONDS)."""
    return order_stats_refresh()


@shared_task(name="orders.stats_reconcile", ignore_result=True)
def stats_reconcile() -> int:
    """Mark days of orders changed without a stats mark (beat: every ORDERS_STATS_RECONCILE_SECONDS). Looks back a
    day, or two intervals if longer, so a paused beat or a missed run is caught up."""
    interval = timedelta(seconds=settings.ORDERS_STATS_RECONCILE_SECONDS)
    return order_stats_reconcile(lookback=max(timedelta(days=1), 2 * interval))

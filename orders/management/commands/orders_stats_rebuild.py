import time

from django.core.management.base import BaseCommand

from orders.services import order_stats_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every stats rollup from all orders (after a raw SQL load or writes that bypassed the services "
        "without marking their days). Safe to run at any time: the stats stay exact meanwhile."
    )

    def handle(self, *args, **options):
        started = time.perf_counter()
        days = order_stats_rebuild()
        self.stdout.write(f"Stats rollups rebuilt: {days} day(s) in {time.perf_counter() - started:.1f} s.")

"""Writes of the orders domain. Views, admin, tasks, commands and integrations call these, never `save()`."""

from .customers import (
    customer_consent_stamp,
    customer_create,
    customer_delete,
    customer_saved_directly,
    customer_update,
)
from .numbers import order_number_format, order_numbers_allocate
from .orders import (
    ItemInput,
    Totals,
    order_create,
    order_delete,
    order_saved_directly,
    order_totals_compute,
    order_totals_recalculate,
    order_transition,
    order_update,
)
from .products import product_create, product_delete, product_update
from .stats import order_stats_mark_dirty, order_stats_rebuild, order_stats_reconcile, order_stats_refresh
from .stock import stock_adjust, stock_levels_set_bulk, stock_movements_record_bulk

__all__ = [
    "ItemInput",
    "Totals",
    "customer_consent_stamp",
    "customer_create",
    "customer_delete",
    "customer_saved_directly",
    "customer_update",
    "order_create",
    "order_delete",
    "order_number_format",
    "order_numbers_allocate",
    "order_saved_directly",
    "order_stats_mark_dirty",
    "order_stats_rebuild",
    "order_stats_reconcile",
    "order_stats_refresh",
    "order_totals_compute",
    "order_totals_recalculate",
    "order_transition",
    "order_update",
    "product_create",
    "product_delete",
    "product_update",
    "stock_adjust",
    "stock_levels_set_bulk",
    "stock_movements_record_bulk",
]

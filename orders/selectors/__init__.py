"""Reads of the orders domain: list querysets, search, stats and customer lifetime figures."""

from .orders import (
    OrderSearch,
    customer_lifetime,
    customer_search,
    order_currencies_in_use,
    order_detail_queryset,
    order_list_queryset,
    order_list_rows,
    order_search,
    product_search,
)
from .stats import order_stats

__all__ = [
    "OrderSearch",
    "customer_lifetime",
    "customer_search",
    "order_currencies_in_use",
    "order_detail_queryset",
    "order_list_queryset",
    "order_list_rows",
    "order_search",
    "order_stats",
    "product_search",
]

"""Order statistics for a date range: counts and revenue by status, per period (gaps filled), average order
value, top customers, top products and payment-status breakdown.

Revenue is always per currency: sums of different currencies are never added. Revenue counts orders that are
not cancelled or refunded; counts by status and payment status include every order. Dates are inclusive and
read in the project's time zone (UTC).

Where the figures come from (the rollups are described in `orders.services.stats`):

- Each day of the range is *clean* (rolled up, not changed since) or *dirty* (marked as changed, or never rolled
  up). Clean days are read from the rollup tables, dirty days are aggregated live from orders and items with the
  same queries that build the rollups (`orders.rollups`), so every answer is exact and reflects every committed
  write. A year is ~10,000 rollup rows instead of ~330,000 orders.
- Breakdowns and the timeline: one query over the daily totals (per channel when filtered by channel) plus live
  totals of the dirty days.
- Top products: SKU revenue summed over month rows (for months wholly inside the range and clean) and day rows
  (the other clean days), plus live items of the dirty days. Filtered by channel, they are computed live (the
  product rollups have no channel).
- Top customers: live from orders (an index per customer) for short ranges.
- For long ranges (a quarter or more, with many orders) both top lists are ranked *with a bound* instead of
  summing every customer or SKU: a precomputed revenue over a window that contains the range (two calendar years
  for customers, 13 months for SKUs) is an upper bound of the revenue in the range. The exact revenue of the best
  `*_CANDIDATES` by window is computed; if the tenth of them beats the best window revenue left out (plus what a
  dirty day could add to it), no one left out can be in the top ten. Otherwise the currency falls back to the full
  computation. Exact either way; fast when the best customers and SKUs of the range are among the best of its
  window, which is the usual case.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, DateField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Trunc, TruncDate

from orders.models import (
    Customer,
    Order,
    OrderItem,
    OrderStatsChannelDailyTotal,
    OrderStatsCustomerWindow,
    OrderStatsDailyTotal,
    OrderStatsDay,
    OrderStatsDirtyDay,
    OrderStatsProductDay,
    OrderStatsProductMonth,
    OrderStatsProductWindow,
    OrderStatus,
    PaymentStatus,
)
from orders.rollups import DayRun, day_runs, day_start, month_start, placed_on, stats_timezone
from orders.transitions import NON_REVENUE_STATUSES

INTERVALS = ("day", "week", "month")
TOP_N = 10
STATS_WORK_MEM = "64MB"
ZERO = Decimal("0")
# Ranking with a window bound pays off for long ranges with many orders; below these, the full computation is
# cheap and a bound (a window four times longer than the range) would rarely decide.
BOUNDED_MIN_DAYS = 92
BOUNDED_MIN_ORDERS = 20_000
CUSTOMER_CANDIDATES = 1_000
PRODUCT_CANDIDATES = 150
PRODUCT_WINDOW_MONTHS = 13


@dataclass(frozen=True)
class StatsRange:
    date_from: date
    date_to: date
    interval: str
    channels: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1


@dataclass
class _Days:
    """Which days of the range the rollups answer: `clean` ones; `marked` ones have stale rollup rows (left out);
    `dirty_runs` (marked or never rolled up) are aggregated live."""

    clean: set[date] = field(default_factory=set)
    marked: list[date] = field(default_factory=list)
    dirty_runs: list[DayRun] = field(default_factory=list)


def _periods(date_from: date, date_to: date, interval: str) -> list[date]:
    """Every period start from the one containing `date_from` to the one containing `date_to`."""
    periods, current = [], _period_of(date_from, interval)
    while current <= date_to:
        periods.append(current)
        if interval == "month":
            current = month_start(current, 1)
        else:
            current += timedelta(days=1 if interval == "day" else 7)
    return periods


def _period_of(day: date, interval: str) -> date:
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _amounts(by_currency: dict[str, Decimal], currencies: list[str]) -> list[dict]:
    return [{"currency": code, "amount": by_currency.get(code, ZERO)} for code in currencies]


def _orders_in(stats_range: StatsRange) -> QuerySet[Order]:
    queryset = Order.objects.filter(
        placed_at__gte=day_start(stats_range.date_from),
        placed_at__lt=day_start(stats_range.date_to + timedelta(days=1)),
    ).order_by()
    if stats_range.channels:
        queryset = queryset.filter(channel__in=stats_range.channels)
    return queryset


def order_stats(*, stats_range: StatsRange) -> dict:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A full computation (a long range not yet rolled up, or a fallback) groups up to ~10^5 customers or
            # SKUs; at the default 4 MB that spills to disk. Scoped to this transaction only.
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{STATS_WORK_MEM}'")
        return _order_stats(stats_range)


def _order_stats(stats_range: StatsRange) -> dict:
    days = _day_states(stats_range)
    status_rows, timeline_rows = _breakdown_rows(stats_range, days)
    currencies = sorted({row["currency"] for row in status_rows})
    by_status: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in OrderStatus.values}
    by_payment: dict[str, dict] = {s: {"orders": 0, "amounts": defaultdict(Decimal)} for s in PaymentStatus.values}
    revenue: dict[str, dict] = {code: {"amount": ZERO, "orders": 0} for code in currencies}
    for row in status_rows:
        amount = _decimal(row["amount"])
        for bucket in (by_status[row["status"]], by_payment[row["payment_status"]]):
            bucket["orders"] += row["orders"]
            bucket["amounts"][row["currency"]] += amount
        if row["status"] not in NON_REVENUE_STATUSES:
            revenue[row["currency"]]["amount"] += amount
            revenue[row["currency"]]["orders"] += row["orders"]
    timeline: dict[date, dict] = {
        p: {"orders": 0, "revenue": defaultdict(lambda: {"amount": ZERO, "orders": 0})}
        for p in _periods(stats_range.date_from, stats_range.date_to, stats_range.interval)
    }
    for row in timeline_rows:
        entry = timeline[_period_of(row["period"], stats_range.interval)]
        entry["orders"] += row["orders"]
        if row["revenue_orders"]:
            totals = entry["revenue"][row["currency"]]
            totals["amount"] += _decimal(row["revenue"])
            totals["orders"] += row["revenue_orders"]
    order_count = sum(row["orders"] for row in status_rows)
    revenue_currencies = {code: revenue[code]["orders"] for code in currencies if revenue[code]["orders"]}
    bounded = stats_range.days >= BOUNDED_MIN_DAYS and order_count >= BOUNDED_MIN_ORDERS

    return {
        "date_from": stats_range.date_from,
        "date_to": stats_range.date_to,
        "interval": stats_range.interval,
        "channels": list(stats_range.channels),
        "currencies": currencies,
        "orders": order_count,
        "revenue": [
            {
                "currency": code,
                "amount": revenue[code]["amount"],
                "orders": revenue[code]["orders"],
                "average_order_value": (revenue[code]["amount"] / revenue[code]["orders"])
                if revenue[code]["orders"]
                else ZERO,
            }
            for code in currencies
        ],
        "by_status": [
            {"status": s, "orders": b["orders"], "amounts": _amounts(b["amounts"], currencies)}
            for s, b in by_status.items()
        ],
        "payment_status": [
            {"payment_status": s, "orders": b["orders"], "amounts": _amounts(b["amounts"], currencies)}
            for s, b in by_payment.items()
        ],
        "timeline": [
            {
                "period": p,
                "orders": entry["orders"],
                "revenue": [{"currency": code, **entry["revenue"][code]} for code in currencies],
            }
            for p, entry in timeline.items()
        ],
        "top_customers": _top_customers(stats_range, days, revenue_currencies, bounded=bounded),
        "top_products": _top_products(stats_range, days, revenue_currencies, bounded=bounded),
    }


# --- days and breakdowns ------------------------------------------------------------------------------------------
def _day_states(stats_range: StatsRange) -> _Days:
    """One query: the range's rolled-up days and its marked days."""
    between = {"day__gte": stats_range.date_from, "day__lte": stats_range.date_to}
    computed = OrderStatsDay.objects.filter(**between).order_by().values_list("day", Value(False))
    marked = OrderStatsDirtyDay.objects.filter(**between).order_by().values_list("day", Value(True))
    states: dict[date, bool] = {}
    for day, is_mark in computed.union(marked, all=True):
        states[day] = states.get(day, False) or is_mark
    clean = {day for day, is_mark in states.items() if not is_mark}
    every_day = (stats_range.date_from + timedelta(days=n) for n in range(stats_range.days))
    return _Days(
        clean=clean,
        marked=sorted(day for day, is_mark in states.items() if is_mark),
        dirty_runs=day_runs(day for day in every_day if day not in clean),
    )


def _breakdown_rows(stats_range: StatsRange, days: _Days) -> tuple[list[dict], list[dict]]:
    """Two queries, each over the rollup rows of the clean days and the orders of the dirty days:

    - per currency, status and payment status: orders and amount (the breakdowns and revenue totals);
    - per period (dirty days: per day, mapped to their period by the caller) and currency: orders, and the orders
      and amount that count as revenue (the timeline).
    """
    if stats_range.channels:
        rollups = OrderStatsChannelDailyTotal.objects.filter(channel__in=stats_range.channels)
    else:
        rollups = OrderStatsDailyTotal.objects.all()
    rollups = (
        rollups.filter(day__gte=stats_range.date_from, day__lte=stats_range.date_to)
        .exclude(day__in=days.marked)
        .order_by()
    )
    live = _orders_in(stats_range).filter(placed_on(days.dirty_runs))
    counts_as_revenue = ~Q(status__in=NON_REVENUE_STATUSES)
    keys = ("currency", "status", "payment_status")
    statuses = (
        rollups.values(*keys)
        .annotate(orders=Sum("orders"), amount=Sum("amount"))
        .union(live.values(*keys).annotate(orders=Count("id"), amount=Sum("total")), all=True)
    )
    by_day = stats_range.interval == "day"
    period = F("day") if by_day else Trunc("day", stats_range.interval, output_field=DateField())
    timeline = (
        rollups.annotate(period=period)
        .values("period", "currency")
        .annotate(  # "orders" last: once it names the sum, it no longer names the column
            revenue_orders=Sum("orders", filter=counts_as_revenue),
            revenue=Sum("amount", filter=counts_as_revenue),
            orders=Sum("orders"),
        )
        .union(
            live.annotate(day=TruncDate("placed_at", tzinfo=stats_timezone()))
            .values("day", "currency")
            .annotate(
                revenue_orders=Count("id", filter=counts_as_revenue),
                revenue=Sum("total", filter=counts_as_revenue),
                orders=Count("id"),
            ),
            all=True,
        )
    )
    return list(statuses), list(timeline)


# --- top lists ----------------------------------------------------------------------------------------------------
def _candidate_counts(most: int, orders: dict[str, int]) -> dict[str, int]:
    """Candidates per currency: `most` for the currency with the most orders, proportionally fewer (at least a
    tenth) for the others, whose customers are fewer too."""
    busiest = max(orders.values(), default=0) or 1
    return {code: max(most // 10, math.ceil(most * count / busiest)) for code, count in orders.items()}


def _top_customers(stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool) -> list[dict]:
    revenue_orders = _orders_in(stats_range).exclude(status__in=NON_REVENUE_STATUSES).filter(customer__isnull=False)
    start_year = stats_range.date_from.year
    rows: list[dict] = []
    undecided = list(currencies)
    if bounded and currencies and stats_range.date_to.year <= start_year + 1:
        asked = _candidate_counts(CUSTOMER_CANDIDATES, currencies)
        candidates, bounds = _candidates(
            [
                OrderStatsCustomerWindow.objects.filter(start_year=start_year, currency=code)
                .order_by("-revenue", "customer_id")
                .values_list("currency", "customer_id", "revenue")[: asked[code] + 1]
                for code in currencies
            ],
            # Customers with orders on dirty days may have a stale window: they are candidates too.
            dirty=Order.objects.filter(placed_on(days.dirty_runs), customer__isnull=False)
            .order_by()
            .values_list("customer_id")
            .distinct(),
            asked=asked,
            dirty_sql="SELECT 'd', '', customer_id, 0 FROM ({}) AS dirty",
        )
        rows = _customer_ranking(revenue_orders.filter(customer_id__in=sorted(candidates)))
        undecided = _undecided(rows, bounds, list(currencies))
        rows = [row for row in rows if row["currency"] not in undecided]
    if undecided:
        rows += _customer_ranking(revenue_orders.filter(currency__in=undecided))
    return [
        {
            "currency": row["currency"],
            "customer": {"id": row["customer_id"], "name": row["name"], "email": row["email"]},
            "orders": row["orders"],
            "revenue": _decimal(row["revenue"]),
        }
        for row in sorted(rows, key=lambda row: (row["currency"], row["rank"]))
    ]


def _customer_ranking(orders: QuerySet[Order]) -> list[dict]:
    aggregated = orders.values("currency", "customer_id").annotate(
        tiebreak=F("customer_id"), orders=Count("id"), revenue=Sum("total")
    )
    return _top_per_currency(aggregated, join_customer=True)


def _top_products(stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool) -> list[dict]:
    if stats_range.channels:  # the product rollups have no channel
        rows = _product_ranking([_live_items(_orders_in(stats_range))])
    else:
        rows = _top_products_from_rollups(stats_range, days, currencies, bounded=bounded)
    return [
        {
            "currency": row["currency"],
            "sku": row["sku"],
            "name": row["name"],
            "product_id": row["product_id"],
            "quantity": int(row["quantity"]),
            "revenue": _decimal(row["revenue"]),
        }
        for row in sorted(rows, key=lambda row: (row["currency"], row["rank"]))
    ]


def _top_products_from_rollups(
    stats_range: StatsRange, days: _Days, currencies: dict[str, int], *, bounded: bool
) -> list[dict]:
    """Month rows for clean months wholly inside the range, day rows for the other clean days, live items for the
    dirty days."""
    full_months, partial_days = [], []
    month = month_start(stats_range.date_from)
    while month <= stats_range.date_to:
        following = month_start(month, 1)
        month_days = [month + timedelta(days=n) for n in range((following - month).days)]
        inside = month >= stats_range.date_from and following - timedelta(days=1) <= stats_range.date_to
        if inside and all(day in days.clean for day in month_days):
            full_months.append(month)
        else:
            partial_days += [day for day in month_days if day in days.clean]
        month = following
    live_orders = Order.objects.filter(placed_on(days.dirty_runs))

    def parts(**restrict) -> list[QuerySet]:
        """The three sources in one column shape, each narrowed by `restrict` (on currency or sku)."""
        columns = ("currency", "sku", "name", "product_id", "quantity", "revenue")
        return [
            OrderStatsProductMonth.objects.filter(month__in=full_months).values(*columns).filter(**restrict),
            OrderStatsProductDay.objects.filter(day__in=partial_days).values(*columns).filter(**restrict),
            _live_items(live_orders).filter(**restrict),
        ]

    window_start = month_start(stats_range.date_from)
    rows: list[dict] = []
    undecided = list(currencies)
    if bounded and currencies and stats_range.date_to < month_start(window_start, PRODUCT_WINDOW_MONTHS):
        # A SKU's revenue on dirty days is not (or not correctly) in its window: it can add at most the largest
        # dirty-day revenue of any SKU, which widens the bound instead of making every such SKU a candidate.
        dirty_revenue = _live_items(live_orders).values("currency", "sku").annotate(total=Sum("revenue"))
        # Not scaled by orders like customers: a currency with few orders still sells most SKUs.
        asked = dict.fromkeys(currencies, PRODUCT_CANDIDATES)
        candidates, bounds = _candidates(
            [
                OrderStatsProductWindow.objects.filter(start=window_start, currency=code)
                .order_by("-revenue", "sku")
                .values_list("currency", "sku", "revenue")[: asked[code] + 1]
                for code in currencies
            ],
            dirty=dirty_revenue,
            asked=asked,
            dirty_sql="SELECT 'd', currency, '', MAX(total) FROM ({}) AS dirty GROUP BY currency",
        )
        rows = _product_ranking(parts(sku__in=sorted(candidates)))
        undecided = _undecided(rows, bounds, list(currencies))
        rows = [row for row in rows if row["currency"] not in undecided]
    if undecided:
        rows += _product_ranking(parts() if len(undecided) == len(currencies) else parts(currency__in=undecided))
    return rows


def _live_items(orders: QuerySet[Order], **restrict) -> QuerySet:
    """Revenue items of `orders`, in the column shape of the product rollups."""
    return (
        OrderItem.objects.filter(order__in=orders.exclude(status__in=NON_REVENUE_STATUSES).values("id"), **restrict)
        .exclude(sku="")
        .order_by()
        .annotate(currency=F("order__currency"), revenue=F("line_total"))
        .values("currency", "sku", "name", "product_id", "quantity", "revenue")
    )


def _product_ranking(parts: list[QuerySet]) -> list[dict]:
    """Sum the parts (rollup rows and live items of the same shape) per currency and SKU, and rank them."""
    sqls, params = [], []
    for part in parts:
        try:
            sql, part_params = part.query.sql_with_params()
        except EmptyResultSet:  # e.g. no dirty days: that part adds nothing
            continue
        sqls.append(sql)
        params += part_params
    if not sqls:
        return []
    union = " UNION ALL ".join(f"SELECT * FROM ({sql}) AS part{i}" for i, sql in enumerate(sqls))  # noqa: S608
    summed = (
        "SELECT parts.currency, parts.sku, parts.sku AS tiebreak, MAX(parts.name) AS name, "  # noqa: S608
        "MAX(parts.product_id) AS product_id, SUM(parts.quantity) AS quantity, SUM(parts.revenue) AS revenue "
        f"FROM ({union}) AS parts GROUP BY parts.currency, parts.sku"
    )
    return _rank(summed, params)


def _candidates(
    windows: list[QuerySet], *, asked: dict[str, int], dirty: QuerySet, dirty_sql: str
) -> tuple[set, dict[str, Decimal]]:
    """One query: the best keys by window revenue in each currency (`asked[currency]` + 1 each, to learn the best
    one left out), and the dirty-day part (`dirty_sql` formats its compiled SQL into rows ('d', currency, key, amount)).

    Returns the candidate keys and, per currency, the bound on the revenue of any key that is not a candidate: the
    best window revenue left out (zero when none was) plus the dirty-day amount of that currency, if any. A dirty
    row without a currency names a key that is a candidate itself.
    """
    sqls, params = [], []
    for i, window in enumerate(windows):
        sql, window_params = window.query.sql_with_params()
        sqls.append(f"SELECT 'w', w{i}.* FROM ({sql}) AS w{i}")  # noqa: S608
        params += window_params
    try:
        sql, dirty_params = dirty.query.sql_with_params()
        sqls.append(dirty_sql.format(sql))
        params += dirty_params
    except EmptyResultSet:  # no dirty days
        pass
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(sqls), params)
        fetched = cursor.fetchall()
    candidates: set = set()
    window_revenue: dict[str, list[Decimal]] = defaultdict(list)
    bounds: dict[str, Decimal] = defaultdict(Decimal)
    for kind, currency, key, amount in fetched:
        if kind == "w":
            window_revenue[currency].append(_decimal(amount))
            candidates.add(key)
        elif currency:
            bounds[currency] += _decimal(amount)
        else:
            candidates.add(key)
    for currency, amounts in window_revenue.items():
        if len(amounts) > asked[currency]:  # the smallest fetched is the best left out (a candidate itself)
            bounds[currency] += min(amounts)
    return candidates, dict(bounds)


def _undecided(rows: list[dict], bounds: dict[str, Decimal], currencies: list[str]) -> list[str]:
    """Currencies whose ranking the bound does not settle: fewer than TOP_N ranked while keys were left out, or a
    tenth revenue that does not beat the bound strictly (a tie could rank a left-out key first)."""
    ranked: dict[str, list[Decimal]] = defaultdict(list)
    for row in rows:
        ranked[row["currency"]].append(_decimal(row["revenue"]))
    undecided = []
    for code in currencies:
        bound = bounds.get(code, ZERO)
        if bound == ZERO:
            continue
        revenues = ranked.get(code, [])
        if len(revenues) < TOP_N or min(revenues) <= bound:
            undecided.append(code)
    return undecided


def _top_per_currency(queryset: QuerySet, *, join_customer: bool = False) -> list[dict]:
    """The TOP_N rows of an aggregated `values()` queryset within each `currency`, ranked by revenue (ties by
    `tiebreak`)."""
    sql, params = queryset.query.sql_with_params()
    return _rank(sql, params, join_customer=join_customer)


def _rank(sql: str, params: list, *, join_customer: bool = False) -> list[dict]:
    """Rank the rows of an aggregate (columns currency, tiebreak, revenue, ...) within each currency and keep the
    TOP_N; with `join_customer`, add the customer's name and email (the aggregate has `customer_id`).

    Django cannot rank over its own GROUP BY (PostgreSQL refuses a window function in the grouping), so the
    aggregate becomes a subquery and the ranking is one small wrapper, portable to SQLite.
    """
    # `sql` is Django-compiled with its parameters separate; every other name here is a constant of this module.
    window = "ROW_NUMBER() OVER (PARTITION BY agg.currency ORDER BY agg.revenue DESC, agg.tiebreak)"
    ranking = f"SELECT agg.*, {window} AS rank FROM ({sql}) agg"  # noqa: S608
    select = "ranked.*"
    if join_customer:  # per ranked row: a join lets the planner scan every customer for a few dozen rows
        table = connection.ops.quote_name(Customer._meta.db_table)
        select += "".join(
            f", (SELECT c.{column} FROM {table} c WHERE c.id = ranked.customer_id) AS {column}"  # noqa: S608
            for column in ("name", "email")
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM ({ranking}) ranked WHERE ranked.rank <= %s "  # noqa: S608
            "ORDER BY ranked.currency, ranked.rank",
            [*params, TOP_N],
        )
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _decimal(value) -> Decimal:
    """Raw SQL on SQLite returns sums of decimals as floats or strings; the API's money is always Decimal."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value if value is not None else 0)).quantize(Decimal("0.001"))

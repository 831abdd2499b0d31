"""Orders API benchmark on PostgreSQL with 1,000,000 orders (run by hand, not in the test suite).

    .venv/bin/python bench/orders_bench.py [--orders 1000000] [--runs 50] [--regenerate]

It creates (if missing) and migrates its own database, `jewelia_bench` on the local PostgreSQL (override with
BENCH_DATABASE_URL), fills it with SQL (`generate_series`, no ORM per row), then measures through the real API
stack (Django test client: middleware, routing, DRF, filters, serializers) and prints p50/p95 and SQL queries
per request for:

- a filtered + sorted first page (page-number mode, with its count; and the cursor-mode first page),
- a search (`q`) for one customer's email, and for a common last name,
- a page deep into the cursor listing (random depths between 50% and 99% of all orders),
- the stats endpoint over a year (monthly and daily timelines), and for information the default 30 days and a
  year of one channel.

The stats read per-day rollups (`orders.services.stats`). After generating the data (or when the rollups do not
cover it) the script builds them with `order_stats_rebuild` and prints how long that took. Before measuring it
marks today and two other days of the year dirty, as in a live shop (today's orders are not refreshed yet, older
orders get edited), so every stats request also aggregates those days live.

Like every bench in this repository it also times a bare Django view (`/healthz`) through the same client,
as the ceiling the API figures are compared against (DESIGN.md §5). `cpu p50` is the Django process's own CPU
time per request (Python work, without waiting on PostgreSQL or for a core): on a shared machine it separates
our cost from the neighbours' load, which is printed too.

Data shape: 100,000 customers (10% of orders have none), 2,000 products, orders spread uniformly over the
last three years (so "a year" holds about a third of them), 1-4 items per order, statuses, channels and
currencies (EUR 85%, USD 10%, GBP 5%) in realistic proportions. Status history rows are not generated: no
measured endpoint reads them.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CUSTOMERS = 100_000
PRODUCTS = 2_000
YEARS = 3
_FIRST = """Ada Alan Anna Bea Carl Clara Dora Emil Ella Eva Finn Greta Hugo Ida Ines Jan Jonas Kai Lea Lena Leo Lina
Luca Mara Max Mia Nils Nora Olga Omar Otto Paul Pia Rosa Ruth Sara Sofia Tim Tom Vera"""
_LAST = """Adler Bauer Becker Berg Brandt Braun Busch Dietrich Engel Fischer Frank Fuchs Graf Hahn Hartmann Hoffmann
Huber Jung Kaiser Keller Klein Koch Kraus Krause Kuhn Lang Lehmann Lorenz Ludwig Maier Mayer Meyer Moeller Neumann
Otto Peters
Pohl Richter Roth Schmidt Schneider Schulz Schwarz Simon Sommer Stein Vogel Wagner Weber Wolf Zimmer"""
FIRST_NAMES, LAST_NAMES = _FIRST.split(), _LAST.split()
CATEGORIES = ["ring", "engagement_ring", "wedding_band", "necklace", "pendant", "bracelet", "earrings", "watch"]
METALS = ["18k yellow gold", "18k white gold", "14k rose gold", "platinum", "sterling silver"]
GEMS = ["diamond", "sapphire", "ruby", "emerald", "pearl", ""]
CHANNELS = ["in_store", "phone", "email", "online_store", "marketplace", "pos", "social", "wholesale"]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jewelia.settings.test")
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate(cursor, orders: int) -> None:
    """Fill customers, products, orders and items with set-based SQL, indexes dropped during the load."""
    tables = ["orders_orderitem", "orders_order", "orders_customer", "orders_product"]
    cursor.execute(
        "TRUNCATE orders_stockmovement, orders_orderstatushistory, orders_payment, orders_shipment, "
        + ", ".join(tables)
        + " RESTART IDENTITY CASCADE"
    )

    cursor.execute("SET maintenance_work_mem = '1GB'")
    cursor.execute("SET work_mem = '256MB'")
    cursor.execute(
        """SELECT c.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
           WHERE c.relname = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)""",
        [tables],
    )
    indexes = cursor.fetchall()
    for _table, name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')

    started = time.perf_counter()
    try:
        _load(cursor, orders, tables)
    finally:  # put the indexes back even if the load failed, so the schema stays what the migrations made
        t = time.perf_counter()
        for _table, _name, definition in indexes:
            cursor.execute(definition)
        print(f"  rebuilt {len(indexes)} indexes: {time.perf_counter() - t:.1f} s")
        cursor.execute("RESET work_mem")  # the benchmark measures on the server's own settings
        cursor.execute("RESET maintenance_work_mem")
    print(f"generated in {time.perf_counter() - started:.0f} s")


def _load(cursor, orders: int, tables: list[str]) -> None:
    started = time.perf_counter()
    first, last = sql_array(FIRST_NAMES), sql_array(LAST_NAMES)
    n_first, n_last = len(FIRST_NAMES), len(LAST_NAMES)
    cursor.execute(
        f"""INSERT INTO orders_customer (id, name, email, phone, addresses, marketing_consent, marketing_consent_source,
                tags, notes, created_at, updated_at)
            SELECT g, ({first})[1 + g % {n_first}] || ' ' || ({last})[1 + (g / {n_first}) % {n_last}],
                   'customer' || g || '@example.com', '+49 30 ' || lpad(g::text, 7, '0'), '[]', g % 3 = 0,
                   CASE WHEN g % 3 = 0 THEN 'in store' ELSE '' END, '[]', '', now(), now()
            FROM generate_series(1, {CUSTOMERS}) g"""
    )
    cursor.execute(
        f"""INSERT INTO orders_product (id, sku, name, category, metal, gemstone, description, price, currency,
                stock_on_hand, active, created_at, updated_at)
            SELECT p, 'JW-' || lpad(p::text, 5, '0'),
                   ({sql_array(METALS)})[1 + p % 5] || ' ' || ({sql_array(CATEGORIES)})[1 + p % 8] || ' ' || p,
                   ({sql_array(CATEGORIES)})[1 + p % 8], ({sql_array(METALS)})[1 + p % 5],
                   ({sql_array(GEMS)})[1 + p % 6],
                   '', 50 + (p % 200) * 25, 'EUR', p % 10, true, now(), now()
            FROM generate_series(1, {PRODUCTS}) p"""
    )
    print(f"  customers and products: {time.perf_counter() - started:.1f} s")

    # Everything about order g is a pure function of g (hashint4), so items can be derived from the order id.
    product_of = f"(1 + abs(hashint4(g * 8 + k)) % {PRODUCTS})"
    quantity_of = "(1 + (g + k) % 2)"
    items_of = "(1 + abs(hashint4(g + 31)) % 4)"
    batch = 250_000
    for start in range(1, orders + 1, batch):
        stop = min(orders, start + batch - 1)
        t = time.perf_counter()
        cursor.execute(
            f"""INSERT INTO orders_order (id, number, number_value, external_reference, customer_id, channel, status,
                    payment_status,
                    fulfillment_status, currency, subtotal, discount_total, tax_total, shipping_total, total, placed_at,
                    due_date, notes, created_at, updated_at)
                SELECT g, 'J-' || CASE WHEN g < 1000000 THEN lpad(g::text, 6, '0') ELSE g::text END, g,
                       CASE WHEN g % 5 = 0 THEN '#' || (1000 + g) ELSE '' END,
                       CASE WHEN g % 10 = 0 THEN NULL ELSE 1 + abs(hashint4(g + 7)) % {CUSTOMERS} END,
                       ({sql_array(CHANNELS)})[1 + abs(hashint4(g + 11)) % 8],
                       s.status, s.payment_status, s.fulfillment_status,
                       CASE abs(hashint4(g + 13)) % 20 WHEN 0 THEN 'GBP' WHEN 1 THEN 'USD' WHEN 2 THEN 'USD'
                            ELSE 'EUR' END,
                       t.subtotal, 0, 0, 0, t.subtotal,
                       now() - (abs(hashint4(g + 17)) % ({YEARS} * 365 * 86400)) * interval '1 second',
                       CASE WHEN g % 10 = 3 THEN (now() + (g % 90 - 30) * interval '1 day')::date END,
                       '', now(), now()
                FROM generate_series({start}, {stop}) g
                CROSS JOIN LATERAL (
                    SELECT sum((50 + ({product_of} % 200) * 25) * {quantity_of}) AS subtotal
                    FROM generate_series(1, {items_of}) k
                ) t
                CROSS JOIN LATERAL (
                    SELECT CASE WHEN b < 7 THEN 'pending' WHEN b < 15 THEN 'confirmed' WHEN b < 20 THEN 'in_production'
                                WHEN b < 25 THEN 'ready' WHEN b < 33 THEN 'shipped' WHEN b < 48 THEN 'delivered'
                                WHEN b < 88 THEN 'completed' WHEN b < 96 THEN 'cancelled' ELSE 'refunded' END AS status,
                           CASE WHEN b < 7 THEN 'unpaid' WHEN b < 15 THEN 'partially_paid' WHEN b < 88 THEN 'paid'
                                WHEN b < 96 THEN 'voided' ELSE 'refunded' END AS payment_status,
                           CASE WHEN b < 25 THEN 'unfulfilled' WHEN b < 33 THEN 'shipped' WHEN b < 88 THEN 'delivered'
                                WHEN b < 96 THEN 'unfulfilled' ELSE 'returned' END AS fulfillment_status
                    FROM (SELECT abs(hashint4(g + 19)) % 100 AS b) r
                ) s"""
        )
        cursor.execute(
            f"""INSERT INTO orders_orderitem (order_id, product_id, position, sku, name, quantity, unit_price,
                    line_total, attributes, external_id)
                SELECT g, p.id, k - 1, p.sku, p.name, {quantity_of}, p.price, p.price * {quantity_of},
                       CASE WHEN p.category LIKE '%%ring%%' THEN jsonb_build_object('ring_size', 48 + g % 14)
                            ELSE '{{}}'::jsonb END,
                       ''
                FROM generate_series({start}, {stop}) g
                CROSS JOIN LATERAL generate_series(1, {items_of}) k
                JOIN orders_product p ON p.id = {product_of}"""
        )
        print(f"  orders {start:,}-{stop:,} with items: {time.perf_counter() - t:.1f} s")
    # Order numbers were derived from the ids; the sequence continues after them for orders created later.
    cursor.execute("SELECT setval('orders_order_number_seq', (SELECT max(id) FROM orders_order))")
    for table in tables:
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def rollups_cover_orders(cursor) -> bool:
    """Whether every day from the first to the last order has its stats rollups."""
    cursor.execute(
        "SELECT (SELECT count(*) FROM orders_orderstatsday d WHERE d.day BETWEEN bounds.first AND bounds.last), "
        "bounds.last - bounds.first + 1 FROM (SELECT min(placed_at)::date AS first, max(placed_at)::date AS last "
        "FROM orders_order) bounds"
    )
    computed, span = cursor.fetchone()
    return span is None or computed == span


def print_rollup_sizes(cursor) -> None:
    cursor.execute(
        "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
        "WHERE c.relname LIKE 'orders_orderstats%%' AND c.relkind = 'r' ORDER BY c.relname"
    )
    rows = cursor.fetchall()
    total = sum(size for _, _, size in rows)
    listed = ", ".join(f"{name.removeprefix('orders_orderstats')} {count:,}" for name, count, _ in rows if count > 0)
    print(f"stats rollups: {total / 2**20:.0f} MB ({listed} rows)")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--regenerate", action="store_true", help="Drop and regenerate the data.")
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jewelia_bench")
    ensure_database(database_url)
    setup_django(database_url)

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from rest_framework.test import APIClient

    from orders.pagination import _encode

    call_command("migrate", "orders", verbosity=0)  # only what the benchmark touches
    from orders.services import order_stats_mark_dirty, order_stats_rebuild, order_stats_refresh

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_order")
        existing = cursor.fetchone()[0]
        regenerated = args.regenerate or existing != args.orders
        if regenerated:
            print(f"generating {args.orders:,} orders (found {existing:,}) ...")
            generate(cursor, args.orders)
            t = time.perf_counter()
            cursor.execute("VACUUM ANALYZE")
            print(f"  vacuum analyze: {time.perf_counter() - t:.1f} s")
        if regenerated or not rollups_cover_orders(cursor):
            t = time.perf_counter()
            days = order_stats_rebuild()
            print(f"stats rollups rebuilt for {days:,} days: {time.perf_counter() - t:.1f} s")
            cursor.execute("VACUUM ANALYZE")
        order_stats_refresh()  # settle marks left by an earlier run, then mark days as a live shop has them
        # As autovacuum does after writes: index-only scans need the visibility map of the rewritten pages.
        for table in ("orderstatsproductwindow", "orderstatscustomerwindow", "orderstatsproductmonth"):
            cursor.execute(f"VACUUM ANALYZE orders_{table}")
        print_rollup_sizes(cursor)
        cursor.execute("SELECT count(*) FROM orders_order")
        order_count = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM orders_orderitem")
        item_count = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    print(f"data: {order_count:,} orders, {item_count:,} items, database {size}")

    from django.contrib.auth import get_user_model

    # An unsaved superuser: authentication costs no query, as with a cached API key.
    user = get_user_model()(pk=1, username="bench", is_staff=True, is_superuser=True, is_active=True)
    client = APIClient()
    client.force_authenticate(user=user)
    rng = random.Random(42)

    # Deep cursor positions: (placed_at, id) of rows at random depths, as a client would hold after paging.
    with connection.cursor() as cursor:
        positions = []
        for _ in range(args.runs):
            depth = rng.randint(order_count // 2, order_count * 99 // 100)
            cursor.execute(
                "SELECT placed_at, id FROM orders_order ORDER BY placed_at DESC, id DESC OFFSET %s LIMIT 1", [depth]
            )
            positions.append(cursor.fetchone())
    deep_cursors = [_encode({"s": "-placed_at", "v": p.isoformat(), "id": i}) for p, i in positions]
    today = timezone.localdate()
    year_from = (today - timedelta(days=364)).isoformat()
    dirty = [today, *(today - timedelta(days=rng.randint(1, 364)) for _ in range(2))]
    with transaction.atomic():
        order_stats_mark_dirty(days=dirty)
    print(f"stats days marked dirty (aggregated live): {', '.join(str(day) for day in dirty)}")

    orders, stats = "/api/orders/", f"/api/orders/stats/?date_from={year_from}&date_to={today}"
    filtered = f"{orders}?status=in_production,ready&sort=-placed_at"
    scenarios = [
        ("bare Django view (/healthz), the ceiling", lambda i: "/healthz", None),
        ("filtered+sorted first page (page mode, with count)", lambda i: filtered, 30),
        ("filtered+sorted first page (cursor mode)", lambda i: f"{filtered}&pagination=cursor", 30),
        (
            "channel + total range, sorted by -total (cursor)",
            lambda i: f"{orders}?channel=phone&total_min=1000&sort=-total&pagination=cursor",
            30,
        ),
        ("search one customer's email (q=customerNNNN@)", lambda i: f"{orders}?q=customer{1000 + i * 997}@", 100),
        ("search an order number (q=J-NNNNNN)", lambda i: f"{orders}?q=J-{100000 + i * 7919:06d}", 100),
        ("search a common last name (q=Hartmann)", lambda i: f"{orders}?q=Hartmann", 100),
        ("deep cursor page (50-99% deep)", lambda i: f"{orders}?cursor={deep_cursors[i % len(deep_cursors)]}", 30),
        ("stats over a year (monthly timeline)", lambda i: stats, 300),
        ("stats over a year (daily timeline)", lambda i: f"{stats}&interval=day", 300),
        ("stats, last 30 days (the default range)", lambda i: "/api/orders/stats/", None),
        ("stats over a year, one channel (top lists live)", lambda i: f"{stats}&channel=phone", None),
    ]
    print(f"load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\n{'request':<54} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8} {'x ceiling':>9} {'queries':>8} {'target':>9}")
    ceiling = None
    for name, url_of, target in scenarios:
        runs = args.runs if "stats" not in name else max(10, args.runs // 3)
        for i in range(3):  # warm caches and connections
            client.get(url_of(i))
        timings, cpu = [], []
        for i in range(runs):
            url = url_of(i)
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url} -> {response.status_code}: {response.content[:500]!r}")
        query_counts = set()
        for i in range(3):
            with CaptureQueriesContext(connection) as ctx:
                client.get(url_of(i))
            query_counts.add(len(ctx))
        p50, p95 = statistics.median(timings), percentile(timings, 95)
        ceiling = ceiling or p50
        verdict = "" if target is None else (f"<{target} {'ok' if p95 < target else 'MISS'}")
        queries = ",".join(str(q) for q in sorted(query_counts))
        cpu_p50 = statistics.median(cpu)
        print(f"{name:<54} {p50:8.1f} {p95:8.1f} {cpu_p50:8.1f} {p50 / ceiling:9.1f} {queries:>8} {verdict:>9}")


if __name__ == "__main__":
    main()

"""Shopify pull-sync benchmark: 100,000 orders from the sandbox into PostgreSQL (run by hand, not in the suite).

    .venv/bin/python bench/shopify_sync_bench.py [--orders 100000] [--customers 20000] [--products 40]

It creates (if missing) and migrates its own database, `jewelia_shopify_bench` on the local PostgreSQL
(override with BENCH_DATABASE_URL), starts the Shopify sandbox on 127.0.0.1 with rate limiting off, and in
one run measures:

1. sync: the real engine (`sync_run_execute`) pulling the orders resource in full (250 per page), with line
   items, embedded customers and transactions, into empty orders tables (products are synced first, untimed);
2. fetch + parse: the same pages through the same provider and HTTP client, JSON parsed, nothing written;
3. raw write: the same rows the sync wrote (customers, orders, items, payments, status history and identity
   rows) with hand-written multi-row `INSERT ... VALUES ... ON CONFLICT` statements, one per table per page
   (`$n` placeholders on a psycopg RawCursor, the cheapest way to send them), into emptied tables.

The unavoidable cost is (2) + (3): any sync has to fetch the pages and write the rows. The figure of merit is
ratio = unavoidable / sync (1.0 would mean the engine adds nothing; the target is at least 0.6).
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/jewelia_shopify_bench"
NOW = datetime.now(UTC)
TABLES = [
    "integration_mappings",
    "integrations_recordfailure",
    "integrations_resourcecursor",
    "integration_sync_history",
    "orders_orderstatushistory",
    "orders_payment",
    "orders_orderitem",
    "orders_order",
    "orders_customer",
]


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ["INTEGRATIONS_ALLOWED_LOCAL_HOSTS"] = "127.0.0.1"
    os.environ["INTEGRATIONS_RATE_LIMITING"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jewelia.settings.test")
    import django

    django.setup()


def ensure_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base.replace('postgres://', 'postgresql://')}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def truncate(cursor, tables: list[str]) -> None:
    cursor.execute("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE")


def run_sync(integration, resources: list[str]):
    from integrations.services import sync_run_now

    run, _ = sync_run_now(integration=integration, trigger="manual", resources=resources, full=True)
    return run


def fetch_all(integration) -> tuple[float, list[list[dict]]]:
    """Fetch and parse every orders page (timed); keep the pages for the raw-write phase (untimed)."""
    from integrations.sync.connection import connection_build

    provider = integration.provider_impl
    connection = connection_build(integration, provider=provider)
    pages, cursor, elapsed = [], {}, 0.0
    while True:
        started = time.perf_counter()
        page = provider.fetch_page(connection, "orders", cursor=cursor, since=None)
        elapsed += time.perf_counter() - started
        pages.append(page.records)
        if page.done:
            return elapsed, pages
        cursor = page.cursor


def raw_rows(integration, pages: list[list[dict]]) -> list[dict]:
    """Per page, the rows the sync writes, as plain tuples keyed by natural keys (built before timing)."""
    provider = integration.provider_impl
    from integrations.sync.connection import connection_build
    from integrations.sync.writers import content_hash

    connection = connection_build(integration, provider=provider)
    batches = []
    number = 0
    for raws in pages:
        customers, orders, items, payments, identities = {}, [], [], [], []
        for raw in raws:
            (record,) = provider.transform("orders", raw, connection)
            number += 1
            order_number = f"B-{number:07d}"
            email = ""
            if record.customer is not None and record.customer.email:
                c = record.customer
                email = c.email.lower()
                customers[email] = (c.name or c.email, c.email, c.phone, json.dumps(c.addresses), json.dumps(c.tags))
                identities.append(("customers", c.external_id, email, ""))
            orders.append(
                (
                    order_number,
                    record.external_number,
                    email,
                    record.channel,
                    record.status,
                    record.payment_status,
                    record.fulfillment_status,
                    record.currency,
                    record.subtotal,
                    record.discount_total,
                    record.tax_total,
                    record.shipping_total,
                    record.total,
                    record.placed_at,
                    record.notes,
                    record.source_updated_at,
                )
            )
            identities.append(("orders", record.external_id, order_number, content_hash(record)))
            for position, item in enumerate(record.items):
                items.append(
                    (
                        order_number,
                        position,
                        item.sku,
                        item.name[:200],
                        item.quantity,
                        item.unit_price,
                        item.unit_price * item.quantity,
                        json.dumps(item.attributes),
                        item.external_id,
                    )
                )
            for p in record.payments:
                payments.append((order_number, p.provider, p.external_id, p.amount, p.currency, p.status, p.method))
                identities.append(("payment", p.external_id, p.external_id, content_hash(p)))
        batches.append(
            {"customers": customers, "orders": orders, "items": items, "payments": payments, "identities": identities}
        )
    return batches


def upsert_rows(cursor, head: str, rows: list[tuple], tail: str, *, fixed: int = 0) -> list[tuple]:
    """`head VALUES ($1, ...), (...) tail` for `rows`, in as few statements as PostgreSQL's parameter limit
    allows; the fastest way psycopg sends batches ($n placeholders on a RawCursor: no query parsing, values
    dumped in C). `fixed` leading parameters are shared by every row (passed as the first values)."""
    if not rows:
        return []
    width = len(rows[0])
    per_statement = (65_535 - fixed) // width
    out: list[tuple] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = ", ".join(
            "(" + ", ".join(f"${fixed + r * width + c + 1}" for c in range(width)) + ")" for r in range(len(chunk))
        )
        cursor.execute(f"{head} VALUES {values} {tail}", [value for row in chunk for value in row])
        if cursor.description:
            out.extend(cursor.fetchall())
    return out


def raw_write(cursor, integration_id: str, batches: list[dict], content_type_ids: dict[str, int]) -> float:
    """INSERT ... ON CONFLICT of the same rows, one statement per table per page, in one transaction per page
    (as the sync commits per page) (timed)."""
    started = time.perf_counter()
    for batch in batches:
        with cursor.connection.transaction():
            _raw_write_batch(cursor, integration_id, batch, content_type_ids)
    return time.perf_counter() - started


def _raw_write_batch(cursor, integration_id: str, batch: dict, content_type_ids: dict[str, int]) -> None:
    from psycopg.types.json import Jsonb

    customers = [
        (n, e, p, Jsonb(a), Jsonb(t), "", False, "", NOW, NOW) for n, e, p, a, t in batch["customers"].values()
    ]
    returned = upsert_rows(
        cursor,
        """INSERT INTO orders_customer (name, email, phone, addresses, tags, notes, marketing_consent,
               marketing_consent_source, created_at, updated_at)""",
        customers,
        """ON CONFLICT (lower(email)) WHERE NOT (email = '') DO UPDATE SET name = EXCLUDED.name
           RETURNING id, lower(email)""",
    )
    customer_ids = {email: pk for pk, email in returned}
    # number_value: the number's digits, as the model's field derives it (what sort=number sorts by).
    orders = [(o[0], int(o[0][2:]), o[1], customer_ids.get(o[2]), *o[3:], NOW, NOW) for o in batch["orders"]]
    returned = upsert_rows(
        cursor,
        """INSERT INTO orders_order (number, number_value, external_reference, customer_id, channel, status,
               payment_status,
               fulfillment_status, currency, subtotal, discount_total, tax_total, shipping_total, total,
               placed_at, notes, source_updated_at, created_at, updated_at)""",
        orders,
        "ON CONFLICT (number) DO UPDATE SET status = EXCLUDED.status RETURNING id, number",
    )
    order_ids = {number: pk for pk, number in returned}
    items = [
        (order_ids[i[0]], i[1], i[2], i[3], i[4], i[5], i[6], Jsonb(json.loads(i[7])), i[8]) for i in batch["items"]
    ]
    upsert_rows(
        cursor,
        """INSERT INTO orders_orderitem (order_id, position, sku, name, quantity, unit_price, line_total,
               attributes, external_id)""",
        items,
        "",
    )
    upsert_rows(
        cursor,
        """INSERT INTO orders_orderstatushistory (order_id, from_status, to_status, note, created_at, actor_type,
               actor_id, actor_label)""",
        [(order_ids[o[0]], "", o[4], "", NOW, "integration", integration_id, "bench") for o in batch["orders"]],
        "",
    )
    returned = upsert_rows(
        cursor,
        """INSERT INTO orders_payment (order_id, provider, external_id, amount, currency, status, method,
               captured_amount, refunded_amount, created_at, updated_at)""",
        [(order_ids[p[0]], *p[1:], 0, 0, NOW, NOW) for p in batch["payments"]],
        """ON CONFLICT (provider, external_id) WHERE NOT (external_id = '') DO UPDATE SET status = EXCLUDED.status
           RETURNING id, external_id""",
    )
    payment_ids = {external_id: pk for pk, external_id in returned}
    local = {"customers": customer_ids, "orders": order_ids, "payment": payment_ids}
    identities = {
        (resource, external_id): (
            integration_id,
            resource,
            external_id,
            content_type_ids[resource],
            local[resource][key],
            digest,
            None,
            NOW,
            NOW,
        )
        for resource, external_id, key, digest in batch["identities"]
    }
    upsert_rows(
        cursor,
        """INSERT INTO integration_mappings (integration_id, resource, external_id, content_type_id, object_id,
               content_hash, source_updated_at, created_at, updated_at)""",
        list(identities.values()),
        "ON CONFLICT (integration_id, resource, external_id) DO UPDATE SET content_hash = EXCLUDED.content_hash",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=40)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(database_url)
    setup_django(database_url)

    import psycopg
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from integrations.sandbox.shopify import ShopifySandbox
    from integrations.services import integration_create
    from jewelia.core.actors import Actor
    from orders.models import Customer, Order, OrderItem, Payment

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        truncate(cursor, [*TABLES, "integrations", "orders_stockmovement", "orders_product"])
    sandbox = ShopifySandbox(
        orders=args.orders, customers=args.customers, products=args.products, rate_limit=False
    ).start()
    try:
        integration = integration_create(
            actor=Actor.system("bench"),
            name="Bench store",
            provider="shopify",
            config=sandbox.config(page_size=250),
            credentials=sandbox.credentials(),
        )
        products_run = run_sync(integration, ["products"])
        print(f"products synced first (untimed): {products_run.created} SKUs")

        started = time.perf_counter()
        run = run_sync(integration, ["orders"])
        sync_seconds = time.perf_counter() - started
        assert run.status == "succeeded", (run.status, run.error_summary)
        counts = {
            "orders": Order.objects.count(),
            "items": OrderItem.objects.count(),
            "customers": Customer.objects.count(),
            "payments": Payment.objects.count(),
        }
        assert counts["orders"] == args.orders, counts

        fetch_seconds, pages = fetch_all(integration)
        batches = raw_rows(integration, pages)
        del pages
        content_types = {
            "customers": ContentType.objects.get_for_model(Customer).pk,
            "orders": ContentType.objects.get_for_model(Order).pk,
            "payment": ContentType.objects.get_for_model(Payment).pk,
        }
        with connection.cursor() as cursor:
            truncate(cursor, [t for t in TABLES if t.startswith(("orders_", "integration_mappings"))])
            raw = psycopg.RawCursor(connection.connection)  # $n placeholders, values dumped in C
            write_seconds = raw_write(raw, str(integration.pk), batches, content_types)
            raw.close()
        raw_counts = {"orders": Order.objects.count(), "items": OrderItem.objects.count()}
        assert raw_counts == {"orders": counts["orders"], "items": counts["items"]}, (raw_counts, counts)
    finally:
        sandbox.stop()

    unavoidable = fetch_seconds + write_seconds
    print(
        f"\nsynced {counts['orders']:,} orders with {counts['items']:,} items, {counts['customers']:,} customers "
        f"and {counts['payments']:,} payments"
    )
    print(f"sync:           {sync_seconds:8.1f} s   {counts['orders'] / sync_seconds:8,.0f} orders/s")
    print(f"fetch + parse:  {fetch_seconds:8.1f} s   (same pages, nothing written)")
    print(f"raw SQL write:  {write_seconds:8.1f} s   (same rows, INSERT ... ON CONFLICT per page)")
    print(f"unavoidable:    {unavoidable:8.1f} s")
    print(f"ratio unavoidable/sync: {unavoidable / sync_seconds:.2f}  (target >= 0.6)")


if __name__ == "__main__":
    main()

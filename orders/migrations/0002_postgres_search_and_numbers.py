"""PostgreSQL-only pieces of the orders schema: the order number sequence and trigram search indexes.

The orders API searches with `icontains`, which Django renders on PostgreSQL as
`UPPER(col::text) LIKE UPPER('%term%')`; GIN trigram indexes on exactly that expression let PostgreSQL answer it
from the index instead of a sequential scan. SQLite has neither sequences nor pg_trgm: there order numbers come
from `OrderNumberCounter` and search is a plain scan, which is fine at SQLite's scale.
"""

from django.db import migrations

SEARCH_INDEXES = [
    ("orders_order_number_trgm", "orders_order", "number"),
    ("orders_order_extref_trgm", "orders_order", "external_reference"),
    ("orders_customer_name_trgm", "orders_customer", "name"),
    ("orders_customer_email_trgm", "orders_customer", "email"),
    ("orders_item_sku_trgm", "orders_orderitem", "sku"),
    ("orders_item_name_trgm", "orders_orderitem", "name"),
    ("orders_product_sku_trgm", "orders_product", "sku"),
    ("orders_product_name_trgm", "orders_product", "name"),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS orders_order_number_seq START 1")
    for name, table, column in SEARCH_INDEXES:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in SEARCH_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    schema_editor.execute("DROP SEQUENCE IF EXISTS orders_order_number_seq")


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]

"""PostgreSQL-only covering index for the stats endpoint.

Stats group a date range of orders by period, status, payment status, currency, channel and customer. With
those columns INCLUDEd in a `placed_at` index, PostgreSQL answers from the index alone (an index-only scan)
instead of visiting every order row of the range. SQLite has no covering indexes; its plain placed_at index
serves there.
"""

from django.db import migrations

INDEX = "orders_order_stats_cover"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON orders_order (placed_at) "
        "INCLUDE (status, payment_status, currency, channel, customer_id, total)"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_postgres_search_and_numbers")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]

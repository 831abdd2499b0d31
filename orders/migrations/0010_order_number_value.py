"""`Order.number_value`: the number's digits as an integer, so `sort=number` is numeric (J-1000000 after
J-999999). Existing rows are filled in set-wise on PostgreSQL, in batches elsewhere."""

from django.db import migrations, models

import orders.models


def fill_number_values(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE orders_order SET number_value = CAST(substring(number from '([0-9]{1,18})$') AS bigint) "
            "WHERE number ~ '[0-9]$'"
        )
        return
    Order = apps.get_model("orders", "Order")
    batch = []
    for pk, number in Order.objects.values_list("pk", "number").iterator(chunk_size=2000):
        batch.append(Order(pk=pk, number_value=orders.models.order_number_value(number)))
        if len(batch) == 2000:
            Order.objects.bulk_update(batch, ["number_value"])
            batch = []
    Order.objects.bulk_update(batch, ["number_value"])


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_covering_rollup_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="number_value",
            field=orders.models.OrderNumberValueField(default=0, editable=False),
        ),
        migrations.RunPython(fill_number_values, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["number_value", "id"], name="orders_order_number_value_idx"),
        ),
    ]

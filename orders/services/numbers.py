"""Order numbers (`J-000123`): unique, allocated in blocks so bulk importers never race each other."""

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from orders.models import OrderNumberCounter

ORDER_NUMBER_PREFIX = "J-"
ORDER_NUMBER_SEQUENCE = "orders_order_number_seq"


def order_number_format(value: int) -> str:
    return f"{ORDER_NUMBER_PREFIX}{value:06d}"


def order_numbers_allocate(*, count: int) -> list[str]:
    """Hand out `count` new order numbers, ascending.

    On PostgreSQL they come from a sequence: concurrent callers never block each other and never get the same
    number (a rolled-back transaction leaves a gap, which is fine for order numbers). On SQLite a counter row is
    bumped with an UPDATE first; the UPDATE takes SQLite's database write lock, so the read that follows in the
    same transaction cannot interleave with another writer.
    """
    if count < 1:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [ORDER_NUMBER_SEQUENCE, count])
            values = sorted(row[0] for row in cursor.fetchall())
        return [order_number_format(value) for value in values]
    with transaction.atomic():
        if not OrderNumberCounter.objects.filter(pk=1).update(last_value=F("last_value") + count):
            try:
                with transaction.atomic():
                    OrderNumberCounter.objects.create(pk=1, last_value=count)
            except IntegrityError:  # another writer created the row first
                OrderNumberCounter.objects.filter(pk=1).update(last_value=F("last_value") + count)
        last = OrderNumberCounter.objects.values_list("last_value", flat=True).get(pk=1)
    return [order_number_format(value) for value in range(last - count + 1, last + 1)]

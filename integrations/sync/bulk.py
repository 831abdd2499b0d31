"""The sync's batch INSERT: one statement per batch, parameters dumped by psycopg's C code.

Django's `bulk_create` on PostgreSQL already sends one `INSERT ... SELECT FROM unnest(...)`, but through a
client-side-binding cursor (the project's psycopg default), so every value of every array is quoted in Python;
for a 250-order page with items, customers, payments, history and identity rows that quoting alone cost more
than the database's work. Here the same statement goes through a server-side-binding cursor on the same
connection (same transaction), where psycopg dumps the arrays in C. Elsewhere (SQLite) it is `bulk_create`.

Only plain concrete fields are written; instances come complete from the writers (timestamps included, no
expressions), and get their primary keys back in insertion order, as `bulk_create` does.
"""

from __future__ import annotations

from django.db import connection, models
from django.utils import timezone
from psycopg import Cursor
from psycopg.types.json import Jsonb

_STATEMENTS: dict[type, tuple[str, list[models.Field]]] = {}


def _statement(model: type[models.Model]) -> tuple[str, list[models.Field]]:
    cached = _STATEMENTS.get(model)
    if cached is None:
        meta = model._meta
        fields = [f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
        # Identifiers come from model metadata (quoted), never from data; values are bound parameters.
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT * FROM unnest({arrays}) "  # noqa: S608
            f"RETURNING {quote(meta.pk.column)}"
        )
        cached = _STATEMENTS[model] = (sql, fields)
    return cached


def _column(field: models.Field, objs: list[models.Model]) -> list:
    values = [getattr(obj, field.attname) for obj in objs]
    if isinstance(field, models.JSONField):
        return [None if value is None else Jsonb(value) for value in values]
    if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
        now = timezone.now()
        return [now if value is None else value for value in values]
    return values


def insert(model: type[models.Model], objs: list[models.Model], *, batch_size: int = 1000) -> None:
    """INSERT the unsaved instances, batch by batch, and set their primary keys."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=batch_size)
        return
    sql, fields = _statement(model)
    connection.ensure_connection()
    for start in range(0, len(objs), batch_size):
        batch = objs[start : start + batch_size]
        with Cursor(connection.connection) as cursor:
            cursor.execute(sql, [_column(field, batch) for field in fields])
            ids = [row[0] for row in cursor.fetchall()]
        for obj, pk in zip(batch, ids, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = connection.alias

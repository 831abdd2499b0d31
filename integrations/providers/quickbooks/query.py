"""QuickBooks' SQL-like query language: the statements the provider sends, built in one place.

Grammar (providers/quickbooks.md §4, confirmed):
`SELECT * | COUNT(*) FROM <Entity> [WHERE <prop> <op> <value> [AND ...]] [ORDERBY <prop> [ASC|DESC]]
[STARTPOSITION n] [MAXRESULTS m]` with `=, <, >, <=, >=, IN, LIKE`; no OR, no JOIN, no projections.
STARTPOSITION is 1-based; MAXRESULTS is at most 1000.

String values are single-quoted. Intuit's reference escapes a quote inside a value with a backslash
(`Name = 'Ada\\'s'`); values here are ids, times and names the CRM sends, and `literal` escapes backslashes
and quotes so a name can never end the literal early.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

MAX_RESULTS = 1000
# The record's field is `MetaData.LastUpdatedTime`; Intuit's own examples spell the filter `Metadata...`, and
# whether property names are case-insensitive is unconfirmed (sheet §4). We send the spelling that matches the
# entity; an integration can switch with config `updated_time_property`.
UPDATED_TIME_PROPERTY = "MetaData.LastUpdatedTime"
UPDATED_TIME_PROPERTIES = ("MetaData.LastUpdatedTime", "Metadata.LastUpdatedTime")


def time_text(value: datetime) -> str:
    """A time as QuickBooks writes them: ISO 8601 to the second with its offset (UTC when naive)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def literal(value: str | datetime) -> str:
    """A quoted string literal; datetimes as `time_text`."""
    if isinstance(value, datetime):
        value = time_text(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def select(
    entity: str,
    *,
    where: Iterable[str] = (),
    order_by: str | None = None,
    start_position: int | None = None,
    max_results: int | None = None,
) -> str:
    """`SELECT * FROM <entity> ...` from already formatted conditions (see `condition`, `within`)."""
    # Not SQL: QuickBooks' own query language, sent to its API; `entity` is one of our constants and every value
    # goes through `literal`.
    parts = [f"SELECT * FROM {entity}"]  # noqa: S608
    conditions = list(where)
    if conditions:
        parts.append("WHERE " + " AND ".join(conditions))
    if order_by:
        parts.append(f"ORDERBY {order_by}")
    if start_position is not None:
        parts.append(f"STARTPOSITION {max(1, int(start_position))}")
    if max_results is not None:
        parts.append(f"MAXRESULTS {min(max(1, int(max_results)), MAX_RESULTS)}")
    return " ".join(parts)


def count(entity: str) -> str:
    return f"SELECT COUNT(*) FROM {entity}"  # noqa: S608 (QuickBooks' query language; `entity` is a constant)


def condition(prop: str, op: str, value: str | datetime) -> str:
    if op not in ("=", "<", ">", "<=", ">=", "LIKE"):
        raise ValueError(f"unsupported operator {op!r}")
    return f"{prop} {op} {literal(value)}"


def within(prop: str, values: Iterable[str]) -> str:
    """`prop IN ('a', 'b')`; the caller keeps the list under MAX_RESULTS."""
    quoted = ", ".join(literal(v) for v in values)
    return f"{prop} IN ({quoted})"

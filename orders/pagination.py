"""Sorting and the two pagination modes of the orders lists.

- Page numbers (default): `?page=3&page_size=50`, with a `count` for screens. `page_size` is bounded. The count
  is exact up to `COUNT_LIMIT` rows; beyond it `count` is `COUNT_LIMIT` and `count_is_exact` is false ("5,000+"),
  because counting a million matching rows exactly costs more than the page itself.
- Cursor (keyset): `?pagination=cursor` for the first page, then follow `next` (it carries `cursor=...`).
  Each page is found by `WHERE (sort key, id) beyond the last row seen`, using the same index as the sort, so
  page 20,000 costs what page 1 costs. No total count (that would be a full scan). Forward only: exports and
  sync jobs walk forward; screens use page numbers.

Every sort ends with the id as a tie breaker, so the order is total and stable.
"""

import base64
import binascii
import json
import math
from collections import OrderedDict
from dataclasses import dataclass

from django.db.models import Model, Q, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from jewelia.core.exceptions import ValidationFailed
from jewelia.core.pagination import PageNumberPagination
from orders.selectors import OrderSearch, order_list_rows

COUNT_LIMIT = 5_000


@dataclass(frozen=True)
class Sort:
    """A sort chosen with `?sort=field` or `?sort=-field`."""

    key: str  # the public name, e.g. "placed_at"
    field: str  # the model field
    descending: bool
    unique: bool = False  # a unique field needs no id tie breaker

    @property
    def token(self) -> str:
        return f"-{self.key}" if self.descending else self.key

    def order_by(self) -> list[str]:
        prefix = "-" if self.descending else ""
        fields = [f"{prefix}{self.field}"]
        if not self.unique:
            fields.append(f"{prefix}id")
        return fields


def sort_parse(value: str | None, *, fields: dict[str, tuple[str, bool]], default: str) -> Sort:
    """Parse `?sort=`: `fields` maps a public name to (model field, unique). Unknown names are a 400."""
    raw = (value or default).strip()
    descending = raw.startswith("-")
    key = raw.lstrip("-")
    if key not in fields:
        choices = ", ".join(f"{name}, -{name}" for name in fields)
        raise ValidationFailed(details={"fields": {"sort": [f"Unknown sort '{raw}'. Choose one of: {choices}."]}})
    field, unique = fields[key]
    return Sort(key=key, field=field, descending=descending, unique=unique)


def _encode(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(details={"fields": {"cursor": ["Invalid cursor."]}}) from exc
    if not isinstance(payload, dict) or not {"s", "v", "id"} <= set(payload) or not isinstance(payload["id"], int):
        raise ValidationFailed(details={"fields": {"cursor": ["Invalid cursor."]}})
    return payload


class ListSource:
    """What the pagination pages through: a sorted queryset, and the two operations a page needs from it. Lists
    that can answer these more cleverly than a plain queryset (the orders search) pass a subclass."""

    def __init__(self, queryset: QuerySet):
        self.queryset = queryset

    @property
    def model(self) -> type[Model]:
        return self.queryset.model

    def filter(self, condition: Q) -> "ListSource":
        return ListSource(self.queryset.filter(condition))

    def count_upto(self, limit: int) -> int:
        """The number of rows if it is at most `limit`, else `limit + 1`: the count stops early."""
        return self.queryset.order_by()[: limit + 1].count()

    def rows(self, start: int, stop: int) -> list:
        return list(self.queryset[start:stop])


class OrderListSource(ListSource):
    """Orders, read as light rows (`order_list_rows`) rather than model instances."""

    def filter(self, condition: Q) -> "OrderListSource":
        return OrderListSource(self.queryset.filter(condition))

    def rows(self, start: int, stop: int) -> list:
        return order_list_rows(queryset=self.queryset, start=start, stop=stop)


class OrderSearchSource(OrderListSource):
    """Orders matching a search (`q`), fetched in the shape that suits how many match (see `OrderSearch`): walking
    the sort's index when more than `WALK_MIN_MATCHES` match and the page is among the first `WALK_MAX_ROWS` rows,
    collecting the matching ids otherwise. The count the page mode makes first decides (it counts up to the same
    number); in cursor mode a count that stops there does."""

    WALK_MIN_MATCHES = COUNT_LIMIT
    WALK_MAX_ROWS = 1_000

    def __init__(self, orders: QuerySet, search: OrderSearch):
        super().__init__(orders.filter(search.matching()))
        self.orders, self.search = orders, search
        self.counted: tuple[int, int] | None = None  # (limit, count_upto's answer)

    def filter(self, condition: Q) -> "OrderSearchSource":
        return OrderSearchSource(self.orders.filter(condition), self.search)

    def count_upto(self, limit: int) -> int:
        counted = self.search.count_upto(self.orders, limit)
        self.counted = (limit, counted)
        return counted

    def rows(self, start: int, stop: int) -> list:
        if stop <= self.WALK_MAX_ROWS and self._matches_at_least(self.WALK_MIN_MATCHES + 1):
            return order_list_rows(queryset=self.orders.filter(self.search.walking()), start=start, stop=stop)
        return super().rows(start, stop)

    def _matches_at_least(self, wanted: int) -> bool:
        if self.counted is not None:
            limit, counted = self.counted
            if counted <= limit or counted >= wanted:  # exact, or already more than wanted
                return counted >= wanted
        return self.search.count_upto(self.orders, wanted - 1) >= wanted


class DualModePagination(BasePagination):
    """Page numbers by default, keyset cursor with `?pagination=cursor` or `?cursor=...`.

    The view must set `request.sort` (a `Sort`) before paginating, and order the queryset by `sort.order_by()`
    (or pass a `ListSource` over such a queryset).
    """

    cursor_query_param = "cursor"
    mode_query_param = "pagination"
    page_query_param = "page"
    count_limit = COUNT_LIMIT

    def __init__(self):
        self.pages = PageNumberPagination()
        self.mode = "page"

    def _page_size(self, request) -> int:
        return self.pages.get_page_size(request) or self.pages.page_size

    def paginate_queryset(self, queryset: QuerySet | ListSource, request, view=None):
        source = queryset if isinstance(queryset, ListSource) else ListSource(queryset)
        self.request = request
        mode = request.query_params.get(self.mode_query_param, "")
        if mode not in ("", "page", "cursor"):
            raise ValidationFailed(details={"fields": {"pagination": ["Choose 'page' or 'cursor'."]}})
        if mode == "cursor" or self.cursor_query_param in request.query_params:
            self.mode = "cursor"
            return self._paginate_cursor(source, request)
        return self._paginate_pages(source, request)

    def _paginate_pages(self, source: ListSource, request) -> list:
        """Count (exactly up to `count_limit`), then the page. Past the limit the number of pages is unknown, so
        any page number is tried, and one row more than the page tells whether another page follows."""
        size = self._page_size(request)
        counted = source.count_upto(self.count_limit)
        self.count_is_exact = counted <= self.count_limit
        self.count = counted if self.count_is_exact else self.count_limit
        raw = request.query_params.get(self.page_query_param) or 1
        if raw in self.pages.last_page_strings:
            if not self.count_is_exact:
                raise NotFound("The last page is unknown past the count limit; use cursor mode to reach the end.")
            raw = max(1, math.ceil(self.count / size))
        try:
            number = int(raw)
        except (TypeError, ValueError) as exc:
            raise NotFound("Invalid page.") from exc
        pages = max(1, math.ceil(self.count / size))
        if number < 1 or (self.count_is_exact and number > pages):
            raise NotFound("Invalid page.")
        start = (number - 1) * size
        rows = source.rows(start, start + size + 1)
        if number > 1 and not rows:
            raise NotFound("Invalid page.")
        self.page_number, self.has_next = number, len(rows) > size
        self.page = rows[:size]
        return self.page

    def _paginate_cursor(self, source: ListSource, request) -> list:
        sort: Sort = request.sort
        self.sort = sort
        token = request.query_params.get(self.cursor_query_param, "")
        if token:
            payload = _decode(token)
            if payload["s"] != sort.token:
                raise ValidationFailed(
                    details={
                        "fields": {"cursor": [f"This cursor was made for sort '{payload['s']}', not '{sort.token}'."]}
                    }
                )
            source = source.filter(self._after(source.model, sort, payload))
        size = self._page_size(request)
        rows = source.rows(0, size + 1)
        self.has_next = len(rows) > size
        self.page = rows[:size]
        return self.page

    @staticmethod
    def _after(model: type[Model], sort: Sort, payload: dict) -> Q:
        """Rows strictly after (value, id) in the sort order.

        The redundant `field <= value` (or `>=`) bound is what lets the database seek the index straight to
        the cursor position instead of filtering rows from the start, on PostgreSQL and SQLite alike.
        """
        try:
            value = model._meta.get_field(sort.field).to_python(payload["v"])
        except Exception as exc:  # a forged cursor with a value of the wrong type
            raise ValidationFailed(details={"fields": {"cursor": ["Invalid cursor."]}}) from exc
        op, op_eq, id_op = ("lt", "lte", "id__lt") if sort.descending else ("gt", "gte", "id__gt")
        if sort.unique:
            return Q(**{f"{sort.field}__{op}": value})
        return Q(**{f"{sort.field}__{op_eq}": value}) & (
            Q(**{f"{sort.field}__{op}": value}) | Q(**{sort.field: value, id_op: payload["id"]})
        )

    def _next_link(self) -> str | None:
        if not self.has_next:
            return None
        last = self.page[-1]
        value = getattr(last, self.sort.field)
        value = value.isoformat() if hasattr(value, "isoformat") else str(value)
        token = _encode({"s": self.sort.token, "v": value, "id": last.pk})
        url = self.request.build_absolute_uri()
        url = remove_query_param(url, self.mode_query_param)
        url = remove_query_param(url, "page")
        return replace_query_param(url, self.cursor_query_param, token)

    def get_paginated_response(self, data):
        return Response(self.get_paginated_data(data))

    def _page_link(self, number: int) -> str:
        url = self.request.build_absolute_uri()
        if number == 1:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, number)

    def get_paginated_data(self, data) -> OrderedDict:
        if self.mode == "cursor":
            return OrderedDict([("next", self._next_link()), ("results", data)])
        return OrderedDict(
            [
                ("count", self.count),
                ("count_is_exact", self.count_is_exact),
                ("next", self._page_link(self.page_number + 1) if self.has_next else None),
                ("previous", self._page_link(self.page_number - 1) if self.page_number > 1 else None),
                ("results", data),
            ]
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "description": "Page-number mode returns count, count_is_exact, next, previous and results; cursor mode "
            "returns next and results (no count).",
            "properties": {
                "count": {
                    "type": "integer",
                    "description": f"Total rows, exact up to {COUNT_LIMIT:,}; past that it is {COUNT_LIMIT:,} and "
                    "count_is_exact is false (page-number mode only).",
                    "example": 123,
                },
                "count_is_exact": {
                    "type": "boolean",
                    "description": f"False when more than {COUNT_LIMIT:,} rows match (page-number mode only).",
                },
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri", "description": "Page mode only."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            *self.pages.get_schema_operation_parameters(view),
            {
                "name": self.mode_query_param,
                "required": False,
                "in": "query",
                "description": "'page' (default: page numbers with a count) or 'cursor' (keyset pages that stay fast "
                "at any depth; follow `next`).",
                "schema": {"type": "string", "enum": ["page", "cursor"]},
            },
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a previous cursor-mode `next` link; implies cursor mode.",
                "schema": {"type": "string"},
            },
        ]


class CustomerOrdersPagination(DualModePagination):
    """A customer's orders: the same page, plus the customer's lifetime figures under `lifetime`."""

    def get_paginated_response_schema(self, schema):
        result = super().get_paginated_response_schema(schema)
        result["properties"]["lifetime"] = {
            "type": "object",
            "description": "Orders placed (any status), first and last order, revenue per currency "
            "(cancelled and refunded orders excluded).",
            "properties": {
                "orders": {"type": "integer"},
                "first_order_at": {"type": "string", "format": "date-time", "nullable": True},
                "last_order_at": {"type": "string", "format": "date-time", "nullable": True},
                "revenue": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "currency": {"type": "string"},
                            "amount": {"type": "string", "format": "decimal"},
                            "orders": {"type": "integer"},
                        },
                    },
                },
            },
        }
        result["required"] = [*result["required"], "lifetime"]
        return result

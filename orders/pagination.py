"""Sorting and the two pagination modes of the orders lists.

- Page numbers (default): `?page=3&page_size=50`, with a total `count`, for screens. `page_size` is bounded.
- Cursor (keyset): `?pagination=cursor` for the first page, then follow `next` (it carries `cursor=...`).
  Each page is found by `WHERE (sort key, id) beyond the last row seen`, using the same index as the sort, so
  page 20,000 costs what page 1 costs. No total count (that would be a full scan). Forward only: exports and
  sync jobs walk forward; screens use page numbers.

Every sort ends with the id as a tie breaker, so the order is total and stable.
"""

import base64
import binascii
import json
from collections import OrderedDict
from dataclasses import dataclass

from django.db.models import Model, Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from jewelia.core.exceptions import ValidationFailed
from jewelia.core.pagination import PageNumberPagination


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


class DualModePagination(BasePagination):
    """Page numbers by default, keyset cursor with `?pagination=cursor` or `?cursor=...`.

    The view must set `request.sort` (a `Sort`) before paginating, and order the queryset by `sort.order_by()`.
    """

    cursor_query_param = "cursor"
    mode_query_param = "pagination"

    def __init__(self):
        self.pages = PageNumberPagination()
        self.mode = "page"

    def _page_size(self, request) -> int:
        return self.pages.get_page_size(request) or self.pages.page_size

    def paginate_queryset(self, queryset: QuerySet, request, view=None):
        mode = request.query_params.get(self.mode_query_param, "")
        if mode not in ("", "page", "cursor"):
            raise ValidationFailed(details={"fields": {"pagination": ["Choose 'page' or 'cursor'."]}})
        if mode == "cursor" or self.cursor_query_param in request.query_params:
            self.mode = "cursor"
            return self._paginate_cursor(queryset, request)
        return self.pages.paginate_queryset(queryset, request, view)

    def _paginate_cursor(self, queryset: QuerySet, request) -> list:
        sort: Sort = request.sort
        self.request, self.sort = request, sort
        token = request.query_params.get(self.cursor_query_param, "")
        if token:
            payload = _decode(token)
            if payload["s"] != sort.token:
                raise ValidationFailed(
                    details={
                        "fields": {"cursor": [f"This cursor was made for sort '{payload['s']}', not '{sort.token}'."]}
                    }
                )
            queryset = queryset.filter(self._after(queryset.model, sort, payload))
        size = self._page_size(request)
        rows = list(queryset[: size + 1])
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

    def get_paginated_data(self, data) -> OrderedDict:
        if self.mode == "cursor":
            return OrderedDict([("next", self._next_link()), ("results", data)])
        return OrderedDict(
            [
                ("count", self.pages.page.paginator.count),
                ("next", self.pages.get_next_link()),
                ("previous", self.pages.get_previous_link()),
                ("results", data),
            ]
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "description": "Page-number mode returns count, next, previous and results; cursor mode returns next "
            "and results (no count).",
            "properties": {
                "count": {"type": "integer", "description": "Total rows (page-number mode only).", "example": 123},
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

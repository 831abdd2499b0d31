"""The orders API: thin viewsets (input serializer -> service or selector -> output serializer).

Scopes (apikeys/permissions.py): orders need `orders:read` / `orders:write` (transition: `orders:write`, stats:
`orders:read`); customers `customers:*`, except a customer's order history, which lists orders and so needs
`orders:read`; products `products:*` (adjust-stock: `products:write`, stock-movements: `products:read`).
"""

from datetime import timedelta

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jewelia.core.actors import Actor
from jewelia.core.exceptions import ValidationFailed
from jewelia.core.pagination import PageNumberPagination

from . import selectors, services
from .filters import CustomerFilter, OrderFilter, ProductFilter
from .models import Customer, Order, Product, StockMovement
from .pagination import (
    CustomerOrdersPagination,
    DualModePagination,
    ListSource,
    OrderListSource,
    OrderSearchSource,
    sort_parse,
)
from .selectors.stats import StatsRange
from .serializers import (
    CustomerInputSerializer,
    CustomerLifetimeSerializer,
    CustomerOutputSerializer,
    OrderDetailOutputSerializer,
    OrderInputSerializer,
    OrderOutputSerializer,
    OrderTransitionInputSerializer,
    ProductCreateInputSerializer,
    ProductInputSerializer,
    ProductOutputSerializer,
    StatsOutputSerializer,
    StatsQuerySerializer,
    StockAdjustInputSerializer,
    StockMovementOutputSerializer,
)

ORDER_SORTS = {
    "placed_at": ("placed_at", False),
    "total": ("total", False),
    "number": ("number_value", False),  # numeric: J-1000000 after J-999999
    "status": ("status", False),
}
CUSTOMER_SORTS = {"name": ("name", False), "created_at": ("created_at", False)}
PRODUCT_SORTS = {
    "sku": ("sku", True),
    "name": ("name", False),
    "price": ("price", False),
    "stock_on_hand": ("stock_on_hand", False),
}
MAX_STATS_DAYS = 3 * 366


def _sort_parameter(sorts: dict, default: str) -> OpenApiParameter:
    names = [f"{prefix}{name}" for name in sorts for prefix in ("", "-")]
    return OpenApiParameter(
        "sort",
        OpenApiTypes.STR,
        enum=names,
        description=f"Sort key, '-' for descending; ties broken by id. Default {default}.",
    )


class SortedListMixin:
    """Applies `?sort=` (validated) and hands the sort to the pagination for cursor mode."""

    sorts: dict[str, tuple[str, bool]]
    default_sort: str

    def sorted_queryset(self, queryset: QuerySet) -> QuerySet:
        sort = sort_parse(self.request.query_params.get("sort"), fields=self.sorts, default=self.default_sort)
        self.request.sort = sort
        return queryset.order_by(*sort.order_by())

    def list_source(self, queryset: QuerySet) -> ListSource:
        """The filtered rows to page through, sorted."""
        return ListSource(self.sorted_queryset(queryset))

    def paginated(self, queryset: QuerySet, serializer_class, **extra) -> Response:
        page = self.paginate_queryset(self.list_source(self.filter_queryset(queryset)))
        data = self.paginator.get_paginated_data(serializer_class(page, many=True).data)
        return Response({**extra, **data} if extra else data)


class OrderListMixin(SortedListMixin):
    """Orders lists read their rows light (`OrderListSource`); a search (`q`) is paged by `OrderSearchSource`,
    which picks its query shape by how many orders match (the filterset leaves the unsearched queryset and the
    search on the request)."""

    def list_source(self, queryset: QuerySet) -> ListSource:
        searched = getattr(self.request, "order_search", None)
        if searched is None:
            return OrderListSource(self.sorted_queryset(queryset))
        unsearched, search = searched
        return OrderSearchSource(self.sorted_queryset(unsearched), search)


@extend_schema_view(
    list=extend_schema(summary="List orders", parameters=[_sort_parameter(ORDER_SORTS, "-placed_at")]),
    retrieve=extend_schema(summary="One order with items, status history, payments and shipments"),
)
class OrderViewSet(OrderListMixin, viewsets.GenericViewSet):
    scope_resource = "orders"
    required_scopes = {"transition": "orders:write", "stats": "orders:read"}
    queryset = Order.objects.all()
    filterset_class = OrderFilter
    pagination_class = DualModePagination
    sorts, default_sort = ORDER_SORTS, "-placed_at"

    def get_queryset(self):
        if self.action == "list":
            return selectors.order_list_queryset()
        return selectors.order_detail_queryset()

    def _detail(self, order: Order, status_code=status.HTTP_200_OK) -> Response:
        order = selectors.order_detail_queryset().get(pk=order.pk)
        return Response(OrderDetailOutputSerializer(order).data, status=status_code)

    @extend_schema(responses=OrderOutputSerializer(many=True))
    def list(self, request):
        return self.paginated(self.get_queryset(), OrderOutputSerializer)

    @extend_schema(responses=OrderDetailOutputSerializer)
    def retrieve(self, request, pk=None):
        return Response(OrderDetailOutputSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create an order with its items",
        request=OrderInputSerializer,
        responses={201: OrderDetailOutputSerializer},
    )
    def create(self, request):
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        order = services.order_create(
            actor=Actor.from_request(request),
            currency=data.pop("currency"),
            items=data.pop("items"),
            expected_subtotal=data.pop("subtotal", None),
            expected_total=data.pop("total", None),
            **data,
        )
        return self._detail(order, status.HTTP_201_CREATED)

    def _update(self, request, *, partial: bool) -> Response:
        order = self.get_object()
        serializer = OrderInputSerializer(order, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        services.order_update(
            order=order,
            actor=Actor.from_request(request),
            items=data.pop("items", None),
            expected_subtotal=data.pop("subtotal", None),
            expected_total=data.pop("total", None),
            data=data,
        )
        return self._detail(order)

    @extend_schema(
        summary="Replace an order (items and totals recomputed)",
        request=OrderInputSerializer,
        responses=OrderDetailOutputSerializer,
    )
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(
        summary="Change some fields of an order", request=OrderInputSerializer, responses=OrderDetailOutputSerializer
    )
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    @extend_schema(summary="Delete a pending or cancelled order (409 otherwise)", responses={204: None})
    def destroy(self, request, pk=None):
        services.order_delete(order=self.get_object(), actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Move an order to another status",
        description="Allowed moves follow the transition table; any other is a 409 whose details list the allowed "
        "next statuses. Each move is recorded in the order's status history with who made it.",
        request=OrderTransitionInputSerializer,
        responses={200: OrderDetailOutputSerializer, 409: OpenApiResponse(description="Transition not allowed.")},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def transition(self, request, pk=None):
        serializer = OrderTransitionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = services.order_transition(
            order=self.get_object(), actor=Actor.from_request(request), **serializer.validated_data
        )
        return self._detail(order)

    @extend_schema(
        summary="Order statistics for a date range",
        description="Counts and revenue by status, a timeline per day/week/month with gaps filled, revenue and "
        "average order value, top customers and products, and a payment-status breakdown. Sums are per "
        "currency, never mixed. Revenue excludes cancelled and refunded orders.",
        parameters=[
            OpenApiParameter("date_from", OpenApiTypes.DATE),
            OpenApiParameter("date_to", OpenApiTypes.DATE),
            OpenApiParameter("interval", OpenApiTypes.STR, enum=["day", "week", "month"]),
            OpenApiParameter("channel", OpenApiTypes.STR, description="One or more channels, comma-separated."),
        ],
        responses=StatsOutputSerializer,
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request):
        data = {key: value for key, value in request.query_params.items() if key != "channel"}
        channels = [
            c.strip() for value in request.query_params.getlist("channel") for c in value.split(",") if c.strip()
        ]
        if channels:
            data["channel"] = channels
        query = StatsQuerySerializer(data=data)
        query.is_valid(raise_exception=True)
        stats_range = _stats_range(query.validated_data)
        return Response(StatsOutputSerializer(selectors.order_stats(stats_range=stats_range)).data)


def _stats_range(data: dict) -> StatsRange:
    today = timezone.localdate()
    date_to = data.get("date_to") or today
    date_from = data.get("date_from") or date_to - timedelta(days=29)
    if date_from > date_to:
        raise ValidationFailed(details={"fields": {"date_from": ["Must not be after date_to."]}})
    if (date_to - date_from).days >= MAX_STATS_DAYS:
        raise ValidationFailed(details={"fields": {"date_from": [f"The range is limited to {MAX_STATS_DAYS} days."]}})
    interval = data.get("interval") or ("day" if (date_to - date_from).days < 92 else "month")
    return StatsRange(date_from=date_from, date_to=date_to, interval=interval, channels=tuple(data.get("channel", ())))


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        parameters=[_sort_parameter(CUSTOMER_SORTS, "name")],
        responses=CustomerOutputSerializer(many=True),
    ),
    retrieve=extend_schema(responses=CustomerOutputSerializer),
)
class CustomerViewSet(SortedListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "customers"
    queryset = Customer.objects.all()
    serializer_class = CustomerOutputSerializer
    filterset_class = CustomerFilter
    pagination_class = DualModePagination
    sorts, default_sort = CUSTOMER_SORTS, "name"

    def list(self, request):
        return self.paginated(self.get_queryset(), CustomerOutputSerializer)

    @extend_schema(request=CustomerInputSerializer, responses={201: CustomerOutputSerializer})
    def create(self, request):
        serializer = CustomerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_create(actor=Actor.from_request(request), data=serializer.validated_data)
        return Response(CustomerOutputSerializer(customer).data, status=status.HTTP_201_CREATED)

    def _update(self, request, *, partial: bool) -> Response:
        customer = self.get_object()
        serializer = CustomerInputSerializer(customer, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        services.customer_update(
            customer=customer, actor=Actor.from_request(request), data=dict(serializer.validated_data)
        )
        return Response(CustomerOutputSerializer(customer).data)

    @extend_schema(request=CustomerInputSerializer, responses=CustomerOutputSerializer)
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=CustomerInputSerializer, responses=CustomerOutputSerializer)
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    @extend_schema(summary="Delete a customer without orders (409 otherwise)", responses={204: None})
    def destroy(self, request, pk=None):
        services.customer_delete(customer=self.get_object(), actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="A customer's orders and lifetime figures",
        description="The customer's orders (same filters, sorts and pagination modes as /api/orders/) and, under "
        "`lifetime`, orders placed, first and last order, and revenue per currency. Needs `orders:read`.",
        parameters=[_sort_parameter(ORDER_SORTS, "-placed_at")],
        responses=OrderOutputSerializer(many=True),
    )
)
class CustomerOrderViewSet(OrderListMixin, viewsets.GenericViewSet):
    """`/api/customers/{customer_pk}/orders/`: its own viewset so the orders filters and schema apply as is."""

    scope_resource = "orders"
    queryset = Order.objects.all()
    filterset_class = OrderFilter
    pagination_class = CustomerOrdersPagination
    sorts, default_sort = ORDER_SORTS, "-placed_at"

    def get_queryset(self):
        return selectors.order_list_queryset().filter(customer_id=self.kwargs.get("customer_pk"))

    def list(self, request, customer_pk=None):
        customer = get_object_or_404(Customer, pk=customer_pk)
        lifetime = CustomerLifetimeSerializer(selectors.customer_lifetime(customer=customer)).data
        return self.paginated(self.get_queryset(), OrderOutputSerializer, lifetime=lifetime)


@extend_schema_view(
    list=extend_schema(
        summary="List products",
        parameters=[_sort_parameter(PRODUCT_SORTS, "sku")],
        responses=ProductOutputSerializer(many=True),
    ),
    retrieve=extend_schema(responses=ProductOutputSerializer),
)
class ProductViewSet(SortedListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "products"
    required_scopes = {"adjust_stock": "products:write", "stock_movements": "products:read"}
    queryset = Product.objects.all()
    serializer_class = ProductOutputSerializer
    filterset_class = ProductFilter
    pagination_class = DualModePagination
    sorts, default_sort = PRODUCT_SORTS, "sku"

    def list(self, request):
        return self.paginated(self.get_queryset(), ProductOutputSerializer)

    @extend_schema(request=ProductCreateInputSerializer, responses={201: ProductOutputSerializer})
    def create(self, request):
        serializer = ProductCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        product = services.product_create(
            actor=Actor.from_request(request), stock_on_hand=data.pop("stock_on_hand"), data=data
        )
        return Response(ProductOutputSerializer(product).data, status=status.HTTP_201_CREATED)

    def _update(self, request, *, partial: bool) -> Response:
        product = self.get_object()
        if isinstance(request.data, dict) and "stock_on_hand" in request.data:
            raise ValidationFailed(details={"fields": {"stock_on_hand": ["Change stock with POST adjust-stock/."]}})
        serializer = ProductInputSerializer(product, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        services.product_update(
            product=product, actor=Actor.from_request(request), data=dict(serializer.validated_data)
        )
        return Response(ProductOutputSerializer(product).data)

    @extend_schema(request=ProductInputSerializer, responses=ProductOutputSerializer)
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(request=ProductInputSerializer, responses=ProductOutputSerializer)
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    @extend_schema(summary="Delete a product without sales or stock history (409 otherwise)", responses={204: None})
    def destroy(self, request, pk=None):
        services.product_delete(product=self.get_object(), actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Add or remove stock (recorded as a stock movement)",
        request=StockAdjustInputSerializer,
        responses={200: ProductOutputSerializer, 409: OpenApiResponse(description="Stock would go below zero.")},
    )
    @action(detail=True, methods=["post"], url_path="adjust-stock", filter_backends=[])
    def adjust_stock(self, request, pk=None):
        product = self.get_object()
        serializer = StockAdjustInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.stock_adjust(product=product, actor=Actor.from_request(request), **serializer.validated_data)
        return Response(ProductOutputSerializer(product).data)

    @extend_schema(
        summary="A product's stock movements, newest first", responses=StockMovementOutputSerializer(many=True)
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="stock-movements",
        filter_backends=[],
        pagination_class=PageNumberPagination,
    )
    def stock_movements(self, request, pk=None):
        product = self.get_object()
        page = self.paginate_queryset(StockMovement.objects.filter(product=product).order_by("-created_at", "-id"))
        return self.get_paginated_response(StockMovementOutputSerializer(page, many=True).data)

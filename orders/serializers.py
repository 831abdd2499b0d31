"""Input serializers (strict: unknown fields are a 400) and output serializers of the orders API.

Inputs only check shape and types and resolve ids; the rules (totals, currencies' minor units, transitions,
stock) live in `orders.services`, so the admin and integrations get the same checks.
"""

from collections.abc import Mapping

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jewelia.core.serializers import StrictSerializer

from .currencies import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, is_valid_currency, money_format
from .models import (
    Channel,
    Customer,
    FulfillmentStatus,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Payment,
    PaymentStatus,
    Product,
    ProductCategory,
    Shipment,
    StockMovement,
    StockReason,
)
from .selectors.stats import INTERVALS
from .services import ItemInput
from .transitions import allowed_next

MAX_ITEMS_PER_ORDER = 200


def money_input(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, min_value=0, **kwargs
    )


class CurrencyField(serializers.CharField):
    """An ISO 4217 code, upper-cased ("eur" is read as "EUR")."""

    def __init__(self, **kwargs):
        super().__init__(max_length=3, min_length=3, **kwargs)

    def to_internal_value(self, data):
        code = super().to_internal_value(data).upper()
        if not is_valid_currency(code):
            raise serializers.ValidationError(f"'{code}' is not an ISO 4217 currency code.")
        return code


@extend_schema_field({"type": "string", "format": "decimal", "example": "1250.00"})
class MoneyField(serializers.Field):
    """An amount as a string with its currency's decimals; the currency comes from the same row (or `order`)."""

    def __init__(self, attr: str, currency_attr: str = "currency", **kwargs):
        self.attr, self.currency_attr = attr, currency_attr
        super().__init__(source="*", read_only=True, **kwargs)

    @staticmethod
    def _get(obj, path: str):
        for part in path.split("."):
            obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
        return obj

    def to_representation(self, obj):
        return money_format(self._get(obj, self.attr), self._get(obj, self.currency_attr))


# --- outputs -------------------------------------------------------------------------------------------------


class CustomerSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name", "email"]


class OrderItemOutputSerializer(serializers.ModelSerializer):
    unit_price = MoneyField("unit_price", "order.currency")
    line_total = MoneyField("line_total", "order.currency")

    class Meta:
        model = OrderItem
        fields = ["id", "product", "sku", "name", "quantity", "unit_price", "line_total", "attributes", "external_id"]


class OrderStatusHistoryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderStatusHistory
        fields = ["from_status", "to_status", "actor_type", "actor_id", "actor_label", "note", "created_at"]


class PaymentOutputSerializer(serializers.ModelSerializer):
    amount = MoneyField("amount")
    captured_amount = MoneyField("captured_amount")
    refunded_amount = MoneyField("refunded_amount")

    class Meta:
        model = Payment
        fields = [
            "id",
            "provider",
            "external_id",
            "status",
            "method",
            "currency",
            "amount",
            "captured_amount",
            "refunded_amount",
            "processed_at",
            "created_at",
        ]


class ShipmentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shipment
        fields = [
            "id",
            "carrier",
            "service",
            "tracking_number",
            "status",
            "shipped_at",
            "delivered_at",
            "tracking_events",
            "created_at",
        ]


class OrderOutputSerializer(serializers.ModelSerializer):
    customer = CustomerSummarySerializer(allow_null=True)
    items = OrderItemOutputSerializer(many=True)
    subtotal = MoneyField("subtotal")
    discount_total = MoneyField("discount_total")
    tax_total = MoneyField("tax_total")
    shipping_total = MoneyField("shipping_total")
    total = MoneyField("total")
    allowed_transitions = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "external_reference",
            "customer",
            "channel",
            "status",
            "allowed_transitions",
            "payment_status",
            "fulfillment_status",
            "currency",
            "subtotal",
            "discount_total",
            "tax_total",
            "shipping_total",
            "total",
            "placed_at",
            "due_date",
            "notes",
            "items",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=OrderStatus.choices)))
    def get_allowed_transitions(self, order: Order) -> list[str]:
        return list(allowed_next(order.status))

    def to_representation(self, order: Order) -> dict:
        """The same fields as declared above, built directly.

        Lists and exports serialize thousands of orders and items; DRF's generic field machinery cost about
        0.8 ms per order with its items, most of a list request's time. The declared fields still drive the
        OpenAPI schema, and tests compare this output with the declared shape. `order` is an `Order` (detail) or
        an `orders.selectors.OrderRow` (lists), which has the same attributes and its items as a list.
        """
        currency = order.currency
        customer = order.customer
        tz = timezone.get_current_timezone()
        return {
            "id": order.pk,
            "number": order.number,
            "external_reference": order.external_reference,
            "customer": None
            if customer is None
            else {"id": customer.pk, "name": customer.name, "email": customer.email},
            "channel": order.channel,
            "status": order.status,
            "allowed_transitions": list(allowed_next(order.status)),
            "payment_status": order.payment_status,
            "fulfillment_status": order.fulfillment_status,
            "currency": currency,
            "subtotal": money_format(order.subtotal, currency),
            "discount_total": money_format(order.discount_total, currency),
            "tax_total": money_format(order.tax_total, currency),
            "shipping_total": money_format(order.shipping_total, currency),
            "total": money_format(order.total, currency),
            "placed_at": _datetime_text(order.placed_at, tz),
            "due_date": order.due_date.isoformat() if order.due_date else None,
            "notes": order.notes,
            "items": [
                {
                    "id": item.pk,
                    "product": item.product_id,
                    "sku": item.sku,
                    "name": item.name,
                    "quantity": item.quantity,
                    "unit_price": money_format(item.unit_price, currency),
                    "line_total": money_format(item.line_total, currency),
                    "attributes": item.attributes,
                    "external_id": item.external_id,
                }
                for item in (order.items if isinstance(order.items, list) else order.items.all())
            ],
            "created_at": _datetime_text(order.created_at, tz),
            "updated_at": _datetime_text(order.updated_at, tz),
        }


def _datetime_text(value, tz) -> str:
    """What DRF's DateTimeField renders (ISO 8601 in the current time zone, UTC as "Z"), without its per-call
    time zone lookups."""
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class OrderDetailOutputSerializer(OrderOutputSerializer):
    status_history = OrderStatusHistoryOutputSerializer(many=True)
    payments = PaymentOutputSerializer(many=True)
    shipments = ShipmentOutputSerializer(many=True)

    class Meta(OrderOutputSerializer.Meta):
        fields = [*OrderOutputSerializer.Meta.fields, "status_history", "payments", "shipments"]

    def to_representation(self, order: Order) -> dict:
        data = super().to_representation(order)
        for name in ("status_history", "payments", "shipments"):
            data[name] = self.fields[name].to_representation(getattr(order, name).all())
        return data


# --- order inputs --------------------------------------------------------------------------------------------


class OrderItemInputSerializer(StrictSerializer):
    product = serializers.IntegerField(required=False, allow_null=True, help_text="Product id (optional).")
    sku = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="Links the product.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)
    unit_price = money_input(required=False, help_text="Defaults to the product's price in the same currency.")
    attributes = serializers.DictField(required=False, help_text='Free-form, e.g. {"ring_size": "54"}.')
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=100)


class OrderInputSerializer(StrictSerializer):
    """Create (all required fields) or update (PATCH: any subset). Sending `items` replaces all items.

    `subtotal` and `total` are optional checks: when sent they must equal what the server computes.
    """

    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False, allow_null=True)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    currency = CurrencyField()
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices, required=False)
    fulfillment_status = serializers.ChoiceField(choices=FulfillmentStatus.choices, required=False)
    placed_at = serializers.DateTimeField(required=False)
    due_date = serializers.DateField(required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    external_reference = serializers.CharField(required=False, allow_blank=True, max_length=100)
    discount_total = money_input(required=False)
    tax_total = money_input(required=False)
    shipping_total = money_input(required=False)
    subtotal = money_input(required=False, help_text="Optional check against the computed subtotal.")
    total = money_input(required=False, help_text="Optional check against the computed total.")
    items = OrderItemInputSerializer(many=True, allow_empty=False, max_length=MAX_ITEMS_PER_ORDER)

    def validate(self, attrs):
        if "items" in attrs:
            currency = attrs.get("currency") or getattr(self.instance, "currency", "")
            attrs["items"] = self._resolve_items(attrs["items"], currency)
        return attrs

    @staticmethod
    def _resolve_items(items: list[dict], currency: str) -> list[ItemInput]:
        """Link each line to its product (by id, else by SKU) in two queries, and default its price."""
        by_id = Product.objects.in_bulk([i["product"] for i in items if i.get("product")])
        by_sku = Product.objects.in_bulk(
            [i["sku"] for i in items if i.get("sku") and not i.get("product")], field_name="sku"
        )
        errors, resolved = [], []
        for item in items:
            problems: dict[str, list[str]] = {}
            product = None
            if item.get("product"):
                product = by_id.get(item["product"])
                if product is None:
                    problems["product"] = [f"Unknown product {item['product']}."]
            elif item.get("sku"):
                product = by_sku.get(item["sku"])
            unit_price = item.get("unit_price")
            if unit_price is None:
                if product is None:
                    problems.setdefault("unit_price", ["Required when the line has no product."])
                elif product.currency != currency:
                    problems["unit_price"] = [f"Required: the product is priced in {product.currency}, not {currency}."]
                else:
                    unit_price = product.price
            if not (item.get("name") or product):
                problems["name"] = ["Required when the line has no product."]
            errors.append(problems)
            if not problems:
                resolved.append(
                    ItemInput(
                        product=product,
                        sku=item.get("sku") or (product.sku if product else ""),
                        name=item.get("name") or product.name,
                        quantity=item["quantity"],
                        unit_price=unit_price,
                        attributes=item.get("attributes") or {},
                        external_id=item.get("external_id", ""),
                    )
                )
        if any(errors):
            raise serializers.ValidationError({"items": errors})
        return resolved


class OrderTransitionInputSerializer(StrictSerializer):
    to_status = serializers.ChoiceField(choices=OrderStatus.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


# --- stats ---------------------------------------------------------------------------------------------------


class StatsQuerySerializer(StrictSerializer):
    date_from = serializers.DateField(required=False, help_text="First day, inclusive (default: 29 days ago).")
    date_to = serializers.DateField(required=False, help_text="Last day, inclusive (default: today).")
    interval = serializers.ChoiceField(
        choices=INTERVALS, required=False, help_text="Timeline bucket (default: day up to 92 days, else month)."
    )
    channel = serializers.ListField(
        child=serializers.ChoiceField(choices=Channel.choices), required=False, help_text="One or more channels."
    )


class AmountSerializer(serializers.Serializer):
    currency = serializers.CharField()
    amount = MoneyField("amount")


class CountedAmountSerializer(AmountSerializer):
    orders = serializers.IntegerField()


class RevenueSerializer(CountedAmountSerializer):
    average_order_value = MoneyField("average_order_value")


class StatusBreakdownSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    orders = serializers.IntegerField()
    amounts = AmountSerializer(many=True)


class PaymentStatusBreakdownSerializer(serializers.Serializer):
    payment_status = serializers.ChoiceField(choices=PaymentStatus.choices)
    orders = serializers.IntegerField()
    amounts = AmountSerializer(many=True)


class TimelineSerializer(serializers.Serializer):
    period = serializers.DateField(help_text="First day of the period (weeks start on Monday).")
    orders = serializers.IntegerField(help_text="Orders placed in the period, any status.")
    revenue = CountedAmountSerializer(many=True)


class TopCustomerSerializer(serializers.Serializer):
    currency = serializers.CharField()
    customer = CustomerSummarySerializer()
    orders = serializers.IntegerField()
    revenue = MoneyField("revenue")


class TopProductSerializer(serializers.Serializer):
    currency = serializers.CharField()
    sku = serializers.CharField()
    name = serializers.CharField()
    product_id = serializers.IntegerField(allow_null=True)
    quantity = serializers.IntegerField()
    revenue = MoneyField("revenue")


class StatsOutputSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    interval = serializers.ChoiceField(choices=INTERVALS)
    channels = serializers.ListField(child=serializers.CharField())
    currencies = serializers.ListField(child=serializers.CharField())
    orders = serializers.IntegerField()
    revenue = RevenueSerializer(many=True)
    by_status = StatusBreakdownSerializer(many=True)
    payment_status = PaymentStatusBreakdownSerializer(many=True)
    timeline = TimelineSerializer(many=True)
    top_customers = TopCustomerSerializer(many=True)
    top_products = TopProductSerializer(many=True)

    def to_representation(self, stats: dict) -> dict:
        """The declared shape, built directly: a daily timeline of a year is ~1,100 nested entries, which DRF's
        field machinery turned into most of the request's time. The declared fields still drive the OpenAPI
        schema, and the stats tests compare this output with hand-computed figures."""

        def amounts(rows: list[dict]) -> list[dict]:
            return [{"currency": r["currency"], "amount": money_format(r["amount"], r["currency"])} for r in rows]

        return {
            "date_from": stats["date_from"].isoformat(),
            "date_to": stats["date_to"].isoformat(),
            "interval": stats["interval"],
            "channels": list(stats["channels"]),
            "currencies": list(stats["currencies"]),
            "orders": stats["orders"],
            "revenue": [
                {
                    "currency": r["currency"],
                    "amount": money_format(r["amount"], r["currency"]),
                    "orders": r["orders"],
                    "average_order_value": money_format(r["average_order_value"], r["currency"]),
                }
                for r in stats["revenue"]
            ],
            "by_status": [
                {"status": r["status"], "orders": r["orders"], "amounts": amounts(r["amounts"])}
                for r in stats["by_status"]
            ],
            "payment_status": [
                {"payment_status": r["payment_status"], "orders": r["orders"], "amounts": amounts(r["amounts"])}
                for r in stats["payment_status"]
            ],
            "timeline": [
                {
                    "period": r["period"].isoformat(),
                    "orders": r["orders"],
                    "revenue": [
                        {
                            "currency": v["currency"],
                            "amount": money_format(v["amount"], v["currency"]),
                            "orders": v["orders"],
                        }
                        for v in r["revenue"]
                    ],
                }
                for r in stats["timeline"]
            ],
            "top_customers": [
                {
                    "currency": r["currency"],
                    "customer": {
                        "id": r["customer"]["id"],
                        "name": r["customer"]["name"],
                        "email": r["customer"]["email"],
                    },
                    "orders": r["orders"],
                    "revenue": money_format(r["revenue"], r["currency"]),
                }
                for r in stats["top_customers"]
            ],
            "top_products": [
                {
                    "currency": r["currency"],
                    "sku": r["sku"],
                    "name": r["name"],
                    "product_id": r["product_id"],
                    "quantity": r["quantity"],
                    "revenue": money_format(r["revenue"], r["currency"]),
                }
                for r in stats["top_products"]
            ],
        }


# --- customers -----------------------------------------------------------------------------------------------


class AddressSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["billing", "shipping", "other"], default="shipping")
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100)
    region = serializers.CharField(max_length=100, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, min_length=2, help_text="ISO 3166-1 alpha-2.")


class CustomerInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    addresses = AddressSerializer(many=True, required=False)
    marketing_consent = serializers.BooleanField(required=False)
    marketing_consent_source = serializers.CharField(required=False, allow_blank=True, max_length=100)
    marketing_consent_at = serializers.DateTimeField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class CustomerOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "addresses",
            "marketing_consent",
            "marketing_consent_source",
            "marketing_consent_at",
            "tags",
            "notes",
            "created_at",
            "updated_at",
        ]


class CustomerLifetimeSerializer(serializers.Serializer):
    orders = serializers.IntegerField(help_text="Orders placed, any status.")
    first_order_at = serializers.DateTimeField(allow_null=True)
    last_order_at = serializers.DateTimeField(allow_null=True)
    revenue = CountedAmountSerializer(many=True, help_text="Per currency; cancelled and refunded orders excluded.")


# --- products ------------------------------------------------------------------------------------------------


class ProductInputSerializer(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    category = serializers.ChoiceField(choices=ProductCategory.choices, required=False)
    metal = serializers.CharField(required=False, allow_blank=True, max_length=64)
    gemstone = serializers.CharField(required=False, allow_blank=True, max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    price = money_input()
    currency = CurrencyField()
    active = serializers.BooleanField(required=False)


class ProductCreateInputSerializer(ProductInputSerializer):
    stock_on_hand = serializers.IntegerField(
        min_value=0, required=False, default=0, help_text="Opening stock; later changes use adjust-stock."
    )


class ProductOutputSerializer(serializers.ModelSerializer):
    price = MoneyField("price")

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "category",
            "metal",
            "gemstone",
            "description",
            "price",
            "currency",
            "stock_on_hand",
            "active",
            "created_at",
            "updated_at",
        ]


class StockAdjustInputSerializer(StrictSerializer):
    delta = serializers.IntegerField(help_text="Units to add (negative to remove); never below zero in total.")
    reason = serializers.ChoiceField(choices=StockReason.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate_delta(self, value):
        if value == 0:
            raise serializers.ValidationError("Must not be zero.")
        return value


class StockMovementOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = StockMovement
        fields = [
            "id",
            "delta",
            "stock_after",
            "reason",
            "note",
            "order",
            "actor_type",
            "actor_id",
            "actor_label",
            "created_at",
        ]

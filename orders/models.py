"""The CRM data that integrations read and write: customers, products, orders and their items, payments,
shipments, and the audit trails of order status and stock.

Money is a `Decimal` with an ISO 4217 currency on the same row (never floats, never a mixed-currency sum).
Amounts are stored with three decimals so that KWD or BHD fit; services check each amount against its own
currency's minor units. Workflow (totals, numbering, status transitions, stock) lives in `orders.services`,
never in `save()`.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from .currencies import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, is_valid_currency


def validate_currency(value: str) -> None:
    if not is_valid_currency(value):
        raise ValidationError(f"'{value}' is not an ISO 4217 currency code.", code="invalid_currency")


def money_field(**kwargs) -> models.DecimalField:
    kwargs.setdefault("default", 0)
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


def currency_field(**kwargs) -> models.CharField:
    return models.CharField(max_length=3, validators=[validate_currency], **kwargs)


class ActorType(models.TextChoices):
    USER = "user", "Staff user"
    API_KEY = "api_key", "API key"
    INTEGRATION = "integration", "Integration"
    SYSTEM = "system", "System"


class ActorFields(models.Model):
    """Who did it (`jewelia.core.actors.Actor.as_fields()`), as plain columns: no foreign key to another app."""

    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)

    class Meta:
        abstract = True

    @property
    def actor_display(self) -> str:
        return f"{self.get_actor_type_display()}: {self.actor_label or self.actor_id or '-'}"


class Customer(models.Model):
    """A person or business that buys. Email is unique ignoring case, but optional (walk-in customers)."""

    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    # [{"kind": "billing"|"shipping", "line1", "line2", "city", "region", "postal_code", "country"}, ...]
    addresses = models.JSONField(default=list, blank=True)
    marketing_consent = models.BooleanField(default=False)
    marketing_consent_source = models.CharField(
        max_length=100, blank=True, help_text="Where consent was given or withdrawn (in store, web form, integration)."
    )
    marketing_consent_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    source_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="The source system's last-changed time, so older versions never win."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(Lower("email"), condition=~Q(email=""), name="orders_customer_email_ci_unique"),
        ]
        indexes = [
            models.Index(fields=["name", "id"], name="orders_cust_name_idx"),
            models.Index(fields=["created_at", "id"], name="orders_cust_created_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or f"Customer {self.pk}"


class ProductCategory(models.TextChoices):
    RING = "ring", "Ring"
    ENGAGEMENT_RING = "engagement_ring", "Engagement ring"
    WEDDING_BAND = "wedding_band", "Wedding band"
    NECKLACE = "necklace", "Necklace"
    PENDANT = "pendant", "Pendant"
    BRACELET = "bracelet", "Bracelet"
    EARRINGS = "earrings", "Earrings"
    BROOCH = "brooch", "Brooch"
    CUFFLINKS = "cufflinks", "Cufflinks"
    WATCH = "watch", "Watch"
    LOOSE_STONE = "loose_stone", "Loose stone"
    REPAIR_SERVICE = "repair_service", "Repair service"
    CUSTOM_DESIGN = "custom_design", "Custom design"
    GIFT_CARD = "gift_card", "Gift card"
    OTHER = "other", "Other"


class Product(models.Model):
    """A sellable SKU. Stock on hand only changes through `orders.services.stock_adjust` (audited)."""

    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=32, choices=ProductCategory.choices, default=ProductCategory.OTHER)
    metal = models.CharField(max_length=64, blank=True, help_text="e.g. 18k yellow gold, platinum, sterling silver")
    gemstone = models.CharField(max_length=64, blank=True, help_text="e.g. diamond 0.5ct, sapphire")
    description = models.TextField(blank=True)
    price = money_field()
    currency = currency_field()
    stock_on_hand = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="orders_product_price_non_negative"),
            models.CheckConstraint(condition=Q(stock_on_hand__gte=0), name="orders_product_stock_non_negative"),
        ]
        indexes = [
            models.Index(fields=["name", "id"], name="orders_prod_name_idx"),
            models.Index(fields=["category", "sku"], name="orders_prod_category_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Channel(models.TextChoices):
    IN_STORE = "in_store", "In store"
    PHONE = "phone", "Phone"
    EMAIL = "email", "Email"
    ONLINE_STORE = "online_store", "Online store"
    MARKETPLACE = "marketplace", "Marketplace"
    POS = "pos", "POS"
    SOCIAL = "social", "Social media"
    WHOLESALE = "wholesale", "Wholesale"
    OTHER = "other", "Other"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    IN_PRODUCTION = "in_production", "In production"
    READY = "ready", "Ready"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid", "Unpaid"
    AUTHORIZED = "authorized", "Authorized"
    PARTIALLY_PAID = "partially_paid", "Partially paid"
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    VOIDED = "voided", "Voided"


class FulfillmentStatus(models.TextChoices):
    UNFULFILLED = "unfulfilled", "Unfulfilled"
    PARTIALLY_FULFILLED = "partially_fulfilled", "Partially fulfilled"
    FULFILLED = "fulfilled", "Fulfilled"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    RETURNED = "returned", "Returned"


def order_number_value(number: str) -> int:
    """The trailing digits of an order number as an integer (`J-000123` -> 123; 0 when there are none; at most 18
    digits, to fit the column)."""
    digits = min(18, len(number) - len(number.rstrip("0123456789")))
    return int(number[-digits:]) if digits else 0


class OrderNumberValueField(models.BigIntegerField):
    """`Order.number_value`: derived from `number` whenever the row is written (save and bulk_create alike, as
    `auto_now` is), so no writer can forget it. Sorting by number sorts by it: as text, J-1000000 < J-999999."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", 0)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance, add):
        value = order_number_value(model_instance.number or "")
        setattr(model_instance, self.attname, value)
        return value


class Order(models.Model):
    """A sale. Totals are computed by the server from the items (`orders.services.order_totals_compute`).

    `number` is the CRM's own number (`J-000123`, from `order_numbers_allocate`); `external_reference` is what
    the source system calls it (Shopify's "#1001"), shown to staff and searchable.
    """

    number = models.CharField(max_length=32, unique=True)
    number_value = OrderNumberValueField()
    external_reference = models.CharField(max_length=100, blank=True, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders", null=True, blank=True)
    channel = models.CharField(max_length=20, choices=Channel.choices, default=Channel.IN_STORE)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    payment_status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID)
    fulfillment_status = models.CharField(
        max_length=20, choices=FulfillmentStatus.choices, default=FulfillmentStatus.UNFULFILLED
    )
    currency = currency_field()
    subtotal = money_field()
    discount_total = money_field()
    tax_total = money_field()
    shipping_total = money_field()
    total = money_field()
    placed_at = models.DateTimeField(default=timezone.now)
    due_date = models.DateField(null=True, blank=True, help_text="Promised date for custom and repair work.")
    notes = models.TextField(blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(subtotal__gte=0)
                & Q(discount_total__gte=0)
                & Q(tax_total__gte=0)
                & Q(shipping_total__gte=0)
                & Q(total__gte=0),
                name="orders_order_amounts_non_negative",
            ),
        ]
        # Every filter and sort of the orders API has an index; sorts end with id as the stable tie breaker
        # (and keyset pagination walks (sort key, id)).
        indexes = [
            # Also covers what the stats aggregate live (days not rolled up yet, short ranges' top customers), so
            # those read the index alone.
            models.Index(
                fields=["placed_at", "id"],
                include=["status", "payment_status", "currency", "channel", "customer_id", "total"],
                name="orders_order_placed_idx",
            ),
            models.Index(fields=["total", "id"], name="orders_order_total_idx"),
            models.Index(fields=["number_value", "id"], name="orders_order_number_value_idx"),
            models.Index(fields=["status", "placed_at", "id"], name="orders_order_status_placed_idx"),
            models.Index(fields=["status", "id"], name="orders_order_status_id_idx"),
            models.Index(fields=["payment_status", "placed_at"], name="orders_order_paystat_idx"),
            models.Index(fields=["fulfillment_status", "placed_at"], name="orders_order_fulfil_idx"),
            models.Index(fields=["channel", "placed_at"], name="orders_order_channel_idx"),
            # Per-channel lists by amount ("phone orders over 1,000, largest first"): the page is read straight
            # from the index instead of walking every order by total and checking its channel.
            models.Index(fields=["channel", "total", "id"], name="orders_order_channel_total_idx"),
            # A customer's orders by time, covering what the stats rank customers by and what search and customer
            # history need, so those read the index alone.
            models.Index(
                fields=["customer", "placed_at", "id"],
                include=["currency", "status", "channel", "total"],
                name="orders_order_customer_idx",
            ),
            models.Index(fields=["currency", "placed_at"], name="orders_order_currency_idx"),
            models.Index(fields=["due_date"], condition=Q(due_date__isnull=False), name="orders_order_due_idx"),
            # The stats reconcile looks up orders changed recently (`orders.services.stats`).
            models.Index(fields=["updated_at"], name="orders_order_updated_idx"),
        ]

    def __str__(self) -> str:
        return self.number


class OrderItem(models.Model):
    """One line of an order. SKU, name and price are captured at sale time, so later product edits (or a
    product's deletion) never rewrite history."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.SET_NULL, related_name="order_items", null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    sku = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    unit_price = money_field()
    line_total = money_field()
    attributes = models.JSONField(default=dict, blank=True, help_text='Free-form, e.g. {"ring_size": "54"}')
    external_id = models.CharField(max_length=100, blank=True, help_text="The source system's line id, if any.")

    class Meta:
        ordering = ["order", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orders_item_quantity_positive"),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(line_total__gte=0), name="orders_item_amounts_non_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["sku"], name="orders_item_sku_idx"),
            models.Index(fields=["product", "order"], name="orders_item_product_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku or self.name}"


class OrderStatusHistory(ActorFields):
    """One row per order status change (and one for the order's creation, with an empty `from_status`)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_history")
    from_status = models.CharField(max_length=20, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=OrderStatus.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["order", "created_at", "id"]
        verbose_name_plural = "order status history"
        indexes = [models.Index(fields=["order", "created_at", "id"], name="orders_history_order_idx")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class PaymentRecordStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    AUTHORIZED = "authorized", "Authorized"
    CAPTURED = "captured", "Captured"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    VOIDED = "voided", "Voided"
    FAILED = "failed", "Failed"


class Payment(models.Model):
    """Money taken (or attempted) for an order, by a payment provider or in store.

    `provider` + `external_id` identify the provider's charge, unique when the id is known, so a payment
    integration can upsert on it. `order` may be empty until the payment is matched to an order.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, related_name="payments", null=True, blank=True)
    provider = models.CharField(max_length=50, help_text="stripe, square, cash, bank_transfer, ...")
    external_id = models.CharField(max_length=200, blank=True)
    amount = money_field()
    currency = currency_field()
    status = models.CharField(max_length=20, choices=PaymentRecordStatus.choices, default=PaymentRecordStatus.PENDING)
    method = models.CharField(max_length=50, blank=True, help_text="card, cash, bank_transfer, gift_card, ...")
    captured_amount = money_field()
    refunded_amount = money_field()
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When the provider processed it.")
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "external_id"],
                condition=~Q(external_id=""),
                name="orders_payment_provider_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0) & Q(captured_amount__gte=0) & Q(refunded_amount__gte=0),
                name="orders_payment_amounts_non_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["order", "created_at"], name="orders_payment_order_idx"),
            models.Index(fields=["status", "created_at"], name="orders_payment_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.amount} {self.currency}"


class ShipmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    LABEL_CREATED = "label_created", "Label created"
    IN_TRANSIT = "in_transit", "In transit"
    OUT_FOR_DELIVERY = "out_for_delivery", "Out for delivery"
    DELIVERED = "delivered", "Delivered"
    FAILED_ATTEMPT = "failed_attempt", "Delivery attempt failed"
    RETURNED = "returned", "Returned"
    EXCEPTION = "exception", "Exception"
    CANCELLED = "cancelled", "Cancelled"


class Shipment(models.Model):
    """A parcel for an order; `tracking_events` is the carrier's history: [{"at", "status", "description",
    "location"}, ...], newest last."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipments")
    carrier = models.CharField(max_length=50, help_text="ups, fedex, dhl, usps, courier, ...")
    service = models.CharField(max_length=100, blank=True, help_text="e.g. Express Saver, insured overnight")
    tracking_number = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=ShipmentStatus.choices, default=ShipmentStatus.PENDING)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    tracking_events = models.JSONField(default=list, blank=True)
    provider = models.CharField(max_length=50, blank=True, help_text="Shipping integration that manages it, if any.")
    external_id = models.CharField(max_length=200, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["order", "created_at"], name="orders_shipment_order_idx"),
            models.Index(fields=["tracking_number"], name="orders_shipment_tracking_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_number}".strip()


class StockReason(models.TextChoices):
    RESTOCK = "restock", "Restock (received)"
    SALE = "sale", "Sale"
    RETURN = "return", "Customer return"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    INVENTORY_SYNC = "inventory_sync", "Inventory sync"
    DAMAGED = "damaged", "Damaged or lost"
    TRANSFER = "transfer", "Transfer"


class StockMovement(ActorFields):
    """One change of a product's stock on hand: who (user, API key or integration), by how much and why.

    `stock_after` is the stock on hand right after this movement, so an audit can replay the sequence.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="stock_movements")
    delta = models.IntegerField()
    stock_after = models.IntegerField()
    reason = models.CharField(max_length=20, choices=StockReason.choices)
    note = models.CharField(max_length=500, blank=True)
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, related_name="stock_movements", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(stock_after__gte=0), name="orders_stock_after_non_negative"),
        ]
        indexes = [models.Index(fields=["product", "created_at"], name="orders_stock_product_idx")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.delta:+d} ({self.reason})"


class OrderNumberCounter(models.Model):
    """The last order number handed out, used only where PostgreSQL's sequence is unavailable (SQLite).

    One row (id=1). Allocation bumps it with an UPDATE first, which takes SQLite's write lock, so two writers
    can never read the same value.
    """

    last_value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return str(self.last_value)


# --- Stats rollups ----------------------------------------------------------------------------------------------------
# Derived tables behind GET /api/orders/stats/, never edited by hand: `orders.services.stats` rebuilds them from
# orders and items, one day at a time, and `orders.selectors.stats` combines them with live aggregation of the days
# they do not cover yet, so answers are always exact. Days are calendar days in the project's TIME_ZONE. No foreign
# keys: a rollup row must never block deleting a customer or product, and is recomputed when its day changes.


class OrderStatsDirtyDay(models.Model):
    """A day whose orders changed since its rollups were computed. Written in the same transaction as the change
    (`order_stats_mark_dirty`); append-only, so concurrent writers never wait on each other. Removed by the refresh
    that recomputes the day."""

    day = models.DateField()
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["day"], name="orders_stats_dirty_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} (dirty)"


class OrderStatsDay(models.Model):
    """A day whose rollup rows were computed from the orders as of `refreshed_at`. A day without this row has no
    rollups yet (never computed) and is aggregated live."""

    day = models.DateField(primary_key=True)
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return str(self.day)


class OrderStatsDailyTotal(models.Model):
    """Orders and their total amount per day, currency, status and payment status (every order, any status)."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    payment_status = models.CharField(max_length=20)
    orders = models.IntegerField()
    amount = money_field()

    class Meta:
        constraints = [
            # Covering (INCLUDE): the stats sum a range of days from the index alone.
            models.UniqueConstraint(
                fields=["day", "currency", "status", "payment_status"],
                include=["orders", "amount"],
                name="orders_stats_total_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.currency} {self.status}/{self.payment_status}: {self.orders}"


class OrderStatsChannelDailyTotal(models.Model):
    """`OrderStatsDailyTotal` per channel too, for stats filtered by channel."""

    channel = models.CharField(max_length=20)
    day = models.DateField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    payment_status = models.CharField(max_length=20)
    orders = models.IntegerField()
    amount = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "day", "currency", "status", "payment_status"],
                include=["orders", "amount"],
                name="orders_stats_channel_total_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.channel} {self.currency} {self.status}/{self.payment_status}: {self.orders}"


class OrderStatsProductDay(models.Model):
    """Revenue items (orders not cancelled or refunded, SKU not empty) per day, currency and SKU: quantity, revenue,
    and the greatest name and product id sold under the SKU that day."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    product_id = models.BigIntegerField(null=True)
    quantity = models.BigIntegerField()
    revenue = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "currency", "sku"],
                include=["quantity", "revenue"],
                name="orders_stats_product_day_unique",
            ),
        ]
        # The names of the ten best SKUs of a range, read from the index alone.
        indexes = [
            models.Index(
                fields=["currency", "sku", "day"], include=["name", "product_id"], name="orders_stats_prod_day_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.currency} {self.sku}: {self.revenue}"


class OrderStatsProductMonth(models.Model):
    """`OrderStatsProductDay` quantities and revenue summed per calendar month (`month` is its first day). Sums
    only: the stats take days back out of a month, which a greatest name could not survive."""

    month = models.DateField()
    currency = models.CharField(max_length=3)
    sku = models.CharField(max_length=64)
    quantity = models.BigIntegerField()
    revenue = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "currency", "sku"],
                include=["quantity", "revenue"],
                name="orders_stats_product_month_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.currency} {self.sku}: {self.revenue}"


class OrderStatsProductWindow(models.Model):
    """A SKU's revenue over the 13 calendar months starting at `start` (first of a month). Only an upper bound for
    ranking: any date range of up to a year fits in the window starting at its first month, so a SKU whose window
    revenue is below the tenth best exact revenue cannot be in the top ten (see `orders.selectors.stats`)."""

    start = models.DateField()
    currency = models.CharField(max_length=3)
    sku = models.CharField(max_length=64)
    revenue = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["start", "currency", "sku"], name="orders_stats_product_window_unique"),
        ]
        indexes = [
            models.Index("start", "currency", F("revenue").desc(), "sku", name="orders_stats_prod_win_rank"),
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m}+13 {self.currency} {self.sku}: {self.revenue}"


class OrderStatsCustomerWindow(models.Model):
    """A customer's revenue over calendar years `start_year` and `start_year + 1`: the upper bound that ranks top
    customers for any date range inside those two years (see `OrderStatsProductWindow`)."""

    start_year = models.IntegerField()
    currency = models.CharField(max_length=3)
    customer_id = models.BigIntegerField()
    revenue = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["start_year", "currency", "customer_id"], name="orders_stats_customer_window_unique"
            ),
        ]
        indexes = [
            models.Index(
                "start_year", "currency", F("revenue").desc(), "customer_id", name="orders_stats_cust_win_rank"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start_year}-{self.start_year + 1} {self.currency} #{self.customer_id}: {self.revenue}"

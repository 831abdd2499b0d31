"""Staff screens for the orders domain. Status and stock changes go through the same services as the API, so
they land in the same status history and stock movements, stamped with the staff user."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from jewelia.core.actors import Actor
from jewelia.core.exceptions import JeweliaError

from . import selectors, services
from .currencies import money_format
from .models import (
    Customer,
    Order,
    OrderItem,
    OrderStatus,
    OrderStatusHistory,
    Payment,
    Product,
    Shipment,
    StockMovement,
    StockReason,
)
from .transitions import DELETABLE_STATUSES, ITEMS_EDITABLE_STATUSES, allowed_next


def _error_text(exc: JeweliaError) -> str:
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    return f"{exc.message} {fields}" if fields else exc.message


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    fields = ["position", "product", "sku", "name", "quantity", "unit_price", "line_total", "attributes"]
    readonly_fields = ["line_total"]
    raw_id_fields = ["product"]

    def _editable(self, obj) -> bool:
        return obj is None or obj.status in ITEMS_EDITABLE_STATUSES

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class OrderStatusHistoryInline(ReadOnlyInline):
    model = OrderStatusHistory
    fields = ["created_at", "from_status", "to_status", "actor_type", "actor_label", "note"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    verbose_name_plural = "status history"


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    fields = ["provider", "external_id", "status", "method", "amount", "currency", "captured_amount", "refunded_amount"]
    fk_name = "order"


class ShipmentInline(admin.StackedInline):
    model = Shipment
    extra = 0
    fields = [("carrier", "service", "tracking_number"), ("status", "shipped_at", "delivered_at"), "tracking_events"]


class OrderCurrencyFilter(admin.SimpleListFilter):
    """The currencies orders are in, found by index probes: the default filter's DISTINCT read every order."""

    title = "currency"
    parameter_name = "currency__exact"

    def lookups(self, request, model_admin):
        return [(code, code) for code in selectors.order_currencies_in_use()]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class OrderAdminForm(forms.ModelForm):
    transition_to = forms.ChoiceField(
        required=False, label="Change status to", help_text="Only the moves allowed from the current status."
    )
    transition_note = forms.CharField(required=False, label="Note for the status history", max_length=2000)

    class Meta:
        model = Order
        fields = [
            "external_reference",
            "customer",
            "channel",
            "placed_at",
            "due_date",
            "payment_status",
            "fulfillment_status",
            "currency",
            "discount_total",
            "tax_total",
            "shipping_total",
            "notes",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.status if self.instance.pk else None
        labels = dict(OrderStatus.choices)
        next_statuses = allowed_next(current) if current else ()
        self.fields["transition_to"].choices = [("", "(keep)")] + [(s, labels[s]) for s in next_statuses]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    list_display = [
        "number",
        "customer",
        "channel",
        "status",
        "payment_status",
        "fulfillment_status",
        "total_display",
        "placed_at",
        "due_date",
    ]
    # Placed-at as a list filter (today, past 7 days, this month, this year), not a date hierarchy: the hierarchy's
    # DISTINCT over every order's year took 0.2 s at a million orders, 0.45 s with a search.
    list_filter = [
        "status",
        "payment_status",
        "fulfillment_status",
        "channel",
        OrderCurrencyFilter,
        ("placed_at", admin.DateFieldListFilter),
    ]
    # Searched like the API's `q` (number, external reference, customer name and email, item SKU and name), through
    # the trigram indexes (`get_search_results`); the fields here only make the admin show its search box.
    search_fields = ["number"]
    show_full_result_count = False  # a second COUNT over every order on each filtered page
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    readonly_fields = [
        "number",
        "status",
        "subtotal",
        "total",
        "source_updated_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": [("number", "external_reference"), "customer", "channel", ("placed_at", "due_date")]}),
        (
            "Status",
            {"fields": [("status", "transition_to"), "transition_note", "payment_status", "fulfillment_status"]},
        ),
        ("Money", {"fields": ["currency", ("subtotal", "discount_total", "tax_total", "shipping_total", "total")]}),
        ("Notes", {"fields": ["notes", ("source_updated_at", "created_at", "updated_at")]}),
    ]
    inlines = [OrderItemInline, OrderStatusHistoryInline, PaymentInline, ShipmentInline]
    actions = ["confirm_orders", "cancel_orders"]

    def get_search_results(self, request, queryset, search_term):
        return selectors.order_search(queryset=queryset, term=search_term), False

    @admin.display(description="Total", ordering="total")
    def total_display(self, order: Order) -> str:
        return f"{money_format(order.total, order.currency)} {order.currency}"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.number = services.order_numbers_allocate(count=1)[0]
        # The admin saves the order row itself, so it marks the stats days like the services do: the day the order
        # was on before this edit and the day it is on now (Django runs the whole save in one transaction).
        previous = (
            Order.objects.filter(pk=obj.pk).values_list("placed_at", "payment_status").first() if change else None
        )
        previous_placed_at, form.paid_before = previous or (None, None)
        super().save_model(request, obj, form, change)
        services.order_stats_mark_dirty(days=[previous_placed_at, obj.placed_at])
        if not change:
            OrderStatusHistory.objects.create(
                order=obj,
                to_status=obj.status,
                note="Order created in the admin.",
                **Actor.for_user(request.user).as_fields(),
            )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        order = form.instance
        try:
            with transaction.atomic():
                services.order_totals_recalculate(order=order)
        except JeweliaError as exc:
            self.message_user(request, f"Totals not recomputed: {_error_text(exc)}", messages.WARNING)
        # With its items and totals saved, the order is pushed like one the API created or updated.
        services.order_saved_directly(order=order, created=not change, paid_before=form.paid_before)
        target = form.cleaned_data.get("transition_to")
        if target:
            try:
                services.order_transition(
                    order=order,
                    to_status=target,
                    actor=Actor.for_user(request.user),
                    note=form.cleaned_data.get("transition_note", ""),
                )
            except JeweliaError as exc:  # someone else moved it since the form was loaded
                self.message_user(request, _error_text(exc), messages.ERROR)

    def _transition_many(self, request, queryset, to_status: str) -> None:
        moved, refused = 0, []
        for order in queryset:
            try:
                services.order_transition(order=order, to_status=to_status, actor=Actor.for_user(request.user))
                moved += 1
            except JeweliaError as exc:
                refused.append(f"{order.number}: {exc.message}")
        if moved:
            self.message_user(request, f"{moved} order(s) moved to {to_status}.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.WARNING)

    @admin.action(description="Confirm selected orders", permissions=["change"])
    def confirm_orders(self, request, queryset):
        self._transition_many(request, queryset, OrderStatus.CONFIRMED)

    @admin.action(description="Cancel selected orders", permissions=["change"])
    def cancel_orders(self, request, queryset):
        self._transition_many(request, queryset, OrderStatus.CANCELLED)

    def delete_model(self, request, obj):
        services.order_delete(order=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request, queryset):
        """The bulk "delete selected" action goes through the same service (its rules, its stats marks)."""
        refused = []
        for order in queryset:
            try:
                services.order_delete(order=order, actor=Actor.for_user(request.user))
            except JeweliaError as exc:
                refused.append(f"{order.number}: {exc.message}")
        for text in refused:
            self.message_user(request, text, messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status not in DELETABLE_STATUSES:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "phone", "marketing_consent", "created_at"]
    list_filter = ["marketing_consent"]
    search_fields = ["name", "email", "phone"]
    readonly_fields = ["marketing_consent_at", "source_updated_at", "created_at", "updated_at"]
    fields = [
        "name",
        ("email", "phone"),
        "addresses",
        ("marketing_consent", "marketing_consent_source", "marketing_consent_at"),
        "tags",
        "notes",
        ("source_updated_at", "created_at", "updated_at"),
    ]

    def save_model(self, request, obj, form, change):
        explicit = {name: True for name in form.changed_data if name == "marketing_consent_source"}
        services.customer_consent_stamp(
            customer=obj,
            data=explicit,
            actor=Actor.for_user(request.user),
            changed="marketing_consent" in form.changed_data,
        )
        super().save_model(request, obj, form, change)
        services.customer_saved_directly(customer=obj, created=not change)


class StockMovementInline(ReadOnlyInline):
    model = StockMovement
    fields = ["created_at", "delta", "stock_after", "reason", "note", "order", "actor_type", "actor_label"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    max_num = 0


class ProductAdminForm(forms.ModelForm):
    stock_delta = forms.IntegerField(
        required=False, label="Adjust stock by", help_text="Units to add (negative to remove); recorded as a movement."
    )
    stock_reason = forms.ChoiceField(choices=StockReason.choices, required=False, initial=StockReason.ADJUSTMENT)
    stock_note = forms.CharField(required=False, max_length=500)

    class Meta:
        model = Product
        fields = ["sku", "active", "name", "category", "metal", "gemstone", "description", "price", "currency"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["sku", "name", "category", "metal", "gemstone", "price_display", "stock_on_hand", "active"]
    list_filter = ["category", "active", "currency", "metal"]
    search_fields = ["sku", "name"]
    readonly_fields = ["stock_on_hand", "source_updated_at", "created_at", "updated_at"]
    fields = [
        ("sku", "active"),
        "name",
        ("category", "metal", "gemstone"),
        "description",
        ("price", "currency"),
        ("stock_on_hand", "stock_delta", "stock_reason", "stock_note"),
        ("source_updated_at", "created_at", "updated_at"),
    ]
    inlines = [StockMovementInline]

    @admin.display(description="Price", ordering="price")
    def price_display(self, product: Product) -> str:
        return f"{money_format(product.price, product.currency)} {product.currency}"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        delta = form.cleaned_data.get("stock_delta")
        if delta:
            try:
                services.stock_adjust(
                    product=obj,
                    delta=delta,
                    reason=form.cleaned_data.get("stock_reason") or StockReason.ADJUSTMENT,
                    actor=Actor.for_user(request.user),
                    note=form.cleaned_data.get("stock_note", ""),
                )
            except JeweliaError as exc:
                self.message_user(request, f"Stock not changed: {_error_text(exc)}", messages.ERROR)


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "external_id",
        "order",
        "amount_display",
        "status",
        "method",
        "processed_at",
        "created_at",
    ]
    list_filter = ["status", "provider", "method", "currency"]
    search_fields = ["external_id", "order__number", "customer__email"]
    list_select_related = ["order"]
    ordering = ["-id"]  # newest first through the primary key: sorting every payment by created_at has no index
    show_full_result_count = False
    raw_id_fields = ["order", "customer"]
    readonly_fields = ["source_updated_at", "created_at", "updated_at"]

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, payment: Payment) -> str:
        return f"{money_format(payment.amount, payment.currency)} {payment.currency}"


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["tracking_number", "carrier", "service", "order", "status", "shipped_at", "delivered_at"]
    list_filter = ["status", "carrier"]
    search_fields = ["tracking_number", "order__number"]
    list_select_related = ["order"]
    raw_id_fields = ["order"]
    readonly_fields = ["source_updated_at", "created_at", "updated_at"]

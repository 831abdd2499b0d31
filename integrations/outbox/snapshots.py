"""Canonical records of local objects for pushing: provider-independent, built from the CRM's rows when an outbox
entry is sent (so a retry always sends the current state).

References to related objects carry *this integration's* external ids, read from its identity map (the same
namespaces the sync writers use: the provider's first resource of each record kind), never CRM ids: a customer
the integration has not seen yet has no external id, and the provider decides what to do (QuickBooks looks it up
by name or creates it).
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q

from integrations.models import IdentityMapping, Integration
from integrations.providers.base import Provider, RecordKind
from integrations.records import CustomerRecord, OrderItemRecord, OrderRecord, Record
from integrations.sync.writers.base import identity_namespace
from orders.models import Customer, Order, Product

LOCAL_MODELS: dict[RecordKind, type] = {RecordKind.ORDER: Order, RecordKind.CUSTOMER: Customer}


def external_ids(*, integration: Integration, resource: str, model: type, object_ids: list[int]) -> dict[int, str]:
    """Local id -> this integration's external id under `resource` (the most recently written, if several)."""
    if not object_ids:
        return {}
    rows = (
        IdentityMapping.objects.filter(
            integration=integration,
            resource=resource,
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=object_ids,
        )
        .order_by("updated_at", "id")
        .values_list("object_id", "external_id")
    )
    return dict(rows)


def customer_record(customer: Customer, *, external_id: str = "") -> CustomerRecord:
    return CustomerRecord(
        external_id=external_id,
        source_updated_at=customer.updated_at,
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        addresses=list(customer.addresses or []),
        tags=list(customer.tags or []),
        marketing_consent=customer.marketing_consent,
        notes=customer.notes,
    )


def order_record(
    order: Order,
    *,
    external_id: str = "",
    customer_external_id: str = "",
    product_external_ids: dict[int, str] | None = None,
) -> OrderRecord:
    """An order as the canonical record: `external_number` is the CRM order number (what a provider shows and
    finds it by), each line's `external_id` the integration's id of its product (empty when unknown)."""
    product_external_ids = product_external_ids or {}
    items = [
        OrderItemRecord(
            sku=item.sku,
            name=item.name,
            quantity=item.quantity,
            unit_price=item.unit_price,
            external_id=product_external_ids.get(item.product_id, "") if item.product_id else "",
            attributes=dict(item.attributes or {}),
        )
        for item in order.items.all()
    ]
    customer = order.customer
    return OrderRecord(
        external_id=external_id,
        source_updated_at=order.updated_at,
        external_number=order.number,
        currency=order.currency,
        placed_at=order.placed_at,
        channel=order.channel,
        status=order.status,
        payment_status=order.payment_status,
        fulfillment_status=order.fulfillment_status,
        items=items,
        subtotal=order.subtotal,
        discount_total=order.discount_total,
        tax_total=order.tax_total,
        shipping_total=order.shipping_total,
        total=order.total,
        customer=customer_record(customer, external_id=customer_external_id) if customer is not None else None,
        notes=order.notes,
    )


def snapshot_build(*, integration: Integration, provider: Provider, obj: Any, external_id: str = "") -> Record:
    """The record to push for `obj` (an Order or a Customer), with related external ids from the identity map:
    two small queries for an order (its customer's and its products' ids), none for a customer."""
    if isinstance(obj, Customer):
        return customer_record(obj, external_id=external_id)
    if isinstance(obj, Order):
        customer_ns = identity_namespace(provider, RecordKind.CUSTOMER)
        product_ns = identity_namespace(provider, RecordKind.PRODUCT)
        items = list(obj.items.all())
        product_ids = sorted({item.product_id for item in items if item.product_id})
        product_type = ContentType.objects.get_for_model(Product)
        customer_type = ContentType.objects.get_for_model(Customer)
        wanted = Q(resource=product_ns, content_type=product_type, object_id__in=product_ids)
        if obj.customer_id:
            wanted |= Q(resource=customer_ns, content_type=customer_type, object_id=obj.customer_id)
        customer_id, products = "", {}
        if product_ids or obj.customer_id:
            rows = (
                IdentityMapping.objects.filter(integration=integration)
                .filter(wanted)
                .order_by("updated_at", "id")
                .values_list("resource", "object_id", "external_id")
            )
            for resource, object_id, ext in rows:
                if resource == customer_ns and object_id == obj.customer_id:
                    customer_id = ext
                if resource == product_ns:
                    products[object_id] = ext
        return order_record(
            obj, external_id=external_id, customer_external_id=customer_id, product_external_ids=products
        )
    raise TypeError(f"cannot push a {type(obj).__name__}")

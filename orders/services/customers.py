"""Customer writes: case-insensitive unique email, and marketing consent stamped with its source and time."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed
from orders.models import Customer

from .common import reject_unknown

CUSTOMER_FIELDS = frozenset(
    {
        "name",
        "email",
        "phone",
        "addresses",
        "marketing_consent",
        "marketing_consent_source",
        "marketing_consent_at",
        "tags",
        "notes",
        "source_updated_at",
    }
)
_DUPLICATE_EMAIL = {"fields": {"email": ["A customer with this email already exists."]}}


def _check_email_free(email: str, *, exclude_pk: int | None = None) -> None:
    if not email:
        return
    others = Customer.objects.filter(email__iexact=email)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if others.exists():
        raise ValidationFailed(details=_DUPLICATE_EMAIL)


def customer_consent_stamp(*, customer: Customer, data: dict, actor: Actor, changed: bool) -> None:
    """Record where and when consent was given or withdrawn, unless `data` says so explicitly (not saved here)."""
    if not changed:
        return
    if "marketing_consent_at" not in data:
        customer.marketing_consent_at = timezone.now()
    if "marketing_consent_source" not in data:
        customer.marketing_consent_source = f"{actor.kind}: {actor.label}"[:100] if actor.label else actor.kind


def _save(customer: Customer, *, event: str) -> Customer:
    from integrations.outbox import outbox_enqueue_for  # integrations builds on orders: import at call time

    try:
        with transaction.atomic():
            customer.save()
            outbox_enqueue_for(event=event, obj=customer)
    except IntegrityError as exc:  # a concurrent writer took the email between the check and the insert
        raise ValidationFailed(details=_DUPLICATE_EMAIL) from exc
    return customer


def customer_saved_directly(*, customer: Customer, created: bool) -> None:
    """Queue customer.created / customer.updated for a customer a form saved itself (the admin), as
    `customer_create` and `customer_update` do. Call it in the save's transaction."""
    from integrations.outbox import outbox_enqueue_for  # integrations builds on orders: import at call time

    outbox_enqueue_for(event="customer.created" if created else "customer.updated", obj=customer)


def customer_create(*, actor: Actor, data: dict) -> Customer:
    reject_unknown(data, CUSTOMER_FIELDS)
    data = {**data, "email": (data.get("email") or "").strip()}
    _check_email_free(data["email"])
    customer = Customer(**data)
    customer_consent_stamp(customer=customer, data=data, actor=actor, changed=bool(data.get("marketing_consent")))
    return _save(customer, event="customer.created")


def customer_update(*, customer: Customer, actor: Actor, data: dict) -> Customer:
    reject_unknown(data, CUSTOMER_FIELDS)
    if "email" in data:
        data = {**data, "email": (data["email"] or "").strip()}
        _check_email_free(data["email"], exclude_pk=customer.pk)
    consent_changed = "marketing_consent" in data and data["marketing_consent"] != customer.marketing_consent
    for name, value in data.items():
        setattr(customer, name, value)
    customer_consent_stamp(customer=customer, data=data, actor=actor, changed=consent_changed)
    return _save(customer, event="customer.updated")


def customer_delete(*, customer: Customer, actor: Actor) -> None:
    """Delete a customer who never ordered; customers with orders are kept for the order history."""
    if customer.orders.exists():
        raise Conflict(
            "This customer has orders and cannot be deleted.",
            code="has_orders",
            details={"orders": customer.orders.count()},
        )
    customer.delete()

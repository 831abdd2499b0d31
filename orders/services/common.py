"""Small helpers the orders services share to raise errors in the API's field-error shape."""

from collections.abc import Iterable

from jewelia.core.exceptions import ValidationFailed
from orders.currencies import fits_minor_units, is_valid_currency, minor_units


def invalid(field: str, message: str, **kwargs) -> ValidationFailed:
    """A ValidationFailed whose details read like a serializer's: {"fields": {field: [message]}}."""
    return ValidationFailed(details={"fields": {field: [message]}}, **kwargs)


def reject_unknown(data: Iterable[str], allowed: frozenset[str], message: str = "Unknown field.") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed(details={"fields": {name: [message] for name in unknown}})


def check_currency(currency: str, field: str = "currency") -> None:
    if not is_valid_currency(currency):
        raise invalid(field, f"'{currency}' is not an ISO 4217 currency code.")


def money_error(amount, currency: str) -> str | None:
    """Why `amount` is not a valid amount of `currency`, or None."""
    if amount < 0:
        return "Must not be negative."
    if not fits_minor_units(amount, currency):
        return f"{currency} amounts have at most {minor_units(currency)} decimals."
    return None

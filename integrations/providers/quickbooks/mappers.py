"""QuickBooks objects <-> canonical records (`integrations.records`). Facts: `shared/providers/quickbooks.md` §4.

Money is a JSON decimal number in the company's home currency (or the transaction's `CurrencyRef`). The shared
HTTP layer parses JSON numbers as floats; `money` goes through `str`, which gives back exactly the decimal text
for the two-decimal amounts QuickBooks sends, then sets the currency's scale (1250.0 USD -> 1250.00); an amount
with more decimals than its currency has is refused rather than rounded. Items carry no currency: they are
priced in the company's home currency, config `home_currency` (default USD).
`MetaData.LastUpdatedTime` is every object's source time.

Pull:

- Customer -> `CustomerRecord` (DisplayName, primary email and phone, billing then shipping address, notes).
- Item -> `ProductRecord` (Sku, else `qbo-item-<Id>`; Name; UnitPrice; Active). Category items (folders) and
  Group items (bundles of other items) are not sellable SKUs and give no record.
- Payment -> one `PaymentRecord` per invoice the payment is applied to (`Line[].LinkedTxn` of type Invoice),
  external id `<payment Id>:<invoice Id>`, amount = that line's amount, status `captured`; plus one record
  `<payment Id>` for any amount not applied to an invoice (a customer credit: no order). See
  `invoice_reference` for how the order is found.
- Invoice and Purchase: no canonical record kind exists yet (see `invoice_check`, `purchase_check`).

Push (`customer_body`, `item_body`, `sales_document_body`): minimal bodies of §4, sparse on update.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.errors import BadRecordError
from integrations.records import CustomerRecord, OrderItemRecord, OrderRecord, PaymentRecord, ProductRecord
from orders.currencies import fits_minor_units, is_valid_currency, quantum

PROVIDER = "quickbooks"
DEFAULT_CURRENCY = "USD"
INVOICES_KEY = "_invoices"  # set on raw payments by the provider: {invoice Id: {"Id", "DocNumber"}} of linked ones
CAPTURED = "captured"
MAX_NAME = 200
MAX_SKU = 64
MAX_ITEM_NAME = 100  # QuickBooks Item.Name
MAX_DOC_NUMBER = 21  # QuickBooks DocNumber
CENT = Decimal("0.01")
SELLABLE_ITEM_TYPES = ("Inventory", "NonInventory", "Service")

# First segment of an item's FullyQualifiedName ("Rings:18k Solitaire Ring") or its name, -> ProductCategory.
CATEGORIES = {
    "ring": "ring",
    "engagement ring": "engagement_ring",
    "wedding band": "wedding_band",
    "necklace": "necklace",
    "pendant": "pendant",
    "bracelet": "bracelet",
    "earring": "earrings",
    "earrings": "earrings",
    "brooch": "brooch",
    "cufflink": "cufflinks",
    "cufflinks": "cufflinks",
    "watch": "watch",
    "loose stone": "loose_stone",
    "gift card": "gift_card",
    "repair": "repair_service",
    "repairs": "repair_service",
}


# --- small readers ----------------------------------------------------------------------------------------------------
def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def ref_value(value: Any) -> str:
    """`{"value": "58", "name": "..."}` -> "58"."""
    return text(value.get("value")) if isinstance(value, Mapping) else ""


def ref_name(value: Any) -> str:
    return text(value.get("name")) if isinstance(value, Mapping) else ""


def money(value: Any, what: str, code: str) -> Decimal:
    """A JSON decimal number (or its text) -> Decimal at the scale of currency `code`; refuses booleans, garbage,
    non-finite values and more decimals than the currency has."""
    if isinstance(value, bool) or value is None:
        raise BadRecordError(f"{what} is missing or not a number: {value!r}")
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise BadRecordError(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite():
        raise BadRecordError(f"{what} is not a finite number: {value!r}")
    if not fits_minor_units(amount, code):
        raise BadRecordError(f"{what} {value!r} has more decimals than {code} allows")
    return amount.quantize(quantum(code))


def updated_at(raw: Mapping[str, Any]) -> datetime:
    """`MetaData.LastUpdatedTime` as an aware datetime; a record without a readable one is refused (it is what
    incremental sync and the never-overwrite-newer rule stand on)."""
    meta = raw.get("MetaData")
    value = meta.get("LastUpdatedTime") if isinstance(meta, Mapping) else None
    if not isinstance(value, str):
        raise BadRecordError("MetaData.LastUpdatedTime is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecordError(f"MetaData.LastUpdatedTime is not a time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def object_id(raw: Any) -> str:
    """The object's `Id` (QuickBooks ids are numeric strings)."""
    if not isinstance(raw, Mapping):
        return ""
    value = raw.get("Id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _require_id(raw: Mapping[str, Any]) -> str:
    identifier = object_id(raw)
    if not identifier.isdigit():
        raise BadRecordError(f"Id is missing or not numeric: {raw.get('Id')!r}")
    return identifier


def currency(raw: Mapping[str, Any], home_currency: str) -> str:
    code = (ref_value(raw.get("CurrencyRef")) or home_currency).upper()
    if not is_valid_currency(code):
        raise BadRecordError(f"unknown currency {code!r}")
    return code


# --- pull: customers ------------------------------------------------------------------------------------------------
def address(raw: Any, kind: str) -> dict[str, str] | None:
    if not isinstance(raw, Mapping):
        return None
    result = {
        "kind": kind,
        "line1": text(raw.get("Line1")),
        "line2": text(raw.get("Line2")),
        "city": text(raw.get("City")),
        "region": text(raw.get("CountrySubDivisionCode")),
        "postal_code": text(raw.get("PostalCode")),
        "country": text(raw.get("Country")),
    }
    return result if any(v for k, v in result.items() if k != "kind") else None


def customer_record(raw: Mapping[str, Any]) -> CustomerRecord:
    customer_id = _require_id(raw)
    email_field = raw.get("PrimaryEmailAddr")
    email = text(email_field.get("Address")) if isinstance(email_field, Mapping) else ""
    phone_field = raw.get("PrimaryPhone") or raw.get("Mobile")
    phone = text(phone_field.get("FreeFormNumber")) if isinstance(phone_field, Mapping) else ""
    person = " ".join(p for p in (text(raw.get("GivenName")), text(raw.get("FamilyName"))) if p)
    name = text(raw.get("DisplayName")) or person or text(raw.get("CompanyName")) or email
    addresses = [a for a in (address(raw.get("BillAddr"), "billing"), address(raw.get("ShipAddr"), "shipping")) if a]
    return CustomerRecord(
        external_id=customer_id,
        source_updated_at=updated_at(raw),
        name=(name or f"QuickBooks customer {customer_id}")[:MAX_NAME],
        email=email,
        phone=phone,
        addresses=addresses,
        notes=text(raw.get("Notes")),
    )


# --- pull: items ------------------------------------------------------------------------------------------------------
_LONGEST_FIRST = sorted(CATEGORIES, key=len, reverse=True)


def item_category(raw: Mapping[str, Any]) -> str:
    if raw.get("Type") == "Service":
        name = (text(raw.get("FullyQualifiedName")) or text(raw.get("Name"))).lower()
        return "repair_service" if "repair" in name or "resiz" in name else "other"
    path = text(raw.get("FullyQualifiedName")) or text(raw.get("Name"))
    head = path.split(":", 1)[0].strip().lower() if ":" in path else ""
    for candidate in (head, head.removesuffix("s")):
        if candidate in CATEGORIES:
            return CATEGORIES[candidate]
    words = path.lower()
    for word in _LONGEST_FIRST:  # "earring" before "ring", "engagement ring" before "ring"
        if word in words:
            return CATEGORIES[word]
    return "other"


def product_records(raw: Mapping[str, Any], *, home_currency: str) -> list[ProductRecord]:
    item_id = _require_id(raw)
    item_type = raw.get("Type")
    source_time = updated_at(raw)
    if item_type not in SELLABLE_ITEM_TYPES:
        if item_type in ("Category", "Group"):
            return []
        raise BadRecordError(f"unknown item Type {item_type!r}")
    sku = text(raw.get("Sku")) or f"qbo-item-{item_id}"
    if len(sku) > MAX_SKU:
        raise BadRecordError(f"Sku longer than {MAX_SKU} characters: {sku[:80]!r}")
    price = raw.get("UnitPrice")
    code = currency({}, home_currency)
    return [
        ProductRecord(
            external_id=item_id,
            source_updated_at=source_time,
            sku=sku,
            name=(text(raw.get("Name")) or sku)[:MAX_NAME],
            price=money(price if price is not None else 0, "UnitPrice", code),
            currency=code,
            category=item_category(raw),
            active=raw.get("Active") is not False,
        )
    ]


# --- pull: payments -------------------------------------------------------------------------------------------------
def invoice_reference(invoice_id: str, invoice: Mapping[str, Any] | None) -> str:
    """The `order_reference` of a payment applied to this invoice.

    Invoices the CRM pushes carry the CRM order number as `DocNumber` (J-000123), and the outbox records the
    invoice's `Id` for its order in the identity map. The payment writer resolves a reference through the
    identity map first, then as a CRM order number. QuickBooks Ids are numeric strings, and so are the
    `DocNumber`s QuickBooks assigns itself (1001, 1002, ...): a numeric DocNumber sent as a reference could match
    some *other* invoice's Id in the identity map. So:

    - a non-numeric DocNumber (a CRM number, pushed or typed in QuickBooks) is the reference: it resolves as the
      CRM order number;
    - otherwise (numeric or no DocNumber, or the invoice could not be read) the invoice's Id is: it resolves
      only through the identity map, i.e. only for invoices the CRM pushed itself.

    Either way a reference never links a payment to the wrong order; an invoice made in QuickBooks for no CRM
    order leaves the payment unlinked (the writer keeps any link a payment already has).
    """
    doc_number = text((invoice or {}).get("DocNumber"))
    if doc_number and not doc_number.isdigit():
        return doc_number
    return invoice_id


def payment_records(raw: Mapping[str, Any], *, home_currency: str) -> list[PaymentRecord]:
    payment_id = _require_id(raw)
    source_time = updated_at(raw)
    code = currency(raw, home_currency)
    total = money(raw.get("TotalAmt"), "TotalAmt", code)
    found = raw.get(INVOICES_KEY)
    invoices: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    method = ref_name(raw.get("PaymentMethodRef"))[:50]
    customer_id = ref_value(raw.get("CustomerRef"))

    def record(external_id: str, amount: Decimal, reference: str) -> PaymentRecord:
        return PaymentRecord(
            external_id=external_id,
            source_updated_at=source_time,
            provider=PROVIDER,
            amount=amount,
            currency=code,
            status=CAPTURED,
            method=method,
            captured_amount=amount,
            order_reference=reference,
            customer_external_id=customer_id,
        )

    applied: dict[str, Decimal] = {}
    for line in raw.get("Line") or []:
        if not isinstance(line, Mapping):
            raise BadRecordError("a payment line is not an object")
        for linked in line.get("LinkedTxn") or []:
            if isinstance(linked, Mapping) and linked.get("TxnType") == "Invoice" and text(linked.get("TxnId")):
                invoice_id = text(linked["TxnId"])
                amount = money(line.get("Amount"), "line Amount", code)
                applied[invoice_id] = applied.get(invoice_id, Decimal("0")) + amount
    records = [
        record(f"{payment_id}:{invoice_id}", amount, invoice_reference(invoice_id, invoices.get(invoice_id)))
        for invoice_id, amount in applied.items()
    ]
    unapplied = total - sum(applied.values(), Decimal("0"))
    if unapplied > 0 or not records:
        records.append(record(payment_id, max(unapplied, Decimal("0")) if records else total, ""))
    return records


def linked_invoice_ids(raw: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for line in raw.get("Line") or []:
        for linked in (line.get("LinkedTxn") or []) if isinstance(line, Mapping) else []:
            if isinstance(linked, Mapping) and linked.get("TxnType") == "Invoice":
                txn_id = text(linked.get("TxnId"))
                if txn_id.isdigit() and txn_id not in ids:
                    ids.append(txn_id)
    return ids


# --- pull: invoices and purchases ----------------------------------------------------------------------------------
def invoice_check(raw: Mapping[str, Any], *, home_currency: str) -> list:
    """Invoices are read (and checked) but write nothing, on purpose: there is no canonical invoice record, and
    the alternatives are wrong. An `OrderRecord` made from an invoice would overwrite the CRM's own order (most
    invoices *are* CRM orders pushed out) or invent orders for invoices keyed in QuickBooks; a `PaymentRecord`
    made from `TotalAmt - Balance` would count the money of the Payment objects a second time. The payment state
    of an order arrives through `payments` (one record per payment and invoice). The resource is declared so the
    capability, cursor and webhooks exist for when the orders domain gains an invoice record."""
    _require_id(raw)
    updated_at(raw)
    money(raw.get("TotalAmt"), "TotalAmt", currency(raw, home_currency))
    if not ref_value(raw.get("CustomerRef")):
        raise BadRecordError("an invoice without CustomerRef")
    return []


def purchase_check(raw: Mapping[str, Any], *, home_currency: str) -> list:
    """Purchases (expenses: metal, stones, rent) are read and checked but write nothing: the CRM has no expense
    model yet (the lead decides whether it gets one). Declared for the capability, the cursor and webhooks."""
    _require_id(raw)
    updated_at(raw)
    money(raw.get("TotalAmt"), "TotalAmt", currency(raw, home_currency))
    return []


# --- push -------------------------------------------------------------------------------------------------------------
def as_json_number(amount: Decimal) -> float:
    """A two-decimal amount for a JSON body: float's shortest repr of a value quantized to cents is exactly its
    decimal text (1250.1 -> "1250.1"), which is what QuickBooks parses."""
    return float(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def _address_body(address: Mapping[str, Any]) -> dict[str, str]:
    fields = {
        "Line1": address.get("line1"),
        "Line2": address.get("line2"),
        "City": address.get("city"),
        "CountrySubDivisionCode": address.get("region"),
        "PostalCode": address.get("postal_code"),
        "Country": address.get("country"),
    }
    return {k: str(v) for k, v in fields.items() if v}


def customer_body(record: CustomerRecord) -> dict[str, Any]:
    """A Customer body. `DisplayName` (unique in QuickBooks across customers, vendors and employees) is the
    name, else the email."""
    display = (record.name or record.email).strip()
    if not display:
        raise BadRecordError("a customer needs a name or an email to become a QuickBooks DisplayName")
    body: dict[str, Any] = {"DisplayName": display[:500]}
    if record.email:
        body["PrimaryEmailAddr"] = {"Address": record.email}
    if record.phone:
        body["PrimaryPhone"] = {"FreeFormNumber": record.phone}
    by_kind = {a.get("kind"): a for a in record.addresses if isinstance(a, Mapping)}
    billing = by_kind.get("billing") or (record.addresses[0] if record.addresses else None)
    if billing:
        body["BillAddr"] = _address_body(billing)
    if by_kind.get("shipping"):
        body["ShipAddr"] = _address_body(by_kind["shipping"])
    if record.notes:
        body["Notes"] = record.notes[:2000]
    return body


def item_body(record: ProductRecord, *, item_type: str, income_account_id: str) -> dict[str, Any]:
    """An Item body: Name, Sku, UnitPrice, Active, with the income account the company books sales to (required by
    QuickBooks for NonInventory and Service items; config `income_account_id`). Inventory items also need asset
    and expense accounts and opening quantities, so the CRM pushes NonInventory (or Service) items only."""
    if not income_account_id:
        raise BadRecordError("set the integration's income_account_id (the QuickBooks income account for items)")
    name = (record.name or record.sku).strip()[:MAX_ITEM_NAME]
    return {
        "Name": name,
        "Sku": record.sku,
        "Type": item_type,
        "UnitPrice": as_json_number(record.price),
        "Active": bool(record.active),
        "IncomeAccountRef": {"value": income_account_id},
    }


def line_amount(item: OrderItemRecord) -> Decimal:
    return (item.unit_price * item.quantity).quantize(CENT, rounding=ROUND_HALF_UP)


def sales_document_body(
    record: OrderRecord,
    *,
    customer_ref: str,
    item_refs: list[str],
    shipping_item_ref: str,
    home_currency: str,
) -> dict[str, Any]:
    """An Invoice or SalesReceipt body for an order.

    - `DocNumber` is the CRM order number (`external_number`), which is how payments find their order and how a
      repeated push finds the invoice it already made; `TxnDate` the order's date.
    - One `SalesItemLineDetail` line per order item, `ItemRef` from `item_refs` (same order as `record.items`),
      `Qty`, `UnitPrice`, `Amount = Qty x UnitPrice` (QuickBooks refuses a line where they disagree).
    - A shipping charge is a line on the item `shipping_item_ref`; a discount a `DiscountLineDetail` line.
    - Tax is not sent: QuickBooks computes it from the company's own tax setup.
    - `CurrencyRef` only for an order in another currency than the company's (needs multicurrency enabled).
    """
    if not record.items:
        raise BadRecordError("an order without items cannot become a QuickBooks sales document")
    number = (record.external_number or "").strip()
    if len(number) > MAX_DOC_NUMBER:
        raise BadRecordError(f"order number {number!r} is longer than QuickBooks' {MAX_DOC_NUMBER}-character DocNumber")
    lines: list[dict[str, Any]] = []
    for item, item_ref in zip(record.items, item_refs, strict=True):
        if item.quantity <= 0:
            raise BadRecordError(f"line {item.sku or item.name!r} has quantity {item.quantity}")
        lines.append(
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": as_json_number(line_amount(item)),
                "Description": (item.name or item.sku)[:4000],
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_ref},
                    "Qty": item.quantity,
                    "UnitPrice": as_json_number(item.unit_price),
                },
            }
        )
    if record.shipping_total > 0:
        if not shipping_item_ref:
            raise BadRecordError("the order has shipping: set shipping_item_id (or default_item_id) for its line")
        lines.append(
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": as_json_number(record.shipping_total),
                "Description": "Shipping",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": shipping_item_ref},
                    "Qty": 1,
                    "UnitPrice": as_json_number(record.shipping_total),
                },
            }
        )
    if record.discount_total > 0:
        lines.append(
            {
                "DetailType": "DiscountLineDetail",
                "Amount": as_json_number(record.discount_total),
                "DiscountLineDetail": {"PercentBased": False},
            }
        )
    body: dict[str, Any] = {"Line": lines, "TxnDate": record.placed_at.date().isoformat()}
    if customer_ref:
        body["CustomerRef"] = {"value": customer_ref}
    if number:
        body["DocNumber"] = number
    if record.currency and record.currency.upper() != home_currency.upper():
        body["CurrencyRef"] = {"value": record.currency.upper()}
    if record.notes:
        body["PrivateNote"] = record.notes[:4000]
    return body

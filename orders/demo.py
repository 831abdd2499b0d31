"""Demo data for a newcomer's machine (`manage.py seed_demo`): customers, jewelry products and a few hundred
orders across statuses and channels, with items, payments, shipments and status history.

Deterministic (fixed random seed) and idempotent: customers are keyed by email, products by SKU and orders by
their `DEMO-nnnn` external reference, so running it again adds nothing. Orders are made through the services,
so their totals, numbers and status history are exactly what real use produces.
"""

import random
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from jewelia.core.actors import Actor

from .models import Channel, Customer, Order, OrderStatus, Payment, PaymentRecordStatus, Product, Shipment, StockReason
from .services import ItemInput, order_create, order_transition, order_update, stock_adjust

SEED = 20_240_601
ORDERS = 300
ACTOR = Actor.system("demo data")

FIRST = ["Amelia", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hannah", "Isaac", "Julia", "Karim", "Lea"]
LAST = ["Albrecht", "Brooks", "Costa", "Dubois", "Eriksen", "Fontaine", "Garcia", "Hughes", "Ivanova", "Jensen"]

PRODUCTS = [
    # sku, name, category, metal, gemstone, price EUR
    ("RG-SOL-050", "Solitaire engagement ring 0.5ct", "engagement_ring", "platinum", "diamond 0.5ct", "3450.00"),
    ("RG-SOL-100", "Solitaire engagement ring 1ct", "engagement_ring", "platinum", "diamond 1ct", "8900.00"),
    ("RG-ETR-018", "Eternity ring", "ring", "18k white gold", "diamond", "2150.00"),
    ("RG-SIG-014", "Signet ring", "ring", "14k yellow gold", "", "690.00"),
    ("RG-SAP-018", "Sapphire halo ring", "ring", "18k white gold", "sapphire", "1890.00"),
    ("WB-CLS-018", "Classic wedding band", "wedding_band", "18k yellow gold", "", "780.00"),
    ("WB-CMF-950", "Comfort-fit wedding band", "wedding_band", "platinum", "", "1150.00"),
    ("NK-PRL-045", "Akoya pearl necklace 45cm", "necklace", "14k yellow gold", "pearl", "1290.00"),
    ("NK-TNS-018", "Diamond tennis necklace", "necklace", "18k white gold", "diamond", "6400.00"),
    ("PD-HRT-925", "Heart pendant", "pendant", "sterling silver", "", "120.00"),
    ("PD-EMR-018", "Emerald drop pendant", "pendant", "18k yellow gold", "emerald", "1480.00"),
    ("BR-TNS-018", "Tennis bracelet", "bracelet", "18k white gold", "diamond", "3900.00"),
    ("BR-CHM-925", "Charm bracelet", "bracelet", "sterling silver", "", "145.00"),
    ("BR-BNG-014", "Hammered bangle", "bracelet", "14k rose gold", "", "560.00"),
    ("ER-STD-018", "Diamond stud earrings", "earrings", "18k white gold", "diamond 0.25ct", "990.00"),
    ("ER-HOP-014", "Gold hoop earrings", "earrings", "14k yellow gold", "", "340.00"),
    ("ER-PRL-925", "Pearl drop earrings", "earrings", "sterling silver", "pearl", "160.00"),
    ("WT-AUT-038", "Automatic dress watch 38mm", "watch", "stainless steel", "", "2450.00"),
    ("WT-CHR-042", "Chronograph 42mm", "watch", "stainless steel", "", "3200.00"),
    ("BC-KNT-925", "Knot brooch", "brooch", "sterling silver", "", "210.00"),
    ("CL-ONX-925", "Onyx cufflinks", "cufflinks", "sterling silver", "onyx", "185.00"),
    ("SV-RSZ", "Ring resizing", "repair_service", "", "", "65.00"),
    ("SV-POL", "Polish and clean", "repair_service", "", "", "35.00"),
    ("SV-PRN", "Prong retipping", "repair_service", "", "", "90.00"),
    ("SV-BAT", "Watch battery and reseal", "repair_service", "", "", "45.00"),
    ("CD-DSN", "Custom design consultation", "custom_design", "", "", "150.00"),
]

# How an order reaches each status, and the payment / fulfilment state it has there.
PATHS = {
    "pending": ([], "unpaid", "unfulfilled"),
    "confirmed": (["confirmed"], "partially_paid", "unfulfilled"),
    "in_production": (["confirmed", "in_production"], "partially_paid", "unfulfilled"),
    "ready": (["confirmed", "ready"], "paid", "fulfilled"),
    "shipped": (["confirmed", "ready", "shipped"], "paid", "shipped"),
    "delivered": (["confirmed", "ready", "shipped", "delivered"], "paid", "delivered"),
    "completed": (["confirmed", "ready", "shipped", "delivered", "completed"], "paid", "delivered"),
    "cancelled": (["confirmed", "cancelled"], "voided", "unfulfilled"),
    "refunded": (["confirmed", "ready", "shipped", "delivered", "completed", "refunded"], "refunded", "returned"),
}
STATUS_WEIGHTS = {
    "pending": 8,
    "confirmed": 8,
    "in_production": 6,
    "ready": 5,
    "shipped": 6,
    "delivered": 12,
    "completed": 45,
    "cancelled": 7,
    "refunded": 3,
}
CHANNEL_WEIGHTS = {
    Channel.IN_STORE: 40,
    Channel.ONLINE_STORE: 25,
    Channel.PHONE: 10,
    Channel.MARKETPLACE: 8,
    Channel.POS: 10,
    Channel.SOCIAL: 4,
    Channel.EMAIL: 3,
}


def _customers(rng: random.Random) -> list[Customer]:
    customers = []
    for i in range(60):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        email = f"{first}.{last}{i}@example.com".lower()
        consent = rng.random() < 0.4
        customer, _ = Customer.objects.get_or_create(
            email=email,
            defaults={
                "name": f"{first} {last}",
                "phone": f"+44 20 7946 {i:04d}",
                "addresses": [
                    {"kind": "shipping", "line1": f"{10 + i} Hatton Garden", "city": "London", "country": "GB"}
                ],
                "marketing_consent": consent,
                "marketing_consent_source": "in store" if consent else "",
                "marketing_consent_at": timezone.now() - timedelta(days=rng.randint(1, 400)) if consent else None,
                "tags": rng.sample(["vip", "bridal", "repairs", "collector", "trade"], k=rng.randint(0, 2)),
            },
        )
        customers.append(customer)
    return customers


def _products() -> list[Product]:
    products = []
    for sku, name, category, metal, gemstone, price in PRODUCTS:
        product, created = Product.objects.get_or_create(
            sku=sku,
            defaults={
                "name": name,
                "category": category,
                "metal": metal,
                "gemstone": gemstone,
                "price": Decimal(price),
                "currency": "EUR",
            },
        )
        if created and category not in ("repair_service", "custom_design"):
            stock_adjust(
                product=product, delta=10 + len(name) % 7, reason=StockReason.RESTOCK, actor=ACTOR, note="Demo stock."
            )
        products.append(product)
    return products


def _order(rng: random.Random, index: int, customers: list[Customer], products: list[Product]) -> Order:
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    channel = rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
    lines = rng.sample(products, k=rng.choice([1, 1, 1, 2, 2, 3]))
    items = [
        ItemInput(
            product=product,
            quantity=1 if product.price > 500 else rng.randint(1, 2),
            unit_price=product.price,
            attributes={"ring_size": str(rng.randint(48, 62))} if "ring" in product.category else {},
        )
        for product in lines
    ]
    subtotal = sum((item.unit_price * item.quantity for item in items), Decimal("0"))
    discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01")) if rng.random() < 0.15 else Decimal("0")
    is_custom = any(p.category in ("custom_design", "repair_service") for p in lines)
    placed_at = timezone.now() - timedelta(
        days=rng.randint(0, 364), hours=rng.randint(0, 23), minutes=rng.randint(0, 59)
    )
    order = order_create(
        actor=ACTOR,
        currency="EUR",
        items=items,
        customer=rng.choice(customers) if rng.random() < 0.92 else None,
        channel=channel,
        placed_at=placed_at,
        due_date=(placed_at + timedelta(days=rng.randint(7, 42))).date() if is_custom else None,
        discount_total=discount,
        tax_total=((subtotal - discount) * Decimal("0.19")).quantize(Decimal("0.01")),
        shipping_total=Decimal("15.00") if channel in (Channel.ONLINE_STORE, Channel.MARKETPLACE) else Decimal("0"),
        external_reference=f"DEMO-{index:04d}",
    )
    path, payment_status, fulfillment_status = PATHS[status]
    for step in path:
        if step == "shipped" and channel in (Channel.IN_STORE, Channel.POS):
            continue  # collected in store: ready -> delivered
        order_transition(order=order, to_status=step, actor=ACTOR, note="Demo history.")
    order_update(
        order=order, actor=ACTOR, data={"payment_status": payment_status, "fulfillment_status": fulfillment_status}
    )
    _payments_and_shipments(rng, order, status, payment_status, channel)
    return order


def _payments_and_shipments(rng: random.Random, order: Order, status: str, payment_status: str, channel: str) -> None:
    if payment_status != "unpaid":
        paid = order.total if payment_status != "partially_paid" else (order.total / 2).quantize(Decimal("0.01"))
        record_status = {
            "partially_paid": PaymentRecordStatus.CAPTURED,
            "paid": PaymentRecordStatus.CAPTURED,
            "voided": PaymentRecordStatus.VOIDED,
            "refunded": PaymentRecordStatus.REFUNDED,
        }[payment_status]
        online = channel in (Channel.ONLINE_STORE, Channel.MARKETPLACE, Channel.SOCIAL)
        Payment.objects.create(
            order=order,
            customer=order.customer,
            provider="stripe" if online else "in_store",
            external_id=f"demo_ch_{order.external_reference}" if online else "",
            amount=paid,
            currency=order.currency,
            status=record_status,
            method="card" if online or rng.random() < 0.7 else "cash",
            captured_amount=paid if record_status != PaymentRecordStatus.VOIDED else 0,
            refunded_amount=paid if record_status == PaymentRecordStatus.REFUNDED else 0,
            processed_at=order.placed_at + timedelta(minutes=5),
        )
    shipped = status in ("shipped", "delivered", "completed", "refunded") and channel not in (
        Channel.IN_STORE,
        Channel.POS,
    )
    if shipped:
        shipped_at = order.placed_at + timedelta(days=rng.randint(2, 10))
        delivered = status != "shipped"
        Shipment.objects.create(
            order=order,
            carrier=rng.choice(["dhl", "ups", "fedex"]),
            service="Insured express",
            tracking_number=f"DEMO{order.pk:08d}",
            status="delivered" if delivered else "in_transit",
            shipped_at=shipped_at,
            delivered_at=shipped_at + timedelta(days=2) if delivered else None,
            tracking_events=[
                {"at": shipped_at.isoformat(), "status": "in_transit", "description": "Picked up"},
                *(
                    [
                        {
                            "at": (shipped_at + timedelta(days=2)).isoformat(),
                            "status": "delivered",
                            "description": "Signed",
                        }
                    ]
                    if delivered
                    else []
                ),
            ],
        )


def seed(*, stdout, style) -> None:
    rng = random.Random(SEED)
    customers = _customers(rng)
    products = _products()
    existing = set(
        Order.objects.filter(external_reference__startswith="DEMO-").values_list("external_reference", flat=True)
    )
    created = 0
    for index in range(1, ORDERS + 1):
        # Draw the same random numbers whether or not the order exists, so reruns stay deterministic.
        order_rng = random.Random(SEED + index)
        if f"DEMO-{index:04d}" in existing:
            continue
        _order(order_rng, index, customers, products)
        created += 1
    by_status = {status: Order.objects.filter(status=status).count() for status in OrderStatus.values}
    stdout.write(
        style.SUCCESS(
            f"Orders demo: {len(customers)} customers, {len(products)} products, {created} new orders "
            f"({sum(by_status.values())} in total: "
            + ", ".join(f"{count} {status}" for status, count in by_status.items() if count)
            + ")."
        )
    )

"""Demo data: the sample Shopify, "QuickBooks Online" and Stripe integrations, pointed at the local provider sandbox.

`manage.py seed_demo` calls `seed`; the README's run command starts the sandbox (default http://127.0.0.1:8765,
`SANDBOX_BASE_URL`) so a newcomer sees real syncs over HTTP. Idempotent: an existing demo integration is left as
it is (its cursors and history included).

The QuickBooks one is connected to the sandbox's company with the sandbox's demo tokens (its OAuth endpoints are
the sandbox's too, so refreshing, reconnecting and disconnecting work locally once `QUICKBOOKS_CLIENT_ID` and
`QUICKBOOKS_CLIENT_SECRET` hold the sandbox's demo app credentials, as the local settings default them). It pushes
customers as they are created or changed, and completed orders as invoices.
"""

from django.conf import settings

from integrations.models import Integration
from integrations.services import integration_create
from jewelia.core.actors import Actor
from jewelia.core.exceptions import ValidationFailed

DEMO_NAME = "Demo Shopify store (sandbox)"
QUICKBOOKS_DEMO_NAME = "QuickBooks Online"
STRIPE_DEMO_NAME = "Demo Stripe account (sandbox)"
STRIPE_SANDBOX_PATH = "/stripe"
# Where the sandbox runner mounts its apps below SANDBOX_BASE_URL.
SHOPIFY_SANDBOX_PATH = "/shopify"
QUICKBOOKS_SANDBOX_PATH = "/quickbooks"
# The sandbox company's "Ring resizing" service item: invoice lines whose product QuickBooks does not know (the
# demo catalogue differs from the sandbox's) are booked to it, keeping the product name as the line description.
QUICKBOOKS_DEMO_ITEM_ID = "10"
QUICKBOOKS_DEMO_PUSH_RULES = [
    {"event": "customer.created", "resource": "customers"},
    {"event": "customer.updated", "resource": "customers"},
    # The demo orders are in euros; a company whose home currency is EUR takes them without multicurrency.
    {
        "event": "order.completed",
        "resource": "invoices",
        "options": {"default_item_id": QUICKBOOKS_DEMO_ITEM_ID, "home_currency": "EUR"},
    },
]
LOCAL_HOSTS_HINT = "Local sandbox URLs need 127.0.0.1 in the allowed local hosts (development settings)."


def seed(*, stdout, style) -> None:
    seed_shopify(stdout=stdout, style=style)
    seed_quickbooks(stdout=stdout, style=style)
    seed_stripe(stdout=stdout, style=style)


def first_sync(*, stdout, style) -> None:
    """Sync the demo integrations that never synced, now and in this process, from the running sandbox (`seed_demo
    --sync`, which the README's run command uses): the admin shows their data at once, and the demo webhook
    events that name sandbox products find them. Without the sandbox the runs fail, are said so, and retry later
    on their schedule like any run."""
    from integrations.models import IntegrationStatus, SyncTrigger
    from integrations.services import sync_run_now
    from jewelia.core.exceptions import JeweliaError

    demos = Integration.objects.filter(
        name__in=[DEMO_NAME, QUICKBOOKS_DEMO_NAME, STRIPE_DEMO_NAME],
        status=IntegrationStatus.ACTIVE,
        last_sync_at__isnull=True,
    ).order_by("name")
    for integration in demos:
        try:
            run, _ = sync_run_now(integration=integration, trigger=SyncTrigger.MANUAL, actor=Actor.system("seed_demo"))
        except JeweliaError as exc:
            stdout.write(style.WARNING(f"Did not sync '{integration.name}': {exc.message}"))
            continue
        line = f"First sync of '{integration.name}': {run.status}, {run.created} created, {run.updated} updated"
        ok = run.status in ("succeeded", "partial")
        stdout.write(style.SUCCESS(line) if ok else style.WARNING(f"{line} ({run.error_summary})"))


def seed_stripe(*, stdout, style) -> None:
    """The demo Stripe account, pointed at the Stripe sandbox (unless a Stripe integration exists already)."""
    from integrations.sandbox.stripe import DEMO_API_KEY

    if Integration.objects.filter(provider="stripe").exists():
        stdout.write("A Stripe integration already exists; left unchanged.")
        return
    _create(
        stdout=stdout,
        style=style,
        what="the demo Stripe account",
        name=STRIPE_DEMO_NAME,
        provider="stripe",
        config={"base_url": _sandbox_url(STRIPE_SANDBOX_PATH)},
        credentials={"api_key": DEMO_API_KEY},
        sync_interval_minutes=15,
    )


def seed_shopify(*, stdout, style) -> None:
    from integrations.sandbox.shopify import API_VERSION, DEMO_ACCESS_TOKEN, DEMO_SHOP

    if Integration.objects.filter(name=DEMO_NAME).exists():
        stdout.write(f"Integration '{DEMO_NAME}' already exists; left unchanged.")
        return
    _create(
        stdout=stdout,
        style=style,
        what="the demo Shopify integration",
        note=" (syncs every 15 minutes)",
        name=DEMO_NAME,
        provider="shopify",
        config={"shop": DEMO_SHOP, "api_version": API_VERSION, "base_url": _sandbox_url(SHOPIFY_SANDBOX_PATH)},
        credentials={"access_token": DEMO_ACCESS_TOKEN},
        sync_interval_minutes=15,
    )


def seed_quickbooks(*, stdout, style) -> None:
    from integrations.outbox.services import push_rules_replace
    from integrations.sandbox.quickbooks import DEMO_ACCESS_TOKEN, DEMO_REALM_ID, DEMO_REFRESH_TOKEN

    if Integration.objects.filter(name=QUICKBOOKS_DEMO_NAME).exists():
        stdout.write(f"Integration '{QUICKBOOKS_DEMO_NAME}' already exists; left unchanged.")
        return
    base_url = _sandbox_url(QUICKBOOKS_SANDBOX_PATH)
    _create(
        stdout=stdout,
        style=style,
        what="the demo QuickBooks integration",
        note=f" (company {DEMO_REALM_ID}; pushes customers and completed orders as invoices)",
        then=lambda integration: push_rules_replace(integration=integration, rules=QUICKBOOKS_DEMO_PUSH_RULES),
        name=QUICKBOOKS_DEMO_NAME,
        provider="quickbooks",
        config={"environment": "sandbox", "base_url": base_url, "oauth_base_url": base_url, "realm_id": DEMO_REALM_ID},
        # The sandbox issues these when it starts; the access token lasts an hour, then the refresh rotates.
        credentials={"access_token": DEMO_ACCESS_TOKEN, "refresh_token": DEMO_REFRESH_TOKEN, "token_type": "bearer"},
        sync_interval_minutes=60,
    )


def _sandbox_url(path: str) -> str:
    return settings.SANDBOX_BASE_URL.rstrip("/") + path


def _create(*, stdout, style, what: str, note: str = "", then=None, **fields) -> None:
    """Create one demo integration (and `then(integration)` in the same go), or say why it was skipped."""
    try:
        integration = integration_create(actor=Actor.system("seed_demo"), **fields)
        if then is not None:
            then(integration)
    except ValidationFailed as exc:
        stdout.write(style.WARNING(f"Skipped {what}: {exc.details or exc.message}. {LOCAL_HOSTS_HINT}"))
        return
    stdout.write(style.SUCCESS(f"Created integration '{integration.name}' -> {fields['config']['base_url']}{note}."))

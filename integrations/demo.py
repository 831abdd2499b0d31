"""Demo data: the sample Shopify integration, pointed at the local Shopify sandbox.

`manage.py seed_demo` calls `seed`; the README's run command starts the sandbox (default
http://127.0.0.1:8765, `SANDBOX_BASE_URL`) so a newcomer sees real syncs over HTTP. Idempotent: an existing demo
integration is left as it is (its cursors and history included).
"""

from django.conf import settings

from integrations.models import Integration
from integrations.services import integration_create
from jewelia.core.actors import Actor
from jewelia.core.exceptions import ValidationFailed

DEMO_NAME = "Demo Shopify store (sandbox)"
# Where the sandbox runner mounts its Shopify app below SANDBOX_BASE_URL.
SHOPIFY_SANDBOX_PATH = "/shopify"


def seed(*, stdout, style) -> None:
    from integrations.sandbox.shopify import API_VERSION, DEMO_ACCESS_TOKEN, DEMO_SHOP

    if Integration.objects.filter(name=DEMO_NAME).exists():
        stdout.write(f"Integration '{DEMO_NAME}' already exists; left unchanged.")
        return
    base_url = settings.SANDBOX_BASE_URL.rstrip("/") + SHOPIFY_SANDBOX_PATH
    try:
        integration = integration_create(
            actor=Actor.system("seed_demo"),
            name=DEMO_NAME,
            provider="shopify",
            config={"shop": DEMO_SHOP, "api_version": API_VERSION, "base_url": base_url},
            credentials={"access_token": DEMO_ACCESS_TOKEN},
            sync_interval_minutes=15,
        )
    except ValidationFailed as exc:
        stdout.write(
            style.WARNING(
                f"Skipped the demo Shopify integration: {exc.details or exc.message}. Local sandbox URLs need "
                "127.0.0.1 in the allowed local hosts (development settings)."
            )
        )
        return
    stdout.write(style.SUCCESS(f"Created integration '{integration.name}' -> {base_url} (syncs every 15 minutes)."))

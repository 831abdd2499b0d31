"""`python -m integrations.sandbox [--port 8765]`: serve every provider sandbox on one port until killed.

Each provider is mounted under its key, so an integration's `base_url` is e.g. `http://127.0.0.1:8765/shopify`
(Shopify's REST Admin API then lives at `/shopify/admin/api/2026-04/...`). `manage.py seed_demo` points the
demo integrations there; `INTEGRATIONS_ALLOWED_LOCAL_HOSTS` must allow 127.0.0.1 for them to be accepted.
The sandbox needs no Django settings and keeps its data in memory (restart it for a fresh store).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from integrations.sandbox.quickbooks import DEMO_ACCESS_TOKEN as QUICKBOOKS_ACCESS_TOKEN
from integrations.sandbox.quickbooks import DEMO_REALM_ID, QuickBooksSandbox
from integrations.sandbox.server import SandboxApp, SandboxServer
from integrations.sandbox.shopify import DEMO_ACCESS_TOKEN, DEMO_SHOP, ShopifySandbox
from integrations.sandbox.stripe import DEMO_API_KEY, StripeSandbox


def build_apps(args: argparse.Namespace) -> dict[str, tuple[SandboxApp, str]]:
    """Mount path -> (app, how to authenticate), one per provider."""
    shopify = ShopifySandbox(
        orders=args.shopify_orders,
        customers=args.shopify_customers,
        products=args.shopify_products,
        rate_limit=not args.no_rate_limit,
    )
    return {
        "/shopify": (shopify, f"shop {DEMO_SHOP}, X-Shopify-Access-Token: {DEMO_ACCESS_TOKEN}"),
        "/stripe": (StripeSandbox(), f"Authorization: Bearer {DEMO_API_KEY}"),
        # The API and Intuit's OAuth endpoints on one mount: config base_url = oauth_base_url = this URL.
        "/quickbooks": (
            QuickBooksSandbox(),
            f"realm {DEMO_REALM_ID}, Authorization: Bearer {QUICKBOOKS_ACCESS_TOKEN} (1 h; then refresh)",
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integrations.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    parser.add_argument("--shopify-orders", type=int, default=300)
    parser.add_argument("--shopify-customers", type=int, default=60)
    parser.add_argument("--shopify-products", type=int, default=30)
    parser.add_argument("--no-rate-limit", action="store_true", help="no call-limit bucket or 429s (benchmarks)")
    args = parser.parse_args(argv)

    apps = build_apps(args)
    server = SandboxServer({prefix: app for prefix, (app, _) in apps.items()}, host=args.host, port=args.port)
    server.start()
    for prefix, (app, auth) in apps.items():
        print(f"{app.name:8} {server.url}{prefix}  ({auth})", flush=True)
    print("Serving provider sandboxes; Ctrl-C to stop.", flush=True)

    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

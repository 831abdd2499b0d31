"""The Shopify sandbox itself: it must be as strict as Shopify, or provider tests prove nothing."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from integrations.sandbox.shopify import DEMO_ACCESS_TOKEN, ORDER_BASE_ID, ShopifySandbox

ROOT = Path(__file__).resolve().parents[3]
HEADERS = {"X-Shopify-Access-Token": DEMO_ACCESS_TOKEN}


def get(sandbox, path, params=None, headers=HEADERS):
    url = path if path.startswith("http") else f"{sandbox.url}/admin/api/2026-04/{path}"
    return requests.get(url, params=params, headers=headers, timeout=5)


def test_admin_api_calls_without_a_valid_token_get_shopifys_401(shopify_sandbox):
    response = get(shopify_sandbox, "shop.json", headers={"X-Shopify-Access-Token": "shpat_wrong"})

    assert response.status_code == 401
    assert response.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_a_page_info_request_that_repeats_a_filter_is_a_400(shopify_sandbox):
    first = get(shopify_sandbox, "orders.json", {"status": "any", "limit": 5})
    next_url = first.links["next"]["url"]

    repeated = get(shopify_sandbox, next_url + "&status=any")

    assert repeated.status_code == 400
    assert repeated.json() == {"errors": "status cannot be passed when page_info is present"}
    assert get(shopify_sandbox, next_url).status_code == 200


def test_limit_above_250_is_refused(shopify_sandbox):
    assert get(shopify_sandbox, "orders.json", {"limit": 251}).status_code == 400


def test_lists_default_to_50_and_orders_default_to_open(make_shopify_sandbox):
    sandbox = make_shopify_sandbox(orders=240)

    open_orders = get(sandbox, "orders.json").json()["orders"]
    every_order = get(sandbox, "orders.json", {"status": "any", "limit": 250}).json()["orders"]

    assert len(open_orders) == 50
    assert all(o["closed_at"] is None and o["cancelled_at"] is None for o in open_orders)
    assert len(every_order) == 240
    counts = {s: get(sandbox, "orders/count.json", {"status": s}).json()["count"] for s in ("any", "open", "closed")}
    assert counts["any"] == 240 and 50 < counts["open"] < 240 and counts["closed"] > 0


def test_link_headers_walk_forward_and_back(shopify_sandbox):
    first = get(shopify_sandbox, "customers.json", {"limit": 5})
    second = get(shopify_sandbox, first.links["next"]["url"])
    back = get(shopify_sandbox, second.links["previous"]["url"])

    assert "previous" not in first.links
    assert [c["id"] for c in back.json()["customers"]] == [c["id"] for c in first.json()["customers"]]
    assert second.headers["X-Shopify-Shop-Api-Call-Limit"] == "2/40"


def test_the_call_limit_bucket_answers_429_with_retry_after_when_full(make_shopify_sandbox):
    now = [0.0]
    sandbox = make_shopify_sandbox(bucket_size=2, leak_rate=2.0, clock=lambda: now[0])

    statuses = [get(sandbox, "shop.json").status_code for _ in range(3)]
    refused = get(sandbox, "shop.json")
    now[0] += 0.5

    assert statuses == [200, 200, 429]
    assert refused.headers["Retry-After"] == "0.5"
    assert refused.headers["X-Shopify-Shop-Api-Call-Limit"] == "2/2"
    assert get(sandbox, "shop.json").status_code == 200


def test_the_bucket_can_be_switched_off(make_shopify_sandbox):
    sandbox = make_shopify_sandbox(rate_limit=False, bucket_size=1)

    responses = [get(sandbox, "shop.json") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "X-Shopify-Shop-Api-Call-Limit" not in responses[0].headers


def test_inventory_levels_need_item_or_location_ids_and_take_at_most_50(shopify_sandbox):
    ids = ",".join(str(808950810 + i) for i in range(51))

    assert get(shopify_sandbox, "inventory_levels.json").status_code == 422
    assert get(shopify_sandbox, "inventory_levels.json", {"inventory_item_ids": ids}).status_code == 422
    levels = get(shopify_sandbox, "inventory_levels.json", {"inventory_item_ids": "808950810"}).json()
    assert [lvl["location_id"] for lvl in levels["inventory_levels"]] == [655441491, 905684977]


def test_the_client_credentials_grant_issues_tokens_that_expire(make_shopify_sandbox):
    now = [0.0]
    sandbox = make_shopify_sandbox(clock=lambda: now[0], token_expires_in=60)
    grant = {"grant_type": "client_credentials", **sandbox.client_credentials()}

    token = requests.post(f"{sandbox.url}/admin/oauth/access_token", data=grant, timeout=5).json()
    refused = requests.post(f"{sandbox.url}/admin/oauth/access_token", json={**grant, "client_secret": "x"}, timeout=5)

    assert token["expires_in"] == 60 and token["scope"].startswith("read_orders")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    headers = {"X-Shopify-Access-Token": token["access_token"]}
    assert get(sandbox, "shop.json", headers=headers).status_code == 200
    now[0] += 61
    assert get(sandbox, "shop.json", headers=headers).status_code == 401


def test_generated_data_is_deterministic_per_seed():
    one, two, other = ShopifySandbox(seed=3), ShopifySandbox(seed=3), ShopifySandbox(seed=4)

    assert one.all("orders") == two.all("orders")
    assert one.all("orders") != other.all("orders")


def test_a_hundred_thousand_orders_are_generated_lazily_and_filtered_by_binary_search():
    sandbox = ShopifySandbox(orders=100_000, customers=5_000, products=30)
    sandbox.update_order(ORDER_BASE_ID + 10, touch=True)

    started = time.perf_counter()
    recent = list(sandbox.orders.iterate(updated_min=sandbox._order_updated(99_990)))
    elapsed = time.perf_counter() - started

    assert [o["order_number"] for o in recent] == [1011, *range(1001 + 99_990, 1001 + 100_000)]
    assert elapsed < 0.5  # no scan over the 99,990 older orders


def test_every_order_total_adds_up(make_shopify_sandbox):
    from decimal import Decimal

    sandbox = make_shopify_sandbox(orders=200)
    for order in sandbox.all("orders"):
        items = sum(Decimal(li["price"]) * li["quantity"] for li in order["line_items"])
        shipping = Decimal(order["total_shipping_price_set"]["shop_money"]["amount"])
        assert Decimal(order["total_line_items_price"]) == items
        assert Decimal(order["total_price"]) == (
            items - Decimal(order["total_discounts"]) + Decimal(order["total_tax"]) + shipping
        )


@pytest.fixture
def runner():
    process = subprocess.Popen(
        [sys.executable, "-m", "integrations.sandbox", "--port", "0", "--shopify-orders", "40"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    process.terminate()
    process.wait(10)


def test_the_command_line_runner_serves_shopify_under_its_mount_path(runner):
    shopify_line = runner.stdout.readline()
    base_url = shopify_line.split()[1]

    response = requests.get(f"{base_url}/admin/api/2026-04/orders/count.json?status=any", headers=HEADERS, timeout=5)

    assert base_url.endswith("/shopify")
    assert response.json() == {"count": 40}
    link = requests.get(f"{base_url}/admin/api/2026-04/orders.json?status=any&limit=5", headers=HEADERS, timeout=5)
    assert link.links["next"]["url"].startswith(f"{base_url}/admin/api/2026-04/orders.json?")

"""Pytest fixtures and helpers for tests that talk to provider sandboxes.

Use from a conftest: `from integrations.sandbox.testing import make_shopify_sandbox, shopify_sandbox  # noqa`.

- `shopify_sandbox`: a started `ShopifySandbox` with the default small store (12 customers, 10 products,
  30 orders), stopped after the test. `sandbox.config()` and `sandbox.credentials()` (or
  `sandbox.client_credentials()`) are what an integration row needs.
- `make_shopify_sandbox(**options)`: start more, or differently sized/configured ones (`orders=100_000`,
  `rate_limit=False`, `clock=...`).
- `make_stripe_sandbox(**options)` (`now=...`, `rate_limit=True`, ...), and `make_qb_sandbox(**options)` with
  `qb_sandbox` (which also set `QUICKBOOKS_CLIENT_ID`/`_SECRET` to the sandbox's demo app): the same for
  Stripe and QuickBooks Online.
- All of them let `127.0.0.1` through the base-URL allow-list for the test (`INTEGRATIONS_ALLOWED_LOCAL_HOSTS`).
- `sandbox_connection(provider, config=..., credentials=...)`: a `Connection` as the engine would build it,
  whose `refresh` calls the provider's `refresh_credentials` and which records what was saved.
- `FakeClock`: a monotonic clock and sleep for `integrations.http.http_overrides` and the sandbox's bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from integrations.providers.base import Connection, Provider
from integrations.sandbox.quickbooks import DEMO_CLIENT_ID as QB_DEMO_CLIENT_ID
from integrations.sandbox.quickbooks import DEMO_CLIENT_SECRET as QB_DEMO_CLIENT_SECRET
from integrations.sandbox.quickbooks import QuickBooksSandbox
from integrations.sandbox.server import SandboxApp
from integrations.sandbox.shopify import ShopifySandbox
from integrations.sandbox.stripe import StripeSandbox

LOCAL_HOSTS = ["127.0.0.1", "localhost"]
S = TypeVar("S", bound=SandboxApp)


class FakeClock:
    """Time that only moves when someone sleeps: waits are asserted exactly and cost nothing."""

    def __init__(self, start: float = 1_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(repr=False)
class SandboxConnection(Connection):
    """A `Connection` wired like the engine's: refresh -> provider.refresh_credentials, saves recorded."""

    provider: Provider | None = None
    saved_credentials: list[dict[str, Any]] = field(default_factory=list)
    refreshes: int = 0

    def __post_init__(self) -> None:
        self.save_credentials = self._save
        self.refresh = self._refresh

    def _save(self, credentials: dict[str, Any]) -> None:
        self.saved_credentials.append(dict(credentials))
        self.credentials = dict(credentials)

    def _refresh(self) -> dict[str, Any] | None:
        self.refreshes += 1
        assert self.provider is not None
        return self.provider.refresh_credentials(self)


def sandbox_connection(
    provider: Provider,
    *,
    config: dict[str, Any],
    credentials: dict[str, Any],
    rate_limiting: bool = True,
) -> SandboxConnection:
    integration_id = str(uuid.uuid4())
    return SandboxConnection(
        integration_id=integration_id,
        base_url=provider.base_url(config),
        config=dict(config),
        credentials=dict(credentials),
        rate_limit_key=f"test:{integration_id}",
        rate_limiting=rate_limiting,
        provider=provider,
    )


def _allow_local_hosts(settings) -> None:
    allowed = list(getattr(settings, "INTEGRATIONS_ALLOWED_LOCAL_HOSTS", []) or [])
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = allowed + [h for h in LOCAL_HOSTS if h not in allowed]


def _sandboxes(settings, sandbox_class: type[S]) -> Iterator[Callable[..., S]]:
    """A factory starting `sandbox_class(**options)` for the test (127.0.0.1 allowed), each stopped after it."""
    _allow_local_hosts(settings)
    started: list[S] = []

    def make(**options: Any) -> S:
        sandbox = sandbox_class(**options)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def make_shopify_sandbox(settings) -> Iterator[Callable[..., ShopifySandbox]]:
    yield from _sandboxes(settings, ShopifySandbox)


@pytest.fixture
def shopify_sandbox(make_shopify_sandbox) -> ShopifySandbox:
    return make_shopify_sandbox()


@pytest.fixture
def make_stripe_sandbox(settings) -> Iterator[Callable[..., StripeSandbox]]:
    yield from _sandboxes(settings, StripeSandbox)


@pytest.fixture
def make_qb_sandbox(settings) -> Iterator[Callable[..., QuickBooksSandbox]]:
    """Also sets the app's client id and secret to the sandbox's demo app (its OAuth endpoints check them)."""
    settings.QUICKBOOKS_CLIENT_ID = QB_DEMO_CLIENT_ID
    settings.QUICKBOOKS_CLIENT_SECRET = QB_DEMO_CLIENT_SECRET
    yield from _sandboxes(settings, QuickBooksSandbox)


@pytest.fixture
def qb_sandbox(make_qb_sandbox) -> QuickBooksSandbox:
    return make_qb_sandbox()

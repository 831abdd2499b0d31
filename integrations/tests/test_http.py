"""The shared HTTP layer: timeouts, retries and waits, the one refresh on 401, classification, redaction."""

import logging
import socket
from datetime import UTC, datetime

import pytest
import requests

from integrations.errors import AuthError, PermanentError, RateLimitedError, TransientError
from integrations.http import (
    REDACTED,
    ProviderHttpClient,
    RetryPolicy,
    http_overrides,
    parse_retry_after,
    redact_url,
)
from integrations.providers.base import Connection, RateLimit
from integrations.sandbox.server import SandboxApp, SandboxResponse
from integrations.sandbox.testing import FakeClock

TOKEN = "tok-SECRET-0123456789"
NOW = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
LIMIT = RateLimit(requests=2, per_seconds=1.0, burst=5)


class Api(SandboxApp):
    """A provider with one data endpoint and one that insists on the current token."""

    def __init__(self):
        super().__init__()
        self.valid_token = TOKEN
        self.route("GET", "/items", lambda request: SandboxResponse(200, {"items": [1, 2]}))
        self.route("GET", "/empty", lambda request: SandboxResponse(204))
        self.route("POST", "/items", lambda request: SandboxResponse(201, {"created": request.json()}))
        self.route("GET", "/private", self._private)

    def _private(self, request):
        if request.header("x-token") != self.valid_token:
            return SandboxResponse(401, {"error": "bad token"})
        return SandboxResponse(200, {"secret": "ok"})


class RecordingLimiter:
    def __init__(self, wait: float = 0.0):
        self.wait = wait
        self.acquired: list[tuple[str, float]] = []
        self.deferred: list[tuple[str, float]] = []

    def acquire(self, key, rate, *, max_wait):
        self.acquired.append((key, max_wait))
        return self.wait

    def defer(self, key, rate, seconds):
        self.deferred.append((key, seconds))


@pytest.fixture
def api():
    with Api() as app:
        yield app


@pytest.fixture
def clock():
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, max_wait=30.0, backoff_base=0.5, connect_timeout=2.0, read_timeout=3.0)
    with http_overrides(sleep=clock.sleep, clock=clock.monotonic, random=lambda: 0.5, now=lambda: NOW, policy=policy):
        yield clock


def connection_for(base_url: str, **kwargs) -> Connection:
    fields = {"integration_id": "int-1", "config": {}, "credentials": {"token": TOKEN}, "rate_limit_key": "int-1"}
    fields.update(kwargs)
    return Connection(base_url=base_url, **fields)


def client_for(api, connection=None, **kwargs) -> ProviderHttpClient:
    kwargs.setdefault("auth_headers", lambda credentials: {"X-Token": credentials["token"]})
    kwargs.setdefault("name", "testprovider")
    return ProviderHttpClient(connection or connection_for(api.url), **kwargs)


# --- requests as sent ------------------------------------------------------------------------------------------------
def test_every_call_carries_the_timeouts_and_never_follows_redirects(api, clock):
    sent = []

    class Session(requests.Session):
        def request(self, method, url, **kwargs):
            sent.append(kwargs)
            return super().request(method, url, **kwargs)

    with http_overrides(session=Session()):
        client_for(api).get("/items")

    assert sent[0]["timeout"] == (2.0, 3.0)
    assert sent[0]["allow_redirects"] is False


def test_the_default_policy_comes_from_settings(settings):
    settings.INTEGRATIONS_HTTP_CONNECT_TIMEOUT = 1.5
    settings.INTEGRATIONS_HTTP_READ_TIMEOUT = 9.0
    settings.INTEGRATIONS_HTTP_MAX_ATTEMPTS = 2
    settings.INTEGRATIONS_HTTP_MAX_WAIT = 4.0

    policy = ProviderHttpClient(connection_for("https://api.example.com")).policy

    assert (policy.connect_timeout, policy.read_timeout, policy.max_attempts, policy.max_wait) == (1.5, 9.0, 2, 4.0)


def test_a_path_is_sent_below_the_base_url_with_auth_and_json(api, clock):
    response = client_for(api, connection_for(api.url + "/")).post("items", json_body={"sku": "RING-1"})

    assert (response.status, response.data) == (201, {"created": {"sku": "RING-1"}})
    request = api.requests[0]
    assert (request.method, request.path, request.header("x-token")) == ("POST", "/items", TOKEN)
    assert request.header("accept") == "application/json"


def test_an_empty_2xx_body_reads_as_none(api, clock):
    assert client_for(api).get("/empty").data is None


def test_an_absolute_url_on_the_same_origin_is_followed_as_is(api, clock):
    client_for(api).get(f"{api.url}/items?page_info=abc&limit=2")

    assert api.requests[0].query == {"page_info": ["abc"], "limit": ["2"]}


def test_an_absolute_url_on_another_host_is_refused_before_anything_is_sent(api, clock):
    with pytest.raises(PermanentError, match="not on the integration's base URL"):
        client_for(api).get("https://elsewhere.example.com/items")

    assert api.requests == []


# --- transient failures and waits ----------------------------------------------------------------------------------
def test_a_fractional_retry_after_is_waited_exactly(api, clock):
    api.rate_limit_next(1, retry_after="1.5")

    assert client_for(api).get("/items").data == {"items": [1, 2]}
    assert clock.sleeps == [1.5]


def test_a_retry_after_given_as_an_http_date_is_waited_until_that_date(api, clock):
    api.fail_next(1, status=503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:10 GMT"})

    client_for(api).get("/items")

    assert clock.sleeps == [10.0]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("2.0", 2.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


def test_without_retry_after_the_backoff_is_exponential_with_full_jitter(api, clock):
    api.fail_next(3, status=502)

    client_for(api).get("/items")

    assert clock.sleeps == [0.25, 0.5, 1.0]  # random 0.5 x min(cap, 0.5 x 2^(n-1))


def test_attempts_are_bounded_and_the_error_says_when_to_retry(api, clock):
    api.fail_next(100, status=500)

    with pytest.raises(TransientError) as caught:
        client_for(api).get("/items")

    assert len(api.requests) == 4
    assert (caught.value.status, caught.value.retry_after) == (500, 2.0)
    assert not isinstance(caught.value, RateLimitedError)


def test_a_wait_beyond_the_in_process_budget_is_handed_back_instead_of_slept(api, clock):
    api.rate_limit_next(1, retry_after="45")

    with pytest.raises(RateLimitedError) as caught:
        client_for(api).get("/items")

    assert caught.value.retry_after == 45.0
    assert clock.sleeps == [] and len(api.requests) == 1


def test_the_budget_counts_every_wait_of_the_call(api, clock):
    api.rate_limit_next(3, retry_after="12")

    with pytest.raises(RateLimitedError):
        client_for(api).get("/items")

    assert clock.sleeps == [12.0, 12.0]  # a third 12 s wait would pass the 30 s budget


def test_408_is_retried_like_a_server_error(api, clock):
    api.fail_next(1, status=408)

    client_for(api).get("/items")

    assert clock.sleeps == [0.25]


def test_a_dropped_connection_is_retried(api, clock):
    api.disconnect_next(1)

    assert client_for(api).get("/items").status == 200
    assert clock.sleeps == [0.25]


def test_a_refused_connection_is_a_transient_error(clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nothing listens there

    with pytest.raises(TransientError, match="could not connect"):
        ProviderHttpClient(connection_for(f"http://127.0.0.1:{port}")).get("/items")


def test_a_malformed_2xx_body_is_transient_and_retried(api, clock):
    api.malformed_next(1)

    assert client_for(api).get("/items").data == {"items": [1, 2]}
    assert clock.sleeps == [0.25]


# --- permanent failures -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_4xx_answers_are_permanent_and_never_retried(api, clock, status):
    api.fail_next(1, status=status, body={"errors": "no"})

    with pytest.raises(PermanentError) as caught:
        client_for(api).get("/items")

    assert caught.value.status == status
    assert caught.value.details["body"] == '{"errors":"no"}'
    assert len(api.requests) == 1 and clock.sleeps == []


def test_a_provider_saying_do_not_retry_makes_a_5xx_permanent(api, clock):
    api.fail_next(3, status=503)

    with pytest.raises(PermanentError, match="says not to retry"):
        client_for(api, should_retry=lambda response: False).get("/items")

    assert len(api.requests) == 1


def test_a_provider_saying_retry_makes_a_4xx_transient(api, clock):
    api.fail_next(1, status=409)

    client_for(api, should_retry=lambda response: response.status_code == 409).get("/items")

    assert clock.sleeps == [0.25]


def test_a_redirect_is_not_followed_and_is_permanent(api, clock):
    api.fail_next(1, status=302, headers={"Location": "http://169.254.169.254/latest?token=abc123"})

    with pytest.raises(PermanentError) as caught:
        client_for(api).get("/items")

    assert caught.value.details["location"] == "http://169.254.169.254/latest?token=[redacted]"
    assert len(api.requests) == 1


def test_a_credential_echoed_in_an_error_body_is_redacted(api, clock):
    api.fail_next(1, status=400, body={"errors": f"token {TOKEN} lacks scope read_orders"})

    with pytest.raises(PermanentError) as caught:
        client_for(api).get("/items")

    assert TOKEN not in caught.value.details["body"]
    assert REDACTED in caught.value.details["body"]


# --- auth ------------------------------------------------------------------------------------------------------------
def test_a_401_refreshes_once_and_retries_with_the_new_credentials(api, clock):
    api.valid_token = "tok-NEW-0000000000"
    refreshes = []
    connection = connection_for(api.url)
    connection.refresh = lambda: refreshes.append(1) or {"token": "tok-NEW-0000000000"}

    assert client_for(api, connection).get("/private").data == {"secret": "ok"}

    assert refreshes == [1]
    assert [r.header("x-token") for r in api.requests] == [TOKEN, "tok-NEW-0000000000"]
    assert connection.credentials == {"token": "tok-NEW-0000000000"}
    assert clock.sleeps == []


def test_a_second_401_after_the_refresh_is_an_auth_error(api, clock):
    refreshes = []
    connection = connection_for(api.url)
    connection.refresh = lambda: refreshes.append(1) or {"token": "tok-STILL-WRONG-000"}
    api.valid_token = "something else"

    with pytest.raises(AuthError) as caught:
        client_for(api, connection).get("/private")

    assert caught.value.status == 401
    assert refreshes == [1] and len(api.requests) == 2


def test_a_401_that_cannot_be_refreshed_is_an_auth_error_at_once(api, clock):
    api.valid_token = "something else"  # the default refresh hook returns None

    with pytest.raises(AuthError, match="cannot be refreshed"):
        client_for(api).get("/private")

    assert len(api.requests) == 1


def test_a_401_without_authentication_is_final(api, clock):
    refreshes = []
    connection = connection_for(api.url)
    connection.refresh = lambda: refreshes.append(1)
    api.unauthorized_next(1)

    with pytest.raises(AuthError):
        client_for(api, connection).get("/items", authenticate=False)

    assert refreshes == [] and "x-token" not in api.requests[0].headers


def test_credentials_that_need_a_refresh_are_refreshed_before_the_first_call(api, clock):
    connection = connection_for(api.url, credentials={})
    connection.refresh = lambda: {"token": TOKEN}

    client = client_for(api, connection, needs_refresh=lambda credentials: "token" not in credentials)

    assert client.get("/private").status == 200
    assert len(api.requests) == 1


# --- rate limiting ----------------------------------------------------------------------------------------------------
def test_each_attempt_takes_a_token_from_the_shared_limiter_and_sleeps_its_wait(api, clock):
    limiter = RecordingLimiter(wait=0.75)
    with http_overrides(limiter=limiter):
        client_for(api, rate_limit=LIMIT).get("/items")

    assert limiter.acquired == [("int-1", 30.0)]
    assert clock.sleeps == [0.75]


def test_the_limiter_is_skipped_when_the_integration_turns_rate_limiting_off(api, clock):
    limiter = RecordingLimiter(wait=5.0)
    with http_overrides(limiter=limiter):
        client_for(api, connection_for(api.url, rate_limiting=False), rate_limit=LIMIT).get("/items")

    assert limiter.acquired == [] and clock.sleeps == []


def test_a_limiter_wait_beyond_the_budget_raises_before_sending(api, clock):
    with http_overrides(limiter=RecordingLimiter(wait=120.0)), pytest.raises(RateLimitedError) as caught:
        client_for(api, rate_limit=LIMIT).get("/items")

    assert caught.value.retry_after == 120.0
    assert api.requests == []


def test_a_429_pauses_every_worker_through_the_limiter(api, clock):
    limiter = RecordingLimiter()
    api.rate_limit_next(1, retry_after="2")
    with http_overrides(limiter=limiter):
        client_for(api, rate_limit=LIMIT).get("/items")

    assert limiter.deferred == [("int-1", 2.0)]


def test_a_providers_rate_limit_hint_pauses_every_worker(api, clock):
    limiter = RecordingLimiter()
    with http_overrides(limiter=limiter):
        client_for(api, rate_limit=LIMIT, rate_limit_hint=lambda response: 3.0).get("/items")

    assert limiter.deferred == [("int-1", 3.0)]


def test_on_a_429_the_retry_after_wins_over_the_providers_usage_hint(api, clock):
    limiter = RecordingLimiter()
    api.rate_limit_next(1, retry_after="1")
    with http_overrides(limiter=limiter):
        client_for(api, rate_limit=LIMIT, rate_limit_hint=lambda response: 10.0).get("/items")

    assert limiter.deferred == [("int-1", 1.0), ("int-1", 10.0)]  # the hint only from the successful answer


# --- redaction -------------------------------------------------------------------------------------------------------
def test_redact_url_hides_secret_parameters_and_userinfo():
    url = "https://user:pw@api.example.com/v1/items?access_token=abc&page=2&client_secret=s3&code=xyz"

    assert redact_url(url) == (
        "https://[redacted]@api.example.com/v1/items"
        "?access_token=[redacted]&page=2&client_secret=[redacted]&code=[redacted]"
    )


def test_no_secret_reaches_a_log_line(api, clock, caplog):
    caplog.set_level(logging.DEBUG)
    api.fail_next(1, status=500)
    client = client_for(api, secret_headers=("X-Token",))

    client.get("/items", params={"access_token": TOKEN, "page": "2"})
    api.fail_next(4, status=503)
    with pytest.raises(TransientError):
        client.get("/items", params={"api_key": TOKEN})

    assert "/items" in caplog.text and "retrying" in caplog.text
    assert TOKEN not in caplog.text
    assert any(r.name == "urllib3.connectionpool" for r in caplog.records)  # urllib3's own lines were checked too

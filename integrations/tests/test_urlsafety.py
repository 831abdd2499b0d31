"""Base URLs and other user-supplied URLs: https to public hosts only, unless settings allow local hosts."""

import socket

import pytest

from integrations.urlsafety import check_base_url, resolve_host
from jewelia.core.exceptions import ValidationFailed

PUBLIC = "93.184.215.14"


def resolver(*addresses: str):
    """A stand-in for DNS: every name resolves to `addresses` (tests never reach the network)."""
    calls = []

    def resolve(host: str, port: int):
        calls.append((host, port))
        return list(addresses)

    resolve.calls = calls
    return resolve


def unresolvable(host: str, port: int):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture(autouse=True)
def no_local_hosts(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = []
    return settings


def refused_reason(url: str, resolve=None) -> str:
    with pytest.raises(ValidationFailed) as caught:
        check_base_url(url, resolve=resolve or resolver(PUBLIC))
    assert caught.value.code == "validation_error"
    return caught.value.details["reason"]


def test_https_to_a_public_host_is_allowed_and_normalized():
    resolve = resolver(PUBLIC)

    assert check_base_url("HTTPS://Shop.Example.COM/admin/#top", resolve=resolve) == "https://shop.example.com/admin/"
    assert resolve.calls == [("Shop.Example.COM".lower(), 443)]


def test_a_custom_port_is_kept_and_used_for_resolution():
    resolve = resolver(PUBLIC)

    assert check_base_url("https://shop.example.com:8443/api", resolve=resolve) == "https://shop.example.com:8443/api"
    assert resolve.calls == [("shop.example.com", 8443)]


def test_plain_http_to_a_public_host_is_refused():
    assert refused_reason("http://shop.example.com") == "only https is allowed for public hosts"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.10/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://224.0.0.1/",
    ],
)
def test_addresses_on_loopback_private_link_local_or_multicast_networks_are_refused(url):
    assert "private, loopback or link-local" in refused_reason(url)


def test_a_public_name_that_resolves_to_a_private_address_is_refused():
    assert "private" in refused_reason("https://metadata.example.com", resolver(PUBLIC, "169.254.169.254"))


def test_an_unresolvable_host_is_refused():
    assert refused_reason("https://nowhere.invalid", unresolvable) == "the host nowhere.invalid cannot be resolved"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://shop.example.com/", "only http and https URLs can be called"),
        ("file:///etc/passwd", "only http and https URLs can be called"),
        ("https://user:secret@shop.example.com/", "credentials in the URL are not accepted"),
        ("https:///admin", "the URL has no host"),
        ("https://shop.example.com:99999/", "it is not a valid URL"),
        ("", "a URL is required"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url, reason):
    assert refused_reason(url).startswith(reason)


def test_the_refusal_never_echoes_credentials_in_its_message():
    with pytest.raises(ValidationFailed) as caught:
        check_base_url("https://user:secret@shop.example.com/", resolve=resolver(PUBLIC))

    assert "secret" not in caught.value.message


def test_an_allowed_local_host_name_may_use_http(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1", "localhost"]

    assert check_base_url("http://127.0.0.1:8765/shopify", resolve=unresolvable) == "http://127.0.0.1:8765/shopify"
    assert check_base_url("http://LOCALHOST:8765", resolve=unresolvable) == "http://localhost:8765"


def test_an_allowed_network_admits_hosts_resolving_inside_it(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["10.0.0.0/8"]

    assert check_base_url("http://shop.internal:8080", resolve=resolver("10.4.5.6")) == "http://shop.internal:8080"
    assert "private" in refused_reason("http://other.internal", resolver("10.4.5.6", "192.168.0.2"))


def test_allowing_one_local_host_does_not_allow_others(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["127.0.0.1"]

    assert "private" in refused_reason("https://192.168.1.1/")


def test_a_star_allows_every_host(settings):
    settings.INTEGRATIONS_ALLOWED_LOCAL_HOSTS = ["*"]

    assert check_base_url("http://192.168.1.1/", resolve=unresolvable) == "http://192.168.1.1/"


def test_the_default_resolver_resolves_localhost_without_the_network():
    assert "127.0.0.1" in resolve_host("localhost", 80)

"""User-supplied URLs are untrusted (DESIGN.md rule 10): provider base URLs, alert webhook URLs, feed URLs.

`check_base_url` allows https to public hosts only. Plain http and hosts on loopback, private, link-local,
shared (CGNAT), reserved or multicast addresses are refused, unless the host is allowed by
`INTEGRATIONS_ALLOWED_LOCAL_HOSTS`: host names, IP addresses or CIDR ranges (e.g. `127.0.0.1,localhost`
for the sandbox in development and tests, `10.0.0.0/8` for a self-hosted shop on a private network; `*`
allows everything and is for a laptop only). Production leaves it empty.

Host names are resolved and every address they resolve to must be acceptable, so a public-looking name that
points at 169.254.169.254 (cloud metadata) or 127.0.0.1 is refused too. URLs carrying credentials
(`https://user:pass@host`) are refused: they would end up in logs and bypass the credential store.

The check runs when a URL is saved and again each time a sync builds its connection, which narrows (but does
not close) the window for a host whose DNS answer changes in between; redirects are never followed by the
HTTP layer, so a checked host cannot bounce a request elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from jewelia.core.exceptions import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver, as `requests` will use it)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _refuse(url: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"The URL is not allowed: {reason}.", details={"url": url[:200], "reason": reason})


def _is_public(ip: IPAddress) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not ip.is_multicast


def _allowed_entries() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network], bool]:
    from django.conf import settings

    names: set[str] = set()
    networks = []
    allow_all = False
    for entry in getattr(settings, "INTEGRATIONS_ALLOWED_LOCAL_HOSTS", []) or []:
        entry = str(entry).strip().lower().rstrip(".")
        if not entry:
            continue
        if entry == "*":
            allow_all = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry)
    return names, networks, allow_all


def check_base_url(url: str, *, resolve: Resolver = resolve_host) -> str:
    """Return `url` (scheme and host lower-cased, fragment dropped) if it may be called; else raise
    `ValidationFailed` with the reason. `resolve(host, port)` is injectable for tests."""
    if not isinstance(url, str) or not url.strip():
        raise _refuse(str(url), "a URL is required")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(url, "it is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse(url, "only http and https URLs can be called")
    if parts.username is not None or parts.password is not None:
        raise _refuse(url, "credentials in the URL are not accepted; store them as the integration's credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _refuse(url, "the URL has no host")
    normalized = urlunsplit((scheme, parts.netloc.lower(), parts.path, parts.query, ""))

    names, networks, allow_all = _allowed_entries()
    if allow_all or host in names:
        return normalized
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port or 443)]
        except (OSError, UnicodeError, ValueError):
            raise _refuse(url, f"the host {host} cannot be resolved") from None
    if not addresses:
        raise _refuse(url, f"the host {host} cannot be resolved")
    if networks and all(any(ip in network for network in networks) for ip in addresses):
        return normalized
    if not all(_is_public(ip) for ip in addresses):
        raise _refuse(url, f"the host {host} is on a private, loopback or link-local network")
    if scheme != "https":
        raise _refuse(url, "only https is allowed for public hosts")
    return normalized

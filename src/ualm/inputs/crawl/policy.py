"""Which network destinations the crawler may contact.

Policy (checked on the URL, after DNS resolution and on the connected peer, for every hop of
every redirect):
- only `http` and `https` URLs with a host;
- public addresses are always allowed;
- loopback, private (RFC 1918, unique-local fc00::/7, shared 100.64/10) are refused unless
  `allow_private_network` is on (intranets, tests);
- link-local (169.254/16, fe80::/10, which hold cloud metadata services), the known metadata
  addresses, unspecified, multicast and reserved addresses are refused always, flag or not.
IPv4 addresses embedded in IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are
judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
    "169.254.170.2",  # AWS ECS task metadata
    "100.100.100.200",  # Alibaba Cloud
    "fd00:ec2::254",  # AWS IMDS over IPv6
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """A destination the policy refuses, with the crawl reason to record."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), or the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_refusal(address: str | IPAddress, allow_private: bool) -> str | None:
    """None when the crawler may connect to `address`, else why not (a human detail)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    candidate = embedded_ipv4(ip)  # a wrapper address is judged by the IPv4 it carries
    if candidate in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if candidate.is_link_local:
        return f"{ip} is link-local"
    if candidate.is_unspecified or candidate.is_multicast:
        return f"{ip} is unspecified or multicast"
    private = candidate.is_loopback or (
        not candidate.is_reserved and (candidate.is_private or candidate in _SHARED))
    if private and not allow_private:
        return f"{ip} is a loopback or private address (--allow-private-network permits it)"
    if not private and not candidate.is_global:
        return f"{ip} is a reserved or non-global address"
    return None


def check_url(url: str, allow_private: bool) -> tuple[str, str, int]:
    """Validates scheme and host; refuses literal addresses the policy forbids.
    Returns (scheme, host, port). Raises Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("crawl/bad_url", f"{url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("crawl/bad_url", f"{url!r}: only http and https URLs are fetched")
    host = parts.hostname
    if not host:
        raise Refused("crawl/bad_url", f"{url!r} has no host")
    # user:password@ is allowed: aiohttp sends it as Basic auth to this host only (a redirect
    # elsewhere drops it), and nothing written keeps it (`ualm.redact`)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if _legacy_ipv4(host):  # 2130706433, 0x7f.1, 0177.0.0.1: resolvers read them as IPs
            raise Refused("crawl/bad_url", f"{url!r}: non-canonical IPv4 address") from None
    if literal is not None:
        why = address_refusal(literal, allow_private)
        if why is not None:
            raise Refused("crawl/private_address", why)
    return scheme, host, port or (443 if scheme == "https" else 80)


def _legacy_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True

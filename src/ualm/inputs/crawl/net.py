"""The aiohttp session the crawler uses: a resolver that checks every address it returns, and
helpers that turn aiohttp's errors and headers into crawl reasons.

Addresses are checked where the connection is made: the resolver hands aiohttp only addresses
that passed `policy.address_refusal`, so a name cannot resolve to one address for the check and
another for the connection, and the socket factory checks the exact address each socket is
about to connect to (literal addresses never reach the resolver).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from ualm.config import CrawlConfig
from ualm.inputs.crawl.policy import address_refusal


class RefusedAddress(OSError):
    """Raised by the resolver; an OSError so aiohttp wraps it as a connection error."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CheckedResolver(ThreadedResolver):
    """The system resolver, refusing names that resolve to any forbidden address (all of a
    name's addresses are checked: a mixed answer is how rebinding tricks start)."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        hosts = await super().resolve(host, port, family)
        for entry in hosts:
            why = address_refusal(entry["host"], self._allow_private)
            if why is not None:
                raise RefusedAddress(f"{host} resolves to {why}")
        return hosts


def open_session(config: CrawlConfig) -> aiohttp.ClientSession:
    """A session with the config's limits; no cookies, no proxies from the environment."""
    connector = aiohttp.TCPConnector(
        limit=config.concurrency, limit_per_host=config.per_host_concurrency,
        resolver=CheckedResolver(config.allow_private_network), ttl_dns_cache=30,
        socket_factory=checked_socket_factory(config.allow_private_network))
    timeout = aiohttp.ClientTimeout(total=config.total_timeout,
                                    sock_connect=config.connect_timeout,
                                    sock_read=config.read_timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": config.user_agent, "Accept-Encoding": "identity"})


def checked_socket_factory(allow_private: bool) -> Callable[[Any], socket.socket]:
    """Makes each socket only after checking the exact address it will connect to: literal
    addresses (which skip the resolver) and every happy-eyeballs candidate included."""

    def factory(addr_info: Any) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        why = address_refusal(str(sockaddr[0]), allow_private)
        if why is not None:
            raise RefusedAddress(f"connecting to {why}")
        return socket.socket(family=family, type=kind, proto=proto)

    return factory


def refused_cause(exc: BaseException) -> RefusedAddress | None:
    """The resolver's refusal inside whatever aiohttp wrapped it in, if that is the cause."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, RefusedAddress):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


def opt_out_signal(headers: Any) -> str | None:
    """A detail when the response opts out of AI training: `X-Robots-Tag: noai` (alone or for
    a named bot, `bot: noai`) or the TDM reservation protocol's `tdm-reservation: 1`."""
    for value in headers.getall("X-Robots-Tag", []):
        for part in value.split(","):
            token = part.rsplit(":", 1)[-1].strip().lower()
            if token in ("noai", "noimageai"):
                return f"X-Robots-Tag: {value.strip()}"
    if headers.get("tdm-reservation", "").strip() == "1":
        return "tdm-reservation: 1"
    return None


def status_reason(status: int) -> str:
    """The reject reason of a final HTTP status."""
    if status in (401, 403, 404, 410, 429):
        return f"crawl/http_{status}"
    if 400 <= status < 500:
        return "crawl/http_4xx"
    if status >= 500:
        return "crawl/http_5xx"
    return "crawl/http_status"

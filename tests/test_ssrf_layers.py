"""Each SSRF defence layer of the crawler on its own, so that breaking one layer fails a test even
though the other layers would still refuse the address:

1. the URL check (`policy.check_url`), on the first URL and on every redirect target;
2. the resolver (`net.CheckedResolver`), which checks every address a name resolves to;
3. the socket factory (`net.checked_socket_factory`), which checks the address it connects to.

A refusal says which layer made it: the URL check's detail is the bare policy verdict
("127.0.0.1 is a loopback ..."), the resolver's starts "NAME resolves to", the socket factory's
starts "connecting to". Names resolve through a fake `socket.getaddrinfo` (the seam the
resolver's `loop.getaddrinfo` calls) under the reserved `.invalid` domain; the only traffic is to
a real HTTP server on 127.0.0.1, and no test connects to an address the fake returns unless it is
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import unquote

import pytest

from ualm.config import CrawlConfig
from ualm.inputs.crawl import net
from ualm.inputs.crawl.fetch import Fetcher, FetchResult
from ualm.inputs.crawl.policy import Refused, check_url
from ualm.testing.crawl_server import FaultyHandler, FaultyServer

BODY = b"RIFF" + bytes(range(256)) * 16  # binary, so the markup sniff keeps it
LOOPBACK = "127.0.0.1 is a loopback or private address (--allow-private-network permits it)"
PRIVATE = "10.0.0.7 is a loopback or private address (--allow-private-network permits it)"
METADATA = "169.254.169.254 is a cloud metadata address"

# Fake DNS: name -> the addresses getaddrinfo returns, in order. Only "loopback" is ever connected.
NAMES = {
    "loopback.ssrf.invalid": ["127.0.0.1"],
    "public-then-loopback.ssrf.invalid": ["8.8.8.8", "127.0.0.1"],
    "public-then-private.ssrf.invalid": ["8.8.8.8", "2606:4700::1111", "10.0.0.7"],
    "public-then-metadata.ssrf.invalid": ["8.8.8.8", "169.254.169.254"],
}


def _config(allow_private: bool) -> CrawlConfig:
    """Robots off: a robots.txt fetch checks its own first hop and would mask the layer tested."""
    return CrawlConfig(allow_private_network=allow_private, robots=False, retries=0,
                       per_host_rate=0, connect_timeout=5, read_timeout=5, total_timeout=10)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """`socket.getaddrinfo` answering NAMES; any other name fails (no real DNS is asked)."""

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in NAMES:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a test name")
        infos = []
        for address in NAMES[host]:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                              (address, int(port or 0), 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                              (address, int(port or 0))))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class _GotoHandler(FaultyHandler):
    """FaultyHandler plus `/goto?LOCATION`: a 302 to any (percent-decoded) Location."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/goto":
            self.server.hits[path] += 1
            self._send(302, headers={"Location": unquote(query)})
        else:
            super().do_GET()


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ssrf-served")
    (root / "a.wav").write_bytes(BODY)
    with FaultyServer(root) as served:
        served.RequestHandlerClass = _GotoHandler
        yield served


def _fetch(config: CrawlConfig, urls: list[str], tmp: Path) -> list[FetchResult]:
    async def run() -> list[FetchResult]:
        async with Fetcher(config, tmp) as fetcher:
            return list(await asyncio.gather(
                *(fetcher.fetch(u, tmp / f"f{i}") for i, u in enumerate(urls))))

    return asyncio.run(run())


# -- layer 1: the URL check -----------------------------------------------------------------------

@pytest.mark.parametrize(("url", "allowed", "detail"), [
    ("http://127.0.0.1:8080/a.wav", ("http", "127.0.0.1", 8080), LOOPBACK),
    ("https://10.0.0.7/a.wav", ("https", "10.0.0.7", 443), PRIVATE),
    ("http://[::1]/a.wav", ("http", "::1", 80),
     "::1 is a loopback or private address (--allow-private-network permits it)"),
], ids=["ipv4-loopback", "ipv4-private", "ipv6-loopback"])
def test_url_check_refuses_private_literals_unless_allowed(
        url: str, allowed: tuple[str, str, int], detail: str) -> None:
    with pytest.raises(Refused) as info:
        check_url(url, allow_private=False)
    assert (info.value.reason, info.value.detail) == ("crawl/private_address", detail)
    assert check_url(url, allow_private=True) == allowed  # the flag lets the same URL through


def test_fetcher_url_check_refuses_a_private_literal_before_connecting(
        server: FaultyServer, tmp_path: Path) -> None:
    url = f"{server.base}/audio/a.wav"
    refused = _fetch(_config(allow_private=False), [url], tmp_path)[0]
    assert not server.hits  # nothing reached the server
    # the bare verdict: the URL check refused it (the socket factory would say "connecting to")
    assert (refused.reason, refused.detail) == ("crawl/private_address", LOOPBACK)
    kept = _fetch(_config(allow_private=True), [url], tmp_path)[0]
    assert kept.reason is None and kept.path.read_bytes() == BODY
    assert server.hits["/audio/a.wav"] == 1


def test_every_redirect_target_goes_through_the_url_check(
        server: FaultyServer, tmp_path: Path) -> None:
    """Only the redirect target is refusable here (the server is allowed with the flag), and
    each refusal is one only the URL check gives: below it, the socket factory refuses the
    metadata address as "connecting to ...", and aiohttp fails the decimal IPv4 host and the ftp
    URL as `crawl/connection_error`, not `crawl/bad_url`."""
    port = server.server_address[1]
    targets = {
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "decimal": f"http://2130706433:{port}/audio/a.wav",
        "ftp": f"ftp://127.0.0.1:{port}/audio/a.wav",
        "allowed": f"{server.base}/audio/a.wav",
        "relative": "/audio/a.wav",
    }
    urls = [f"{server.base}/goto?{t}" for t in targets.values()]
    results = dict(zip(targets, _fetch(_config(allow_private=True), urls, tmp_path),
                       strict=True))
    assert {k: (r.reason, r.detail) for k, r in results.items()} == {
        "metadata": ("crawl/private_address", METADATA),
        "decimal": ("crawl/bad_url", f"'{targets['decimal']}': non-canonical IPv4 address"),
        "ftp": ("crawl/bad_url", f"'{targets['ftp']}': only http and https URLs are fetched"),
        "allowed": (None, ""), "relative": (None, ""),
    }
    for kept in ("allowed", "relative"):  # the flag lets a redirect to 127.0.0.1 through
        assert results[kept].path.read_bytes() == BODY
        assert results[kept].url == f"{server.base}/goto?{targets[kept]}"
    assert server.hits == {"/goto": len(targets), "/audio/a.wav": 2}


# -- layer 2: the resolver ------------------------------------------------------------------------

def _resolve(allow_private: bool, name: str) -> list[str] | str:
    """The real CheckedResolver on a fake answer: its addresses, or the refusal's detail."""

    async def run() -> list[str] | str:
        resolver = net.CheckedResolver(allow_private)
        try:
            return [entry["host"] for entry in await resolver.resolve(name, 80, socket.AF_UNSPEC)]
        except net.RefusedAddress as exc:
            return exc.detail

    return asyncio.run(run())


def test_resolver_refuses_a_private_answer_unless_allowed(fake_dns: None) -> None:
    name = "loopback.ssrf.invalid"
    assert _resolve(False, name) == f"{name} resolves to {LOOPBACK}"
    assert _resolve(True, name) == ["127.0.0.1"]


@pytest.mark.parametrize(("name", "without_the_flag", "with_the_flag"), [
    ("public-then-loopback.ssrf.invalid", LOOPBACK, ["8.8.8.8", "127.0.0.1"]),
    ("public-then-private.ssrf.invalid", PRIVATE, ["8.8.8.8", "2606:4700::1111", "10.0.0.7"]),
    ("public-then-metadata.ssrf.invalid", METADATA, METADATA),  # refused flag or not
], ids=["loopback-second", "private-third", "metadata-second"])
def test_resolver_checks_every_address_not_only_the_first(
        fake_dns: None, name: str, without_the_flag: str, with_the_flag: list[str] | str) -> None:
    """A public first address must not vouch for a forbidden later one (DNS rebinding)."""
    assert _resolve(False, name) == f"{name} resolves to {without_the_flag}"
    expected = with_the_flag if isinstance(with_the_flag, list) else (
        f"{name} resolves to {with_the_flag}")
    assert _resolve(True, name) == expected  # with the flag: every address, in order


def test_fetcher_resolver_refuses_a_name_for_a_private_address(
        fake_dns: None, server: FaultyServer, tmp_path: Path) -> None:
    """A name (not a literal) passes the URL check; the resolver refuses it before any socket is
    made, so the detail is the resolver's, not the socket factory's "connecting to ..."."""
    name = "loopback.ssrf.invalid"
    url = f"http://{name}:{server.server_address[1]}/audio/a.wav"
    check_url(url, allow_private=False)  # the URL check has nothing against it
    refused = _fetch(_config(allow_private=False), [url], tmp_path)[0]
    assert not server.hits
    assert (refused.reason, refused.detail) == ("crawl/private_address",
                                                f"{name} resolves to {LOOPBACK}")
    kept = _fetch(_config(allow_private=True), [url], tmp_path)[0]
    assert kept.reason is None and kept.path.read_bytes() == BODY
    assert server.hits["/audio/a.wav"] == 1


# -- layer 3: the socket factory ------------------------------------------------------------------

def test_socket_factory_refuses_a_private_peer_unless_allowed(server: FaultyServer) -> None:
    address = server.server_address[:2]
    info = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)
    with pytest.raises(net.RefusedAddress) as refused:
        net.checked_socket_factory(False)(info)
    assert refused.value.detail == f"connecting to {LOOPBACK}"
    metadata = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                ("169.254.169.254", 80))
    with pytest.raises(net.RefusedAddress) as refused:
        net.checked_socket_factory(True)(metadata)  # never allowed, flag or not
    assert refused.value.detail == f"connecting to {METADATA}"
    with net.checked_socket_factory(True)(info) as sock:  # the flag allows 127.0.0.1
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(b"GET /audio/a.wav HTTP/1.0\r\n\r\n")
        with sock.makefile("rb") as reply:
            assert reply.readline().startswith(b"HTTP/1.1 200 ")
    assert server.hits["/audio/a.wav"] == 1

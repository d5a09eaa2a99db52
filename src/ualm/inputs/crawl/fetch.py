"""Fetching one URL to a local file, as a well-behaved crawler: bounded concurrency overall and
per host, a per-host rate, retries with exponential backoff and full jitter (honouring
`Retry-After`), a size limit enforced while streaming, bounded redirects with the address policy
on every hop, robots.txt, opt-out headers, and content sniffed from the bytes.

    async with Fetcher(CrawlConfig(), tmpdir) as fetcher:
        result = await fetcher.fetch("https://example.org/a.flac", tmpdir / "0")
        result.reason  # None when result.path holds the body
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from ualm.config import CrawlConfig
from ualm.inputs.crawl import net
from ualm.inputs.crawl.cache import CacheEntry, FetchCache
from ualm.inputs.crawl.policy import Refused, check_url
from ualm.inputs.crawl.robots import RobotsCache
from ualm.inputs.crawl.sniff import looks_like_markup
from ualm.retry_after import retry_after

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FetchResult:
    """The body in `path` (reason None), or why there is none."""

    url: str
    path: Path | None = None
    reason: str | None = None
    detail: str = ""
    status: int | None = None
    size: int = 0
    attempts: int = 0
    temporary: bool = True
    """False when `path` is the cache's own copy (never delete it)."""
    retry_after: float | None = None
    transient: bool = False


class _Host:
    """Per-host concurrency and rate: requests start at least 1/rate seconds apart."""

    def __init__(self, config: CrawlConfig) -> None:
        self.slots = asyncio.Semaphore(config.per_host_concurrency)
        self.interval = 1.0 / config.per_host_rate if config.per_host_rate > 0 else 0.0
        self.next_start = 0.0

    async def turn(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """After a 429 or 503 with Retry-After, the whole host waits, not only one URL."""
        self.next_start = max(self.next_start, asyncio.get_running_loop().time() + seconds)


class Fetcher:
    """Fetches URLs concurrently within the config's limits; one per ingest unit."""

    def __init__(self, config: CrawlConfig, tmpdir: Path) -> None:
        self.config = config
        self.tmpdir = Path(tmpdir)
        self._hosts: dict[str, _Host] = {}
        self._slots: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._robots = RobotsCache(self)
        self._cache = FetchCache(config.cache_dir) if config.cache_dir else None

    async def __aenter__(self) -> Fetcher:
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._session = net.open_session(self.config)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, dest: Path, *, max_bytes: int | None = None,
                    robots_file: bool = False) -> FetchResult:
        """Follows redirects (each hop checked like the first) and returns the final result.
        `robots_file` fetches robots.txt itself: no robots check, opt-out, sniff or cache."""
        current, hops = url, 0
        while True:
            try:
                check_url(current, self.config.allow_private_network)
            except Refused as exc:
                return FetchResult(url, reason=exc.reason, detail=exc.detail)
            if not robots_file and self.config.robots:
                refusal = await self._robots.check(current)
                if refusal is not None:
                    return FetchResult(url, reason=refusal.reason, detail=refusal.detail)
            result = await self._with_retries(current, dest, max_bytes or self.config.max_bytes,
                                              robots_file)
            if result.status not in REDIRECTS or result.reason is not None:
                return replace(result, url=url)
            hops += 1
            if hops > self.config.max_redirects:
                return FetchResult(url, reason="crawl/too_many_redirects",
                                   detail=f"more than {self.config.max_redirects} redirects "
                                          f"(last to {result.detail})")
            current = urljoin(current, result.detail)

    async def _with_retries(self, url: str, dest: Path, max_bytes: int,
                            plain: bool) -> FetchResult:
        host = self._host(url)
        attempt = 0
        while True:
            attempt += 1
            assert self._slots is not None
            # The host's slot and turn first: a request waiting on its host must not hold one
            # of the global slots (requests to other hosts would queue behind it).
            async with host.slots:
                await host.turn()
                async with self._slots:
                    result = await self._attempt(url, dest, max_bytes, plain)
            result = replace(result, attempts=attempt)
            if not result.transient:
                return result
            dest.unlink(missing_ok=True)
            if attempt > self.config.retries:
                return result
            delay = self._backoff(attempt)
            if result.retry_after is not None:
                if result.retry_after > self.config.max_retry_after:
                    return replace(result, detail=result.detail +
                                   f" (Retry-After {result.retry_after:g} s is too long)")
                delay = result.retry_after
                host.pause(delay)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.max_backoff_seconds,
                  self.config.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(0, cap)  # full jitter: retries of many URLs do not march in step

    def _host(self, url: str) -> _Host:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}".lower()
        if key not in self._hosts:
            self._hosts[key] = _Host(self.config)
        return self._hosts[key]

    async def _attempt(self, url: str, dest: Path, max_bytes: int, plain: bool) -> FetchResult:
        """One request; transient failures say so, for `_with_retries` to decide."""
        assert self._session is not None
        cache = None if plain else self._cache
        cached = cache.lookup(url) if cache else None
        headers = cached.conditional_headers() if cached else {}
        if cached is not None and cache is not None and not headers:
            body = cache.body(url)  # nothing to revalidate with: reuse as it is
            return FetchResult(url, path=body, status=200, size=body.stat().st_size,
                               temporary=False)
        try:
            async with self._session.get(url, allow_redirects=False, headers=headers) as resp:
                return await self._response(url, resp, dest, max_bytes, plain, cached)
        except Refused as exc:
            return FetchResult(url, reason=exc.reason, detail=exc.detail)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return FetchResult(url, reason="crawl/timeout", detail=str(exc) or "timed out",
                               transient=True)
        except aiohttp.ClientPayloadError as exc:
            return FetchResult(url, reason="crawl/truncated", detail=str(exc), transient=True)
        except (aiohttp.ClientError, OSError) as exc:
            refused = net.refused_cause(exc)  # the resolver or socket factory said no
            if refused is not None:
                return FetchResult(url, reason="crawl/private_address", detail=refused.detail)
            reason = ("crawl/connect_error" if isinstance(exc, aiohttp.ClientConnectorError)
                      else "crawl/connection_error")
            return FetchResult(url, reason=reason, detail=f"{type(exc).__name__}: {exc}",
                               transient=True)

    async def _response(self, url: str, resp: aiohttp.ClientResponse, dest: Path,
                        max_bytes: int, plain: bool, cached: CacheEntry | None) -> FetchResult:
        status = resp.status
        if status in REDIRECTS:
            location = resp.headers.get("Location")
            if not location:
                return FetchResult(url, reason="crawl/bad_redirect", status=status,
                                   detail=f"HTTP {status} without a Location header")
            return FetchResult(url, status=status, detail=location)
        if status == 304 and cached is not None and self._cache is not None:
            body = self._cache.body(url)
            return FetchResult(url, path=body, status=status, size=body.stat().st_size,
                               temporary=False)
        if status == 429 or status >= 500:
            return FetchResult(url, reason=net.status_reason(status), status=status,
                               detail=f"HTTP {status}", transient=True,
                               retry_after=retry_after(resp.headers))
        if status != 200:
            return FetchResult(url, reason=net.status_reason(status), status=status,
                               detail=f"HTTP {status}")
        opted_out = None if plain else net.opt_out_signal(resp.headers)
        if opted_out is not None:
            return FetchResult(url, reason="crawl/opt_out", status=status, detail=opted_out)
        length = resp.content_length
        if length is not None and length > max_bytes:
            return FetchResult(url, reason="crawl/too_large", status=status,
                               detail=f"Content-Length {length:,} > {max_bytes:,} bytes")
        size = await _stream(resp, dest, max_bytes)
        if size > max_bytes:
            dest.unlink(missing_ok=True)
            return FetchResult(url, reason="crawl/too_large", status=status,
                               detail=f"body passed {max_bytes:,} bytes")
        if length is not None and size != length:
            return FetchResult(url, reason="crawl/truncated", status=status, transient=True,
                               detail=f"{size:,} of {length:,} bytes")
        if plain:
            return FetchResult(url, path=dest, status=status, size=size)
        markup = looks_like_markup(dest)
        if markup is not None:
            dest.unlink(missing_ok=True)
            return FetchResult(url, reason="crawl/not_audio", status=status,
                               detail=f"{markup} (Content-Type "
                                      f"{resp.headers.get('Content-Type', 'absent')})")
        if self._cache is not None:
            self._cache.store(url, dest, resp.headers)
        return FetchResult(url, path=dest, status=status, size=size)


async def _stream(resp: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> int:
    """Writes the body to dest; stops reading as soon as it passes max_bytes."""
    size = 0
    with open(dest, "wb") as handle:
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                break
            handle.write(chunk)
    return size

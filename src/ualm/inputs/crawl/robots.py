"""robots.txt, fetched once per host per unit and shared by every URL of that host.

Following RFC 9309: a 4xx robots.txt allows everything; a 5xx, a timeout or an unreachable
host disallows everything (the site may be struggling); redirects are followed (up to five).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from ualm.inputs.crawl.policy import Refused

if TYPE_CHECKING:
    from ualm.inputs.crawl.fetch import Fetcher

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB


class RobotsCache:
    """Verdicts per origin (scheme, host, port), each fetched once even under concurrency."""

    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher
        self._origins: dict[str, asyncio.Task[RobotFileParser | Refused]] = {}

    async def check(self, url: str) -> Refused | None:
        """None when robots.txt lets our User-Agent fetch `url`."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin not in self._origins:
            self._origins[origin] = asyncio.ensure_future(self._load(origin))
        rules = await asyncio.shield(self._origins[origin])
        if isinstance(rules, Refused):
            return rules
        agent = self._fetcher.config.user_agent.split("/", 1)[0]
        if not rules.can_fetch(agent, url):
            return Refused("crawl/robots", f"{origin}/robots.txt disallows this path for {agent}")
        return None

    async def _load(self, origin: str) -> RobotFileParser | Refused:
        with tempfile.TemporaryDirectory(dir=self._fetcher.tmpdir) as scratch:
            dest = Path(scratch) / "robots.txt"
            result = await self._fetcher.fetch(f"{origin}/robots.txt", dest,
                                               max_bytes=MAX_ROBOTS_BYTES, robots_file=True)
            rules = RobotFileParser()
            if result.reason is None:
                text = result.path.read_bytes().decode("utf-8", "replace") if result.path else ""
                rules.parse(text.splitlines())
            elif result.reason == "crawl/private_address":
                return Refused(result.reason, result.detail)
            elif result.reason == "crawl/too_large":
                rules.parse([])  # an oversize robots.txt is rare: read as no rules
            elif result.status is not None and 400 <= result.status < 500 and result.status != 429:
                rules.parse([])  # "unavailable": no rules
            else:
                return Refused("crawl/robots", f"{origin}/robots.txt unreachable "
                                               f"({result.reason}: {result.detail}): disallowed")
            return rules

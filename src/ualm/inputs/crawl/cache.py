"""An optional on-disk cache of fetched files, keyed by URL and revalidated by its validators.

A cached file with an ETag or Last-Modified is revalidated with a conditional request (a 304
reuses it); one without validators is reused as it is. Writes are atomic (temporary name, then
rename), so concurrent units and crashed runs never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.redact import redact_url


@dataclass(frozen=True)
class CacheEntry:
    url: str
    etag: str | None
    last_modified: str | None

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class FetchCache:
    """`<dir>/<sha256(url)[:2]>/<sha256(url)>.body` and `.json` (url and validators)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser()

    def _base(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.folder / digest[:2] / digest

    def body(self, url: str) -> Path:
        return self._base(url).with_suffix(".body")

    def lookup(self, url: str) -> CacheEntry | None:
        meta = self._base(url).with_suffix(".json")
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if data.get("url") != redact_url(url) or not self.body(url).is_file():
            return None
        return CacheEntry(url, data.get("etag"), data.get("last_modified"))

    def store(self, url: str, source: Path, headers: Any) -> None:
        base = self._base(url)
        base.parent.mkdir(parents=True, exist_ok=True)
        tmp = base.with_suffix(f".tmp{os.getpid()}-{id(source)}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, self.body(url))
        meta = {"url": redact_url(url), "etag": headers.get("ETag"),  # no credentials on disk
                "last_modified": headers.get("Last-Modified")}
        tmp.write_text(json.dumps(meta, sort_keys=True))
        os.replace(tmp, base.with_suffix(".json"))

"""How long a server asked us to wait: the one `Retry-After` parser of the crawler and the
teachers.

`retry-after-ms` (OpenAI's and others' millisecond header) wins over `Retry-After`, which is
delta-seconds or an HTTP date. Anything else (`soon`, a negative number, `nan`, `inf`, a date
that does not parse) is None, and the caller falls back to its own backoff: a header we cannot
read never crashes a run and never becomes a wait of `nan` seconds.

>>> retry_after({"Retry-After": "7"})
7.0
>>> retry_after({"retry-after-ms": "250", "Retry-After": "7"})
0.25
>>> retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0)
10.0
>>> [retry_after({"Retry-After": v}) for v in ("soon", "nan", "-3", "inf", "")]
[None, None, None, None, None]
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any


def retry_after(headers: Mapping[str, str] | Any | None, now: float | None = None
                ) -> float | None:
    """Seconds to wait, finite and >= 0, or None when the headers ask for nothing readable.
    `headers` is any mapping (aiohttp's and httpx's are case-insensitive; a plain dict is
    searched case-insensitively too); `now` is the clock for HTTP dates (default: time.time())."""
    if headers is None:
        return None
    ms = _seconds(_header(headers, "retry-after-ms"))
    if ms is not None:
        return ms / 1000
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    return _until_date(value, time.time() if now is None else now)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return None if value is None else str(value).strip()


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _until_date(value: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - now)

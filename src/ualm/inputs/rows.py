"""Normalising one raw manifest row (a dict from JSONL, CSV or parquet) into record fields.

Three shapes are understood as they are published:
- our own rows: `path` or `url`, optional `id`, `caption(s)`, `source`, `license`, `task`,
  `language`, `start`, `end`, anything else kept under `extra`;
- UALM generation rows: `location`, `start_time`, `end_time`, `duration`, `caption`, `sample_rate`;
- UALM understanding rows: `id`, `sound`, `duration`, `conversations` (kept under `extra`);
- text-only chat rows: `messages` (a list of `{role, content}`), task `text`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ualm.inputs.records import is_utf8, printable

OWN_COLUMNS = ("id", "path", "url", "caption", "captions", "source", "license", "task",
               "language", "start", "end", "messages")
UALM_GENERATION = ("location", "start_time", "end_time", "duration", "sample_rate")
UALM_UNDERSTANDING = ("sound", "duration")
MAX_DEPTH = 64
"""Deepest nesting a row's JSON may have: a row nested thousands deep would overflow the
parser's stack (or a later stage's, re-reading the record deeper in its own calls)."""


class RowError(Exception):
    """A manifest row that cannot become an input, with its reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def loads_row(text: str | bytes, where: str) -> Any:
    """A row's JSON; RowError `manifest/bad_json` when it is not JSON or nests past the
    parser's stack (a crafted row must cost its own input, never the unit)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowError("manifest/bad_json", f"{where}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8 bytes, too deep, too many digits
        raise RowError("manifest/bad_json", f"{where}: {str(exc)[:200]}") from None


def _check_values(row: dict[str, Any]) -> None:
    """RowError when the row nests deeper than MAX_DEPTH or holds text that is not UTF-8 (a
    `\\udXXX` escape: no table can store it). Iterative: a deep value must not recurse here."""
    stack: list[tuple[Any, int]] = [(row, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not is_utf8(item):
                raise RowError("manifest/bad_value",
                               f"text is not UTF-8 (a lone surrogate): {printable(item)[:200]}")
            continue
        children = [*item, *item.values()] if isinstance(item, dict) else item if isinstance(
            item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise RowError("manifest/bad_json", f"row nests deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def normalise_row(row: Any, default_source: str) -> dict[str, Any]:
    """Returns InputRecord fields (without `index`); raises RowError for a malformed row."""
    if not isinstance(row, dict):
        raise RowError("manifest/bad_json", f"row is a {type(row).__name__}, not an object")
    _check_values(row)
    row = dict(row)
    fields: dict[str, Any] = {}
    if "location" in row and "path" not in row:
        fields["task"] = "generation"
        row["path"] = row.pop("location")
        row["start"] = row.pop("start_time", None)
        row["end"] = row.pop("end_time", None)
        _drop_derivable(row, "duration", "sample_rate")
    elif "sound" in row and "path" not in row:
        fields["task"] = "understanding"
        row["path"] = row.pop("sound")
        _drop_derivable(row, "duration")

    if row.get("id") is not None:
        if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or not str(row["id"]):
            raise RowError("manifest/bad_type", f"id must be a non-empty string, got {row['id']!r}")
        fields["input_id"] = str(row["id"])

    messages = row.get("messages")
    if messages is not None:
        fields["messages"] = _messages(messages)
        fields["task"] = "text"
    else:
        path, url = row.get("path"), row.get("url")
        if path is None and url is None:
            raise RowError("manifest/missing_path", "row has no path, url, location or sound")
        if path is not None:
            fields["path"] = _text(path, "path")
            if "\0" in fields["path"]:  # no file system names one; os calls raise on it
                raise RowError("manifest/bad_value", "path holds a NUL character")
        if url is not None:
            fields["url"] = _text(url, "url")

    fields["captions"] = _captions(row.get("captions", row.get("caption")))
    fields["source"] = _optional_text(row.get("source"), "source") or default_source
    for name in ("license", "task", "language"):
        value = _optional_text(row.get(name), name)
        if value is not None:
            fields[name] = value
    start = _seconds(row.get("start"), "start")
    end = _seconds(row.get("end"), "end")
    if start is not None:
        fields["start"] = start
    if end is not None:
        if end <= (start or 0.0):
            raise RowError("manifest/bad_value", f"end ({end}) must be after start ({start or 0})")
        fields["end"] = end
    extra = {k: v for k, v in row.items() if k not in OWN_COLUMNS}
    fields["extra"] = json.dumps(extra, sort_keys=True, default=str, ensure_ascii=False)
    return fields


def _drop_derivable(row: dict[str, Any], *names: str) -> None:
    """Duration and rate come from the audio itself; the manifest's copies are not trusted."""
    for name in names:
        row.pop(name, None)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RowError("manifest/bad_type", f"{name} must be a non-empty string, got {value!r}")
    return value


def _optional_text(value: Any, name: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _text(value, name)


def _captions(value: Any) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise RowError("manifest/bad_type", f"caption must be a string or a list of strings, got {value!r}")


def _seconds(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise RowError("manifest/bad_type", f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise RowError("manifest/bad_value", f"{name} must be a finite, non-negative number, got {value!r}")
    return seconds


def _messages(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowError("manifest/bad_type", "messages must be a list of {role, content}") from None
    if not isinstance(value, list) or not value:
        raise RowError("manifest/bad_type", "messages must be a non-empty list of {role, content}")
    clean = []
    for message in value:
        if (not isinstance(message, dict) or not isinstance(message.get("role"), str)
                or not isinstance(message.get("content"), str)):
            raise RowError("manifest/bad_type", f"each message needs string role and content, got {message!r}")
        clean.append({"role": message["role"], "content": message["content"]})
    return json.dumps(clean, sort_keys=True, ensure_ascii=False)

"""Shared helpers: URL checks for listed rows and records built from source rows."""

from __future__ import annotations

import dataclasses
from typing import Any

from ualm.inputs.records import InputRecord
from ualm.inputs.rows import RowError, normalise_row

# Fields a source row may not set: where the audio comes from is the source's own locator.
LOCATION_FIELDS = ("path", "url", "location", "sound", "messages")


def check_web_url(record: InputRecord) -> InputRecord:
    """A listed URL must be http(s) with a host; anything else is `crawl/bad_url` at once (a
    manifest must not reach local files or other sources through `url`)."""
    from ualm.inputs.crawl.policy import Refused, check_url

    if record.url is None or record.path is not None or record.reject_reason is not None:
        return record
    try:
        check_url(record.url, allow_private=True)  # addresses are judged when fetching
    except Refused as exc:
        if exc.reason == "crawl/bad_url":
            return dataclasses.replace(record, reject_reason=exc.reason, reject_detail=exc.detail)
    return record


def source_record(row: dict[str, Any], *, index: int, default_id: str, locator: str,
                  source: str, columns: dict[str, str], line: int | None = None) -> InputRecord:
    """An InputRecord for one source row (a dataset row, a tar sample's metadata); a malformed
    row becomes a record rejected with its `manifest/...` reason, like a manifest row."""
    renamed = {columns.get(k, k): v for k, v in row.items()}
    for name in LOCATION_FIELDS:
        if name in renamed:
            renamed[f"source_{name}"] = renamed.pop(name)
    renamed["url"] = locator
    try:
        fields = normalise_row(renamed, default_source=source)
    except RowError as err:
        return InputRecord(index=index, input_id=default_id, url=locator, source=source,
                           reject_reason=err.reason, reject_detail=err.detail, line=line)
    fields.setdefault("input_id", default_id)
    return InputRecord(index=index, line=line, **fields)

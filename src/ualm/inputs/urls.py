"""`urls.txt`: one URL per line; blank lines and lines starting with `#` are skipped."""

from __future__ import annotations

from pathlib import Path

from ualm.errors import UalmError
from ualm.inputs.records import InputRecord
from ualm.inputs.source_rows import check_web_url


def list_urls(path: Path, start: int) -> list[InputRecord]:
    """One record per URL, its id the URL (a repeat gets its line number)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UalmError(f"cannot read URL list {path}: {exc.strerror}") from exc
    records: list[InputRecord] = []
    seen: set[str] = set()
    for line_no, text in enumerate(lines, start=1):
        url = text.strip()
        if not url or url.startswith("#"):
            continue
        input_id = url if url not in seen else f"{url}#L{line_no}"
        seen.add(url)
        record = InputRecord(index=start + len(records), input_id=input_id, url=url,
                             source=path.stem, line=line_no)
        records.append(check_web_url(record))
    return records

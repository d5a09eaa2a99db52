"""Audio on an object store (`s3://`, `gs://`, any fsspec URL) copied to the unit's own
temporary folder, on the worker: existence and size are learnt there, and a missing or
unreadable object becomes the reject a local file would get (`input/missing_file`,
`input/unreadable`), never a failed unit.

Copies run on a few threads, at most `LOOKAHEAD` objects ahead of the one being decoded, so
downloads overlap decoding while the disk holds a bounded number of files (each is deleted as
soon as it is decoded, and the folder when the unit ends). Credentials come from the store's
usual chain (environment, profiles; `AWS_ENDPOINT_URL` for S3-compatible stores).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ualm.audio.errors import AudioRejected
from ualm.inputs.records import InputRecord
from ualm.manifests.storage import filesystem, is_remote

LOOKAHEAD = 4
"""Objects copied ahead of the one being decoded (and threads copying them)."""


def fetch_object(url: str, dest: Path) -> Path:
    """Copies one object to `dest`. Raises AudioRejected with an `input/...` reason."""
    try:
        fs, inner = filesystem(url)
        fs.get_file(inner, str(dest))  # one GET; FileNotFoundError when there is no object
    except FileNotFoundError as exc:
        raise AudioRejected("input/missing_file", url) from exc
    except PermissionError as exc:
        raise AudioRejected("input/unreadable", f"{url}: access denied") from exc
    except Exception as exc:  # network, a missing backend: the row, not the unit, fails
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise AudioRejected("input/unreadable", f"{url}: {type(exc).__name__}: {detail}") from exc
    return dest


class RemoteObjects:
    """The remote-path records of one unit, copied in order, a few ahead."""

    def __init__(self, records: list[InputRecord]) -> None:
        self.records = [r for r in records if r.reject_reason is None and r.path is not None
                        and is_remote(r.path)]
        self._order = {r.index: i for i, r in enumerate(self.records)}
        self._futures: dict[int, Future[Path]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._next = 0

    def obtain(self, record: InputRecord, folder: Path) -> Path:
        """The record's object as a file in `folder`. Raises AudioRejected."""
        assert record.path is not None
        at = self._order.get(record.index)
        if at is None:  # not among the unit's records as listed: copy it now
            return fetch_object(record.path, folder / f"obj-{record.index}")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(LOOKAHEAD, thread_name_prefix="ualm-objects")
        while self._next < len(self.records) and self._next <= at + LOOKAHEAD:
            ahead = self.records[self._next]
            assert ahead.path is not None
            self._futures[ahead.index] = self._pool.submit(
                fetch_object, ahead.path, folder / f"obj-{ahead.index}")
            self._next += 1
        return self._futures.pop(record.index).result()

    def close(self) -> None:
        """Waits for copies in flight (none may write after the folder is removed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()

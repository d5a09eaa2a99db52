"""Running out of room: a full disk, a quota, a read-only or unwritable output.

None of these is one input's fault, so none may become rejects, and retrying elsewhere does not
help: the build stops with one line that names the folder (or bucket) and what it needs. The
output is checked before any work (`check_output`); a unit that fails on one of these errnos
(`is_exhausted`, in the driver's stage loop) and an OSError in the driver itself
(`output_errors`) end as the same `UalmError`. Finished units keep their completion records, so
a rerun after the fix redoes only the rest and ends with the same bytes as a clean build.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
NO_WRITE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
BYTES_PER_INPUT = 2 * 53_200_000 * 9.6 // 3600
"""About 284 kB per input at most while a build runs: docs/scale.md measures 53.2 MB of FLAC
shards per audio hour and UALM's clips average 9.6 s (80,000 h in 30M clips); each window's
bytes are staged once in a unit payload and again in its shard until the commit removes the
payloads. A rough figure (long inputs cut into many windows need more), used for a warning."""
_FIX = "then rerun the same command: finished units are kept"


def is_exhausted(code: int | None, filename: str | None, detail: str, layout: CorpusLayout
                 ) -> bool:
    """Whether an OSError with this errno is the output's fault, not an input's: no space
    anywhere (only writes fill a disk), or no permission on a file of the output (reading an
    unreadable input is that input's reject)."""
    if code in NO_SPACE or code == errno.EROFS:
        return True
    if code not in NO_WRITE:
        return False
    root = str(layout.root)
    return filename.startswith(root) if filename else root in detail


def exhausted_error(layout: CorpusLayout, code: int | None, filename: str | None,
                    inputs: int) -> UalmError:
    """The one line for an exhausted output: the folder (the corpus, or the worker's temporary
    folder the error named), and the space or permission it needs."""
    folder = _folder(layout, filename)
    if code in NO_SPACE:
        quota = " (disk quota exceeded)" if code == errno.EDQUOT else ""
        return UalmError(f"no space left on {folder}{quota}{_space(layout, folder, inputs)}",
                         fix=f"free space or choose another --out, {_FIX}")
    if code == errno.EROFS:
        return UalmError(f"cannot write to {folder}: the file system is read-only",
                         fix=f"remount it read-write or choose another --out, {_FIX}")
    return UalmError(f"cannot write to {folder}: permission denied",
                     fix=f"give this user write permission on it (chmod, chown) or choose "
                         f"another --out, {_FIX}")


@contextmanager
def output_errors(layout: CorpusLayout, inputs: int) -> Iterator[None]:
    """An exhausted output met by the driver itself (a completion record, the commit) as the
    same one line; any other OSError goes on as it was."""
    try:
        yield
    except OSError as exc:
        filename = None if exc.filename is None else str(exc.filename)
        if not is_exhausted(exc.errno, filename, str(exc), layout):
            raise
        raise exhausted_error(layout, exc.errno, filename, inputs) from exc


def check_output(layout: CorpusLayout) -> None:
    """Before any work: the output can be created and written (a probe file, or a probe object
    in a store), or one line says why not."""
    try:
        layout.check_writable()
    except OSError as exc:
        code = exc.errno if exc.errno in NO_SPACE | NO_WRITE else None
        if code is None:
            raise UalmError(f"cannot write to output folder {layout.root}: {exc.strerror}",
                            fix="choose a writable --out folder") from exc
        raise exhausted_error(layout, code, None, 0) from exc


def warn_if_short(layout: CorpusLayout, inputs: int) -> str | None:
    """A warning (printed, and returned) when a local output's free space is clearly below the
    rough need of `inputs` inputs; the build goes on, since the figure is an estimate."""
    if not layout.local:
        return None
    needed, free = estimate_bytes(inputs), _free(Path(layout.root))
    if free is None or free >= needed:
        return None
    line = (f"ualm: warning: {layout.root} has {_gb(free)} free; a build of {inputs:,} inputs "
            f"may need about {_gb(needed)} (about {BYTES_PER_INPUT / 1e3:.0f} kB per 10 s "
            "input while it runs)")
    print(line, file=sys.stderr)
    return line


def estimate_bytes(inputs: int) -> int:
    return int(inputs * BYTES_PER_INPUT)


def _folder(layout: CorpusLayout, filename: str | None) -> str:
    root = str(layout.root)
    if not layout.local:
        return layout.location
    if filename is None or filename.startswith(root):
        return root
    return str(Path(filename).parent)  # a worker's own temporary folder, say


def _space(layout: CorpusLayout, folder: str, inputs: int) -> str:
    if not layout.local:
        return ""
    free = _free(Path(folder))
    written = _bytes_under(Path(layout.root)) if folder == str(layout.root) else 0
    more = estimate_bytes(inputs) - written
    need = ("" if not inputs else f"needs about {_gb(more)} more, " if more > 0
            else f"needs more than the estimate of {_gb(estimate_bytes(inputs))}, ")
    return f" ({need}{_gb(written)} written so far; free: {_gb(free or 0)})"


def _free(folder: Path) -> int | None:
    """Free bytes on the disk that holds `folder` (its nearest existing parent)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _bytes_under(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed meanwhile
                continue
    return total


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"

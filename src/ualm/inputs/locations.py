"""Where inputs live: a local path, or a URL of any fsspec store (`s3://`, `gs://`, `memory://`,
...) read through `ualm.manifests.storage` (the S3 retry settings, `AWS_ENDPOINT_URL` and the
usual credential chain; nothing here names a credential).

Paths in a manifest resolve against the manifest's own folder, local or remote, and must land
under an allowed root. One rule for both kinds: a relative path is joined to the manifest's
folder and normalised (`..` folded: `os.path.realpath` locally, `posixpath.normpath` on a URL's
key); an absolute path or URL is taken as given; either is kept only when it lies under the
manifest's folder or an `--allow-root` (a local folder or a URL prefix). So a row of
`s3://b/m/list.jsonl` naming `audio/x.flac` is `s3://b/m/audio/x.flac`, and one naming
`../../other/x.wav`, `/etc/passwd` or `s3://another-bucket/x.wav` is rejected unless a root
permits it.

>>> resolve("s3://b/m", "audio/../x.flac"), resolve("s3://b/m", "../../o/x.wav")
('s3://b/m/x.flac', 's3://b/../o/x.wav')
>>> within("s3://b/m/x.flac", "s3://b/m"), within("s3://b/mx/y", "s3://b/m")
(True, False)
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import unquote, urlsplit

from ualm.errors import UalmError
from ualm.manifests.storage import filesystem, fs_size, is_remote

__all__ = ["input_errors", "is_remote", "normalise_url", "open_binary", "open_source",
           "read_range", "reading", "remote_size", "resolve", "root_location", "within"]


def normalise_url(url: str) -> str:
    """`scheme://bucket/key` with `.` and `..` folded in the key (a `..` that climbs above the
    bucket stays, so the URL lies under no root) and no trailing slash."""
    scheme, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    key = posixpath.normpath(key) if key.strip("/") else ""
    return f"{scheme}://{bucket}" + (f"/{key}" if key and key != "." else "")


def resolve(base: str, path: str) -> str:
    """A manifest row's path, resolved against the manifest's folder `base`."""
    if is_remote(path):
        return normalise_url(path)
    if is_remote(base) and not path.startswith("/"):
        return normalise_url(f"{base}/{path}")
    return os.path.realpath(os.path.join(base, path))


def within(resolved: str, root: str) -> bool:
    return resolved == root or resolved.startswith(root.rstrip("/") + "/")


def root_location(root: str) -> str:
    """An allowed root as `within` compares it: a normalised URL or a resolved local path."""
    return normalise_url(root) if is_remote(root) else os.path.realpath(root)


@contextmanager
def input_errors(url: str) -> Iterator[None]:
    """A store's failures on an input as one line naming the URL, never a credential."""
    try:
        yield
    except FileNotFoundError as exc:
        raise UalmError(f"input not found: {url}",
                        fix="check the --input URL, the bucket and AWS_ENDPOINT_URL") from exc
    except PermissionError as exc:
        raise UalmError(f"access denied to input {url}",
                        fix="grant this identity read access to the object, or use other "
                            "credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID)") from exc
    except UalmError:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise UalmError(f"cannot read input {url}: {type(exc).__name__}: {detail}",
                        fix="check the URL, your credentials and the network") from exc


def reading(location: str) -> AbstractContextManager[None]:
    """`input_errors` around the reads of a remote input (a store may refuse the reads after
    it answered the existence check); nothing for a local one."""
    return input_errors(location) if is_remote(location) else nullcontext()


def remote_size(url: str) -> int:
    """The size of a remote input file; one-line UalmError when it is missing or unreadable."""
    with input_errors(url):
        fs, inner = filesystem(url)
        return fs_size(fs, inner, url)


def open_binary(location: str) -> Any:
    """A binary file object on a local manifest or a remote one (read in large blocks)."""
    if not is_remote(location):
        try:
            return open(location, "rb")
        except OSError as exc:
            raise UalmError(f"cannot read manifest {location}: {exc.strerror}") from exc
    with input_errors(location):
        fs, inner = filesystem(location)
        return fs.open(inner, "rb")


def open_source(location: str, block_size: int | None = None) -> Any:
    """A seekable binary file object on a source's file (a tar, a parquet file, a URL list): a
    local path, a `file://` URL or a store's URL (reads are ranged requests, each at most
    `block_size` past what was asked when given). A missing file raises FileNotFoundError, a
    denied read PermissionError: callers say what that means."""
    if location.startswith("file://"):
        location = unquote(urlsplit(location).path)
    if not is_remote(location):
        return open(location, "rb")
    fs, inner = filesystem(location)
    return fs.open(inner, "rb", **({"block_size": block_size} if block_size else {}))


def read_range(location: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a manifest: one ranged request on a store."""
    if not is_remote(location):
        try:
            with open(location, "rb") as handle:
                handle.seek(start)
                return handle.read(end - start)
        except OSError as exc:
            raise UalmError(f"cannot read manifest {location}: {exc.strerror}") from exc
    if end <= start:
        return b""
    with input_errors(location):
        fs, inner = filesystem(location)
        return bytes(fs.cat_file(inner, start=start, end=end))

"""Publishing to an object store (s3://, gs://, ...) or a folder through fsspec.

Object stores have no content hashes we can rely on across providers (an S3 ETag is an MD5 only
for single-part uploads), so the store keeps its own sidecar index under `.ualm-publish/index/`:
one small part per batch (`00000012.json`: path -> sha256 and size of every file the batch sent
and verified), later parts overriding earlier ones, so a publish of thousands of files does not
rewrite an ever larger index. A file counts as there when the index has it with the size the
listing shows. A file that is there but not yet indexed
(the run stopped between the upload and the index update) is read back and hashed instead of
sent again. Every upload is read back and hashed before it enters the index. The completion
object, `publish.json`, is written last, after corpus.json.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from ualm.errors import UalmError
from ualm.manifests import storage
from ualm.publish.destinations import StoreDestination
from ualm.publish.plan import FileEntry

INDEX = ".ualm-publish/index/"


def _store_error(action: str, exc: Exception) -> UalmError:
    first = (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0]
    if isinstance(exc, PermissionError) or "credential" in first.lower() \
            or "AccessDenied" in first or "Forbidden" in first:
        return UalmError(f"no permission to {action}: {first}",
                         fix="provide credentials with write access (for s3://: "
                             "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile)")
    return UalmError(f"could not {action}: {first}",
                     fix="check the URL, credentials and network, then rerun the same command: "
                         "what already arrived is kept and not sent again")


class FsspecStore:
    """A prefix of an fsspec filesystem as a publish destination."""

    def __init__(self, destination: StoreDestination, workers: int = 8) -> None:
        self.destination, self.workers = destination, workers
        if storage.is_remote(destination.url):
            self.fs, self.root = storage.filesystem(destination.url)
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.fs, self.root = LocalFileSystem(), destination.url
        self.root = self.root.rstrip("/")
        self.local = not storage.is_remote(destination.url)
        self.index: dict[str, dict[str, Any]] = {}
        self.parts = 0  # index parts at the destination; the next one is numbered after them
        self.loaded: set[str] = set()  # parts already read (or written) by this publisher
        self.learned: dict[str, dict[str, Any]] = {}  # read-back hashes, for the next part
        self.read_back = 0  # files found unindexed at the destination and hashed there

    @property
    def url(self) -> str:
        return self.destination.url

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def prepare(self) -> None:
        try:
            if self.local:
                self.fs.makedirs(self.root, exist_ok=True)
            else:
                self.fs.ls(self.root.split("/", 1)[0])  # the bucket exists and is readable
        except FileNotFoundError as exc:
            raise UalmError(f"{self.url}: the bucket does not exist",
                            fix="create the bucket first (ualm writes objects, not buckets)") from exc
        except Exception as exc:
            raise _store_error(f"open {self.url}", exc) from exc

    def existing(self) -> dict[str, Any]:
        """What the destination holds: path -> size, with the index loaded beside it."""
        try:
            listing = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            listing = {}
        except Exception as exc:
            raise _store_error(f"list {self.url}", exc) from exc
        sizes = {name[len(self.root) + 1:]: int(info["size"]) for name, info in listing.items()
                 if name.startswith(self.root + "/") and info.get("type") == "file"}
        parts = sorted(p for p in sizes if p.startswith(INDEX) and p.endswith(".json"))
        self.parts = max(self.parts, len(parts))
        for part in parts:
            if part in self.loaded:
                continue
            self.loaded.add(part)
            try:
                self.index.update(json.loads(self.fs.cat_file(self._path(part)))["files"])
            except (ValueError, KeyError):
                continue  # a damaged part: its files are checked by reading them back
        return sizes

    def matches(self, size: int | None, entry: FileEntry) -> bool:
        if size is None or size != entry.size:
            return False
        known = self.index.get(entry.path)
        if known is not None and known["bytes"] == size:
            return known["sha256"] == entry.sha256
        if self._hash_remote(entry.path, size) != entry.sha256:
            return False
        self.read_back += 1
        self.index[entry.path] = self.learned[entry.path] = entry.to_dict()
        return True

    def _hash_remote(self, rel: str, size: int) -> str:
        if size <= 1 << 26:  # one GET; opening a file costs a HEAD first
            return hashlib.sha256(self.fs.cat_file(self._path(rel))).hexdigest()
        digest = hashlib.sha256()
        with self.fs.open(self._path(rel), "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        return digest.hexdigest()

    def send(self, batch: list[FileEntry], message: str, index: bool = True) -> None:
        """Uploads, reads back and checks each file, then records the batch in the index
        (unless `index` is false: the completion object is the last write of all)."""
        from concurrent.futures import ThreadPoolExecutor

        # Object stores answer each request slowly but many at once: files go in parallel
        # (each read back whole only up to 64 MiB, so memory stays bounded).
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(batch)))) as pool:
            for entry, arrived in zip(batch, pool.map(self._send_one, batch), strict=True):
                if arrived != entry.sha256:
                    raise UalmError(f"{entry.path} arrived at {self.url} with sha256 "
                                    f"{arrived[:12]}…, not {entry.sha256[:12]}…",
                                    fix="rerun the same command to send it again")
                self.index[entry.path] = entry.to_dict()
        if index:
            self._write_index({**self.learned, **{e.path: e.to_dict() for e in batch}})
            self.learned = {}

    def _send_one(self, entry: FileEntry) -> str:
        """Uploads one file and returns the sha256 of what arrived."""
        try:
            self._put(entry)
            return self._hash_remote(entry.path, entry.size)
        except Exception as exc:
            raise _store_error(f"write {entry.path} to {self.url}", exc) from exc

    def _put(self, entry: FileEntry) -> None:
        target = self._path(entry.path)
        # An object store shows an object whole or not at all; a folder needs a temporary name
        # and a rename for readers to see the same.
        tmp = f"{target}.{uuid.uuid4().hex[:8]}.tmp" if self.local else target
        if self.local:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        if entry.data is not None:
            self.fs.pipe_file(tmp, entry.data)
        else:
            self.fs.put_file(str(entry.local), tmp)
        if self.local:
            self.fs.mv(tmp, target)

    def _write_index(self, files: dict[str, dict[str, Any]]) -> None:
        data = json.dumps({"files": files}, indent=1, sort_keys=True).encode()
        part = f"{INDEX}{self.parts:08d}.json"
        self._put(FileEntry.of_bytes(part, data))
        self.loaded.add(part)
        self.parts += 1

    def close(self) -> None:
        pass

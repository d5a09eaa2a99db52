"""What a publish sends: every file of the corpus but `_work/`, with its sha256 and size,
checked against the hashes the build recorded, and cut into batches.

The build's completion records (`_work/done/*.json`) hold the sha256 of every shard and manifest
part a unit wrote; a file that no longer matches its record was changed or damaged after the
build, and is refused rather than published. Files no record covers (corpus.json, the card,
trace and pair shards written by later stages, a blend spec) are hashed as they are.

Order matters for readers: `corpus.json` (which ualm readers take as "complete") and the
dataset card go in the last batch, with the publish record; everything else before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ualm.errors import UalmError
from ualm.manifests.layout import CORPUS_FILE, WORK, CorpusLayout, done_records, sha256_file
from ualm.manifests.names import CARD

RECORD = "publish.json"
"""The publish record: every published file with its sha256 and size; written last."""
LAST = (CARD, CORPUS_FILE)


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Relative to the corpus root, with forward slashes."""
    sha256: str
    size: int
    local: Path | None = field(default=None, compare=False)
    """Where the bytes are on disk, or None when they are held in `data`."""
    data: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_bytes(cls, path: str, data: bytes) -> FileEntry:
        """A file made at publish time (the card, the blend spec, the publish record)."""
        return cls(path, hashlib.sha256(data).hexdigest(), len(data), None, data)

    def read(self) -> bytes:
        return self.data if self.data is not None else self.local.read_bytes()  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "bytes": self.size}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's bytes (what the Hub lists for files not stored in LFS)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _recorded(layout: CorpusLayout) -> dict[str, dict]:
    recorded: dict[str, dict] = {}
    for record in done_records(layout):  # a damaged one is skipped: the files get hashed
        files = record.get("files", {})
        recorded.update({k: v for k, v in files.items() if not k.startswith(WORK + "/")})
    return recorded


def _published(layout: CorpusLayout) -> Iterator[tuple[str, Path]]:
    """(relative name, local file) of every file to publish (a corpus is published from a
    local folder)."""
    for path in layout.walk():
        parts = layout.relative(path).split("/")
        if parts[0] == WORK:
            continue
        if any(part.startswith(".") for part in parts):
            continue  # temporary names of atomic writes, editor and OS droppings
        yield "/".join(parts), layout.local_path(path)


class _HashCache:
    """sha256 of files by (size, mtime): a resumed publish of a large corpus stats its files
    instead of reading them all again. Kept in `_work/` (never published); a corpus on a
    read-only mount just goes without."""

    def __init__(self, layout: CorpusLayout) -> None:
        self.layout, self.path = layout, layout.publish_hashes
        try:
            self.known: dict[str, list] = layout.read_json(self.path)
        except (OSError, ValueError):
            self.known = {}
        self.fresh: dict[str, list] = {}

    def sha256(self, rel: str, path: Path) -> tuple[str, int]:
        stat = path.stat()
        hit = self.known.get(rel)
        if hit is not None and hit[:2] == [stat.st_size, stat.st_mtime_ns]:
            digest = hit[2]
        else:
            digest = sha256_file(path)
        self.fresh[rel] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest, stat.st_size

    def save(self) -> None:
        if self.fresh == self.known:
            return
        with contextlib.suppress(OSError):
            self.layout.write_json(self.path, self.fresh)


def corpus_files(corpus: str | Path) -> list[FileEntry]:
    """Every file to publish, in path order, hashed and checked against the build's records."""
    layout = CorpusLayout(corpus)
    if not layout.is_folder(layout.root):
        raise UalmError(f"corpus {layout.root} not found", fix="pass a corpus folder")
    layout.meta(fix="finish it with `ualm build` (rerun the same command) first")
    recorded = _recorded(layout)
    cache = _HashCache(layout)
    entries = []
    for rel, path in _published(layout):
        digest, size = cache.sha256(rel, path)
        expected = recorded.get(rel)
        if expected is not None and (expected["sha256"] != digest or expected["bytes"] != size):
            raise UalmError(f"{rel} in {layout.root} differs from what the build wrote "
                            f"(sha256 {digest[:12]}…, recorded {expected['sha256'][:12]}…)",
                            fix="rerun `ualm build` (or `ualm tokenize`) on the corpus to "
                                "rewrite it, then publish")
        entries.append(FileEntry(rel, digest, size, path))
    cache.save()
    missing = sorted(set(recorded) - {e.path for e in entries})
    if missing:
        raise UalmError(f"{len(missing)} files the build wrote are missing from {layout.root}, "
                        f"e.g. {missing[0]}", fix="rerun `ualm build` on the corpus to restore them")
    return entries


def ordered(entries: list[FileEntry]) -> tuple[list[FileEntry], list[FileEntry]]:
    """(data files, last files): the card and corpus.json go after everything else."""
    data = [e for e in entries if e.path not in LAST]
    last = [e for e in entries if e.path in LAST]
    return data, sorted(last, key=lambda e: LAST.index(e.path))


def batches(entries: list[FileEntry], max_files: int, max_bytes: int) -> Iterator[list[FileEntry]]:
    """Consecutive runs of at most `max_files` files and about `max_bytes` bytes (a single
    larger file makes a batch of its own)."""
    batch: list[FileEntry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) >= max_files or size + entry.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def publish_record(entries: list[FileEntry], corpus_json: bytes) -> bytes:
    """The completion record written last: the file list with hashes, and which corpus."""
    from ualm import __version__

    record = {"ualm_publish": 1, "ualm_version": __version__,
              "corpus_hash": hashlib.sha256(corpus_json).hexdigest(),
              "files": {e.path: e.to_dict() for e in entries}}
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()

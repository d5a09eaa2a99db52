"""One corpus on an fsspec filesystem (a local folder, or a store: s3://, gs://, memory://):
the full name of every file (`names` spells them relative to the root) and all I/O on them, so
that no stage builds a corpus path or opens a shard by name. Writes are atomic: on a local folder
a temporary sibling, then a rename; in a store one put of a finished object under its final,
deterministic name, create-only for the names written once (`remote`). Every finished unit
leaves a completion record with the hashes of what it wrote (`done`).

>>> layout = CorpusLayout("/data/c")
>>> layout.audio_shard(3), layout.relative(layout.audio_shard(3))
('/data/c/audio/audio-000003.tar', 'audio/audio-000003.tar')
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ualm.errors import UalmError
from ualm.manifests import atomic, names, remote, storage
from ualm.manifests import object_reads as reads
from ualm.manifests.atomic import atomic_write_bytes as atomic_write_bytes
from ualm.manifests.atomic import atomic_write_json as atomic_write_json
from ualm.manifests.atomic import sha256_file as sha256_file
from ualm.manifests.atomic import temporary_sibling as temporary_sibling
from ualm.manifests.done import done_records as done_records
from ualm.manifests.done import finished as finished
from ualm.manifests.done import read_done as read_done
from ualm.manifests.done import write_done as write_done
from ualm.manifests.layout_names import LayoutNames

CORPUS_FILE = names.CORPUS_FILE
WORK = names.WORK


class CorpusLayout(LayoutNames):
    """A corpus by location (a local folder or a URL): its filesystem `fs`, its `root` inside
    it, and `location` (as given: what tasks carry to workers and what `url` joins onto)."""

    def __init__(self, corpus: str | Path) -> None:
        self.fs, root = storage.corpus_filesystem(corpus)
        self.local = storage.is_local(self.fs)
        self.root = root if self.local else root.rstrip("/")
        self.location = root if self.local else storage.location(corpus)
        self._written: dict[str, tuple[str, int]] = {}  # put in a store by this layout

    def path(self, name: str) -> str:
        """The full name of a file in the corpus from its relative name."""
        return str(Path(self.root) / name) if self.local else f"{self.root}/{name}"

    def relative(self, path: str) -> str:
        if self.local:
            return Path(path).relative_to(self.root).as_posix()
        return path[len(self.root) + 1:]

    def url(self, name: str) -> str:
        """Where a reader given only a location (a trainer's shard list) finds a file."""
        return storage.join(self.location, name)

    def local_path(self, path: str) -> Path:
        """A corpus file as a local path (a publish of a folder); on a store, an error."""
        if not self.local:
            raise UalmError(f"{self.location} is not a local folder",
                            fix="build into a local folder, then `ualm publish` it")
        return Path(path)

    # reading
    def exists(self, path: str) -> bool:
        """True when `path` is a file."""
        if self.local:
            return os.path.isfile(path)
        with suppress(FileNotFoundError):
            return self.size(path) >= 0
        return False

    def size(self, path: str) -> int:
        if self.local:
            return os.path.getsize(path)
        return storage.fs_size(self.fs, path, self._name(path))

    def read_bytes(self, path: str, ranged: bool = False) -> bytes:
        """The whole file (FileNotFoundError when absent); `ranged`: a large one (a shard)."""
        if self.local:
            with open(path, "rb") as handle:
                return handle.read()
        return storage.fs_read_bytes(self.fs, path, self._name(path), ranged)

    def read_many(self, paths: list[str]) -> list[bytes | None]:
        """Whole files, None for a missing one (in a store: concurrent GETs)."""
        return reads.fs_read_many(self.fs, paths, self.location, missing_ok=True)

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def open(self, path: str, mode: str = "rb") -> BinaryIO:
        return open(path, mode) if self.local else reads.fs_open(self.fs, path, self._name(path),
                                                                  mode)

    def list(self, folder: str, prefix: str = "", suffix: str = "") -> list[str]:
        """Files directly inside `folder` (a full name) whose names start with `prefix` and end
        with `suffix`, sorted; [] when the folder is absent."""
        if self.local:
            found = os.listdir(folder) if os.path.isdir(folder) else []
            kept = [n for n in found if os.path.isfile(os.path.join(folder, n))]
        else:
            kept = storage.fs_list_names(self.fs, folder, self._name(folder))
        base = folder if self.local else folder.rstrip("/")
        return sorted(str(Path(base) / n) if self.local else f"{base}/{n}"
                      for n in kept if n.startswith(prefix) and n.endswith(suffix))

    def entries(self) -> list[str]:
        """Names of everything directly inside the root (files and folders)."""
        if self.local:
            return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []
        with suppress(FileNotFoundError):  # a prefix with no object below it: none
            return sorted(e.rstrip("/").rsplit("/", 1)[-1]
                          for e in self.fs.ls(self.root, detail=False))
        return []

    def is_folder(self, path: str) -> bool:
        return os.path.isdir(path) if self.local else self.fs.isdir(path)

    def has_tree(self, folder: str, suffix: str) -> bool:
        """Whether any file below `folder` ends with `suffix`."""
        if self.local:
            return any(Path(folder).glob(f"**/*{suffix}"))
        return any(p.endswith(suffix) for p in self._find(folder))

    def walk(self) -> list[str]:
        """Every file of the corpus, sorted (full names)."""
        if self.local:
            return sorted(str(p) for p in Path(self.root).rglob("*") if p.is_file())
        return sorted(self._find(self.root))

    def _find(self, folder: str) -> list[str]:
        try:
            return self.fs.find(folder)
        except FileNotFoundError:
            return []

    def read_table(self, files: str | list[str], columns: list[str] | None = None,
                   schema: Any = None, filters: Any = None) -> pa.Table:
        """One parquet file, or several as one table (`filters`: a pyarrow expression)."""
        import pyarrow.dataset as ds

        many = [files] if isinstance(files, str) else files
        if self.local:
            return ds.dataset(many, format="parquet", schema=schema).to_table(
                columns=columns, filter=filters)
        return storage.fs_parquet_table(self.fs, many, columns, schema, self.location, filters)

    def dataset(self, files: list[str], schema: Any = None) -> Any:
        """A pyarrow dataset of parquet files (for reading only the columns it has)."""
        import pyarrow.dataset as ds

        if self.local:
            return ds.dataset(files, format="parquet", schema=schema)
        return storage.fs_dataset(self.fs, files, schema)

    def folder_table(self, folder: str, columns: list[str] | None = None, schema: Any = None,
                     prefix: str = "", filters: Any = None) -> pa.Table | None:
        """The parquet parts of a manifest folder as one table; None when there are none."""
        files = self.list(folder, prefix, ".parquet")
        return self.read_table(files, columns, schema, filters) if files else None

    def iter_samples(self, path: str) -> Iterator[tuple[str, dict[str, memoryview]]]:
        """(key, {extension: data}) of every sample of a shard, read in one go."""
        from ualm.manifests.shard_reader import members_of, samples_of

        try:
            data = self.read_bytes(path, ranged=True)
        except FileNotFoundError as exc:
            raise UalmError(f"shard {self._name(path)} is missing",
                            fix="rebuild or re-download the corpus") from exc
        return samples_of(members_of(data))

    def meta(self, fix: str = "run `ualm build` on it first") -> dict[str, Any]:
        """corpus.json; a clear error when the corpus is not complete."""
        try:
            return self.read_json(self.corpus_file)
        except FileNotFoundError:
            raise UalmError(f"{self.location} is not a complete ualm corpus (no corpus.json)",
                            fix=fix) from None

    def is_complete(self) -> bool:
        return self.exists(self.corpus_file)

    # writing
    def write_bytes(self, path: str, data: bytes) -> None:
        if self.local:
            atomic.atomic_write_bytes(path, data)
        else:
            self.fs.pipe_file(path, data)
            self._written[path] = (hashlib.sha256(data).hexdigest(), len(data))

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, atomic.json_bytes(obj))

    def write_table(self, path: str, table: pa.Table) -> None:
        """Parquet with no writer-specific metadata, so equal tables give equal bytes."""
        if self.local:
            atomic.atomic_write_table(path, table)
            return
        buffer = io.BytesIO()
        atomic.write_parquet(table, buffer)
        self.write_bytes(path, buffer.getvalue())

    def write_once(self, path: str, data: bytes) -> bool:
        """Creates a file that must be written once; False (and the file untouched) when it
        is already there. On a local folder, an atomic write that always succeeds."""
        if self.local:
            atomic.atomic_write_bytes(path, data)
            return True
        created = remote.put_new(self.fs, path, data)
        if created:
            self._written[path] = (hashlib.sha256(data).hexdigest(), len(data))
        return created

    def upload(self, local: Path, path: str) -> None:
        """Puts a finished local file under its final name (the local file is gone after)."""
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(local, path)
            return
        facts = (atomic.sha256_file(local), local.stat().st_size)
        self.fs.put_file(str(local), path)
        self._written[path] = facts
        local.unlink()

    def written(self, path: str) -> tuple[str, int] | None:
        """(sha256, size) of an object this layout put in a store; None for anything else."""
        return self._written.get(path)

    @contextmanager
    def scratch(self) -> Iterator[Path | str]:
        """Where an engine passes unit results from its workers to the driver: in the work
        area, which every worker sees (a folder, or `_work/engine` in the store: workers that
        share no disk cannot write into the driver's temporary folder)."""
        if self.local:
            Path(self.work).mkdir(parents=True, exist_ok=True)
            yield Path(self.work)
            return
        yield self.url(f"{WORK}/engine")

    def commit(self, meta: dict[str, Any]) -> None:
        """Writes corpus.json, the commit readers trust (in a store create-only: replace_commit)."""
        atomic.remove_temporaries(self.root, self.work, self.local)  # what killed writers left
        data = atomic.json_bytes(meta)
        if not self.write_once(self.corpus_file, data):
            remote.replace_commit(self, meta, data)

    def shard_writer(self, path: str) -> Any:
        from ualm.manifests.shards import TarShardWriter

        return TarShardWriter(path, None if self.local else self.fs)

    def remove(self, *paths: str) -> None:
        """Deletes files, absent ones ignored (in a store: batched deletes, no look first)."""
        if not self.local:
            remote.remove_objects(self.fs, list(paths))
        for path in paths if self.local else ():
            Path(path).unlink(missing_ok=True)

    def append_line(self, path: str, line: str) -> None:
        """Appends to a log under _work; in a store, one object per call (`log_object`)."""
        if not self.local:
            self.fs.pipe_file(remote.log_object(path), (line + "\n").encode())
            return
        local = Path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        with open(local, "a") as handle:
            handle.write(line + "\n")

    def check_writable(self) -> None:
        """Creates the work folder (OSError when it cannot be written); in a store, a probe put
        and deleted (one-line UalmError: missing bucket, denied access, no credentials)."""
        if not self.local:
            remote.check_writable(self.fs, self.work, self.location)
            return
        work = Path(self.work)
        work.mkdir(parents=True, exist_ok=True)
        probe = work / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    def sha256(self, path: str) -> str:
        if self.local:
            return atomic.sha256_file(path)
        with self.fs.open(path, "rb") as handle:
            return atomic.sha256_stream(handle)

    def _name(self, path: str) -> str:
        return storage.join(self.location, self.relative(path))

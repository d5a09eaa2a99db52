"""Where a corpus lives: a local folder, or a URL (`hf://datasets/ORG/NAME[@REVISION]`,
`s3://bucket/prefix`, `gs://...`, `memory://...`, any fsspec URL) read through
`huggingface_hub.HfFileSystem` or fsspec. `corpus_filesystem` gives the (filesystem, root) pair
that `CorpusLayout` holds; the functions on URLs serve readers given one file's location (a
trainer's shard). Local paths take plain `open`/`pathlib`, so a local corpus costs nothing more.

Locations are strings: a resolved local path, or a URL without a trailing slash.

>>> is_remote("s3://bucket/corpus"), is_remote("/data/corpus")
(True, False)
>>> join("s3://bucket/corpus/", "tokens/a.tar")
's3://bucket/corpus/tokens/a.tar'
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ualm.errors import UalmError


def is_remote(location: str | Path) -> bool:
    """True for a URL other than file://; a Path is always local."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def location(corpus: str | Path) -> str:
    """The canonical name of a corpus: a resolved local path, or the URL without a trailing
    slash (the same corpus named twice must compare equal, e.g. in a blend spec)."""
    if is_remote(corpus):
        return str(corpus).rstrip("/")
    text = str(corpus)
    return str(Path(text[len("file://"):] if text.startswith("file://") else text).resolve())


def join(root: str, relative: str) -> str:
    if is_remote(root):
        return root.rstrip("/") + "/" + relative.lstrip("/")
    return str(Path(root) / relative)


def hub_filesystem() -> Any:
    """An HfFileSystem for the endpoint in HF_ENDPOINT (read now, not when huggingface_hub was
    imported), with the token from the environment or the user's login."""
    from huggingface_hub import HfFileSystem

    check_online()
    return HfFileSystem(endpoint=os.environ.get("HF_ENDPOINT") or None)


def check_online() -> None:
    """Offline mode makes huggingface_hub refuse every request; say so, and how to lift it."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UalmError("HF_HUB_OFFLINE is set, so the Hub cannot be reached",
                        fix="unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) to read or publish "
                            "hf:// corpora")


def corpus_filesystem(corpus: str | Path) -> tuple[Any, str]:
    """(fsspec filesystem, root inside it) of a corpus: fsspec's LocalFileSystem and the path as
    given for a local folder (`file://` stripped), the URL's backend for a URL."""
    if is_remote(corpus):
        return filesystem(str(corpus).rstrip("/"))
    from fsspec.implementations.local import LocalFileSystem

    text = str(corpus)
    text = text[len("file://"):] if text.startswith("file://") else text
    return LocalFileSystem(), str(Path(text))


def is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def filesystem(url: str) -> tuple[Any, str]:
    """(filesystem, path inside it) for a URL."""
    if url.startswith("hf://"):
        path = url[len("hf://"):]
        if not path.startswith("datasets/") or len(path.split("/")) < 3:
            raise UalmError(f"cannot read {url}", fix="use hf://datasets/ORG/NAME[@REVISION]")
        return hub_filesystem(), path
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **store_options(url))
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise UalmError(f"cannot open {url}: {exc}".splitlines()[0],
                        fix=f"install the fsspec backend for {scheme}:// (s3fs for s3://, "
                            "gcsfs for gs://), or check the URL") from exc


RETRY_ATTEMPTS = 6
"""Tries of one S3 request (botocore's "standard" retry mode: 500, 502, 503, 504, SlowDown and
throttling codes, jittered exponential backoff capped at 20 s). s3fs adds its own loop on top
for SlowDown only (5 tries, 0.1 s x 1.7^i), so a throttled request is tried at most 30 times."""


def store_options(url: str) -> dict[str, Any]:
    """fsspec options of a store: for S3, no listing cache (other processes write the corpus,
    and a stale listing would hide their objects) and bounded retries, unless the user set
    AWS_RETRY_MODE or AWS_MAX_ATTEMPTS."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {"use_listings_cache": False}
    if not (os.environ.get("AWS_RETRY_MODE") or os.environ.get("AWS_MAX_ATTEMPTS")):
        options["config_kwargs"] = {"retries": {"mode": "standard",
                                                "max_attempts": RETRY_ATTEMPTS}}
    return options


def _remote_error(url: str, exc: Exception) -> UalmError:
    return UalmError(f"cannot read {url}: {type(exc).__name__}: {exc}".splitlines()[0],
                     fix="check the URL, your credentials and the network")


def read_bytes(path: str | Path) -> bytes:
    """The whole file; FileNotFoundError when it is not there (local or remote)."""
    if not is_remote(path):
        return Path(path).read_bytes()
    return fs_read_bytes(*filesystem(str(path)), str(path))


@contextmanager
def remote_errors(name: str) -> Iterator[None]:
    """A store's own "not found" (huggingface_hub has its own types) becomes FileNotFoundError
    of `name`; any other failure one UalmError naming it."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as exc:
        if _is_not_found(exc):
            raise FileNotFoundError(name) from exc
        raise _remote_error(name, exc) from exc


def is_s3(fs: Any) -> bool:
    return hasattr(fs, "call_s3")


def fs_read_bytes(fs: Any, inner: str, name: str, ranged: bool = False) -> bytes:
    """As read_bytes, on a filesystem; `name` is what errors call the file. On S3 one GET
    (a missing object: its 404, nothing more); `ranged` keeps s3fs's default for large
    objects: a HEAD for the size, then concurrent ranged GETs."""
    with remote_errors(name):
        if is_s3(fs) and not ranged:
            return fs.cat_file(inner, max_concurrency=1)
        return fs.cat_file(inner)


def _is_not_found(exc: Exception) -> bool:
    """huggingface_hub says a missing repo, revision or file with its own error types."""
    return type(exc).__name__ in ("EntryNotFoundError", "RemoteEntryNotFoundError",
                                  "RepositoryNotFoundError", "RevisionNotFoundError")


def is_file(path: str | Path) -> bool:
    if not is_remote(path):
        return Path(path).is_file()
    try:
        read_size(str(path))
    except FileNotFoundError:
        return False
    return True


def read_size(url: str) -> int:
    return fs_size(*filesystem(url), url)


def fs_size(fs: Any, inner: str, url: str) -> int:
    """Size of a file; FileNotFoundError when it is no file. On S3 one HEAD (s3fs's `info`
    follows a 404 with a listing, to tell a folder)."""
    if is_s3(fs):
        bucket, key, _ = fs.split_path(inner)
        if not key:
            raise FileNotFoundError(url)
        with remote_errors(url):
            return int(fs.call_s3("head_object", Bucket=bucket, Key=key)["ContentLength"])
    with remote_errors(url):
        info = fs.info(inner)
    if info.get("type") != "file":
        raise FileNotFoundError(url)
    return int(info["size"])


def list_files(folder: str | Path, suffix: str = "") -> list[str]:
    """Files directly inside a folder whose name ends with `suffix`, sorted; [] when the
    folder does not exist."""
    if not is_remote(folder):
        root = Path(folder)
        return sorted(str(p) for p in root.iterdir() if p.is_file() and p.name.endswith(suffix)) \
            if root.is_dir() else []
    url = str(folder).rstrip("/")
    return [f"{url}/{n}" for n in fs_list_names(*filesystem(url), url, suffix)]


def fs_list_names(fs: Any, inner: str, url: str, suffix: str = "") -> list[str]:
    """Names of the files directly inside a folder of a filesystem, sorted; [] when none."""
    try:
        with remote_errors(url):
            entries = fs.ls(inner, detail=True)
    except FileNotFoundError:
        return []
    names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"]
    return sorted(n for n in names if n.endswith(suffix))


def parquet_table(folder: str | Path, columns: list[str], schema: Any = None) -> Any:
    """The parquet files of a folder as one pyarrow table (None when there are none)."""
    import pyarrow.dataset as ds

    files = list_files(folder, ".parquet")
    if not files:
        return None
    if not is_remote(folder):
        return ds.dataset(files, format="parquet", schema=schema).to_table(columns=columns)
    fs, _ = filesystem(str(folder))
    return fs_parquet_table(fs, [filesystem(f)[1] for f in files], columns, schema, str(folder))


def fs_dataset(fs: Any, files: list[str], schema: Any = None) -> Any:
    """A pyarrow dataset of parquet files on a filesystem, read lazily (in ranges) through it."""
    import pyarrow.dataset as ds
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return ds.dataset(files, format="parquet", schema=schema,
                      filesystem=PyFileSystem(FSSpecHandler(fs)))


def fs_parquet_table(fs: Any, files: list[str], columns: list[str] | None, schema: Any,
                     name: str, filters: Any = None) -> Any:
    """Parquet files of a (non-local) filesystem as one pyarrow table. Each file is read whole
    (one GET) and parsed from memory: pyarrow's reads through fsspec cost two HEADs and ranged
    GETs per file, and these manifests are small. As `pyarrow.dataset.dataset`, the schema is
    the first file's unless given."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from ualm.manifests.object_reads import fs_read_many

    try:
        blobs = fs_read_many(fs, files, name)
        parquet = ds.ParquetFileFormat()
        fragments = [parquet.make_fragment(pa.BufferReader(blob)) for blob in blobs]
        dataset = ds.FileSystemDataset(fragments, schema or fragments[0].physical_schema,
                                       parquet)
        return dataset.to_table(columns=columns, filter=filters)
    except OSError as exc:
        raise _remote_error(name, exc) from exc

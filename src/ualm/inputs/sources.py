"""Inputs that are not files on disk or manifest rows: URL lists, Hugging Face datasets
(parquet with the `datasets` Audio struct, on the Hub or in a folder of the same layout) and
WebDataset tars. Each lists as ordinary `InputRecord`s whose `url` locates the audio
(`https://...`, `hf://datasets/ORG/NAME/FILE.parquet#row=N`, `file:///...parquet#row=N`,
`file:///...tar#member=N`); the ingest unit obtains the bytes (`ualm.inputs.crawl.unit`).

Every kind may also live on any fsspec store: `s3://b/lists/urls.txt`, `s3://b/shards/x.tar`,
`s3://b/data/train.parquet`, or a prefix holding tars or audio-parquet files and no audio objects
(`s3://b/dataset`); the records' locators are then the objects' URLs (`s3://b/x.tar#member=N`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ualm.config import CrawlConfig
from ualm.errors import UalmError
from ualm.inputs.locations import input_errors, is_remote, normalise_url
from ualm.inputs.records import InputRecord

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def iter_source(spec: str, start: int, crawl: CrawlConfig) -> Iterator[InputRecord] | None:
    """A stream of the records of `spec` when it names a source this package reads, else None
    (a folder of audio or a manifest, which `ualm.inputs.listing` lists). Indexes count from
    `start`."""
    from ualm.inputs import parquet, urls, wds

    if spec.startswith("hf://"):
        return parquet.iter_hub(spec, start, crawl)
    if is_remote(spec):
        return _remote_source(normalise_url(spec), start, crawl)
    path = Path(spec)
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".txt"):
            return urls.iter_urls(path, start)
        if name.endswith(TAR_SUFFIXES):
            return wds.iter_tars([path], start, crawl)
        if name.endswith(".parquet") and parquet.is_audio_parquet(path, crawl.audio_column):
            return parquet.iter_local([path], path.parent, start, crawl)
    elif path.is_dir():
        return _dataset_folder(path, start, crawl)
    return None


def _remote_source(url: str, start: int, crawl: CrawlConfig) -> Iterator[InputRecord] | None:
    """As `iter_source`, for a store's URL: an object named like a source, or a prefix that
    is a dataset. A missing object is found when the stream opens it (one line naming it)."""
    from ualm.inputs import parquet, urls, wds

    name = posixpath.basename(urlsplit(url).path).lower()  # a signed URL's query is no name
    if name.endswith(".txt"):
        return urls.iter_urls(url, start)
    if url.split(":", 1)[0].lower() in ("http", "https") and name.endswith(
            (*TAR_SUFFIXES, ".parquet")):
        # a unit reads http(s) only through the crawler's policy, which fetches whole URLs; and
        # a manifest's `url` with a `#member=` must not reach a ranged read that skips it
        raise UalmError(f"cannot read {name} over http(s): WebDataset tars and parquet "
                        "datasets are read from a folder or a store",
                        fix="copy it to a bucket and pass its s3:// or gs:// URL")
    if name.endswith(TAR_SUFFIXES):
        return wds.iter_tars([url], start, crawl)
    if name.endswith(".parquet"):  # a manifest unless it holds the Audio struct
        if not parquet.is_audio_parquet(url, crawl.audio_column):
            return None
        base = url.rsplit("/", 1)[0]
        return parquet.iter_files([(url, url[len(base) + 1:])], posixpath.basename(base),
                                  start, crawl)
    if posixpath.splitext(name)[1] in (".jsonl", ".json", ".csv"):
        return None
    return _remote_dataset(url, start, crawl)


def _remote_dataset(url: str, start: int, crawl: CrawlConfig) -> Iterator[InputRecord] | None:
    """A prefix is a dataset when it holds no audio objects and parquet files with the audio
    column, or WebDataset tars (the rule of a local folder, on the prefix's sorted names)."""
    from ualm.inputs import parquet, wds
    from ualm.inputs.records import AUDIO_EXTENSIONS
    from ualm.manifests.storage import filesystem

    with input_errors(url):
        fs, inner = filesystem(url)
        keys = fs.find(inner)
    prefix = inner.rstrip("/") + "/"
    names = sorted(key[len(prefix):] for key in keys if key.startswith(prefix))
    if not names or any(posixpath.splitext(n)[1].lower() in AUDIO_EXTENSIONS for n in names):
        return None  # a folder of audio (or nothing): `listing` says which
    tables = [n for n in names if n.lower().endswith(".parquet")]
    if tables and all(parquet.is_audio_parquet(f"{url}/{n}", crawl.audio_column)
                      for n in tables):
        return parquet.iter_files([(f"{url}/{n}", n) for n in tables],
                                  posixpath.basename(url), start, crawl)
    tars = [f"{url}/{n}" for n in names if n.lower().endswith(TAR_SUFFIXES)]
    if tars and not tables:
        return wds.iter_tars(tars, start, crawl)
    return None


def _dataset_folder(folder: Path, start: int,
                    crawl: CrawlConfig) -> Iterator[InputRecord] | None:
    """A folder is a dataset when it holds no audio files and parquet files with the audio
    column (the Hub's layout), or WebDataset tars."""
    from ualm.inputs import parquet, wds
    from ualm.inputs.records import AUDIO_EXTENSIONS

    files = []
    for p in folder.rglob("*"):
        if p.suffix.lower() in AUDIO_EXTENSIONS:
            return None  # a folder of audio: stop at the first file
        if p.is_file():
            files.append(p)
    files.sort(key=lambda p: p.relative_to(folder).as_posix())
    tables = [p for p in files if p.suffix.lower() == ".parquet"]
    if tables and all(parquet.is_audio_parquet(p, crawl.audio_column) for p in tables):
        return parquet.iter_local(tables, folder, start, crawl)
    tars = [p for p in files if p.name.lower().endswith(TAR_SUFFIXES)]
    if tars and not tables:
        return wds.iter_tars(tars, start, crawl)
    return None

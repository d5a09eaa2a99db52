"""Inputs that are not files on disk or manifest rows: URL lists, Hugging Face datasets
(parquet with the `datasets` Audio struct, on the Hub or in a local folder of the same layout)
and WebDataset tars. Each lists as ordinary `InputRecord`s whose `url` locates the audio
(`https://...`, `hf://datasets/ORG/NAME/FILE.parquet#row=N`, `file:///...parquet#row=N`,
`file:///...tar#member=N`); the ingest unit obtains the bytes (`ualm.inputs.crawl.unit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ualm.config import CrawlConfig
from ualm.inputs.records import InputRecord

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def iter_source(spec: str, start: int, crawl: CrawlConfig) -> Iterator[InputRecord] | None:
    """A stream of the records of `spec` when it names a source this package reads, else None
    (a folder of audio or a manifest, which `ualm.inputs.listing` lists). Indexes count from
    `start`."""
    from ualm.inputs import parquet, urls, wds

    if spec.startswith("hf://"):
        return parquet.iter_hub(spec, start, crawl)
    path = Path(spec)
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".txt"):
            return urls.iter_urls(path, start)
        if name.endswith(TAR_SUFFIXES):
            return wds.iter_tars([path], path.parent, start, crawl)
        if name.endswith(".parquet") and parquet.is_audio_parquet(path, crawl.audio_column):
            return parquet.iter_local([path], path.parent, start, crawl)
    elif path.is_dir():
        return _dataset_folder(path, start, crawl)
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
        return wds.iter_tars(tars, folder, start, crawl)
    return None

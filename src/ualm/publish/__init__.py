"""`ualm publish`: a corpus to a Hugging Face dataset repo, an object store or a folder, exactly
once and resumable.

    plan (hash every file, check it against the build's records)
      -> what is at the destination already, with the same sha256, is skipped
      -> the rest in batches (Hub: one commit each; stores: objects, then the sidecar index)
      -> what arrived is checked against the plan's hashes
      -> last: the card, corpus.json and the publish record `publish.json`

A run stopped anywhere is resumed by running the same command; nothing that arrived is sent
again, and readers see the corpus as complete (corpus.json, publish.json) only at the end.

>>> # publish("corpus/", "hf://datasets/org/sounds", private=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ualm.errors import UalmError
from ualm.manifests import storage
from ualm.manifests.layout import CORPUS_FILE, CorpusLayout
from ualm.publish.destinations import HubDestination, parse_destination
from ualm.publish.plan import (
    CARD,
    RECORD,
    FileEntry,
    batches,
    corpus_files,
    ordered,
    publish_record,
)

BLEND = "blend.yaml"


@dataclass
class PublishResult:
    url: str
    files: int
    """Files the published corpus holds (the publish record included)."""
    sent: int = 0
    sent_bytes: int = 0
    skipped: int = 0
    """Files already at the destination with the same sha256."""
    batches: int = 0
    extra: list[str] = field(default_factory=list)
    """Files at the destination that the corpus does not hold (left as they are)."""


def _blend_entry(blend: str | Path, corpus: Path, url: str) -> tuple[FileEntry, dict[str, Any]]:
    """The blend spec as published: the corpus's own entries point at the published URL."""
    from ualm.train.blend.spec import load_blend

    spec = load_blend(blend).to_dict()
    here = storage.location(corpus)
    for item in [*spec["corpora"], *spec["sources"]]:
        key = "path" if "path" in item else "corpus"
        if storage.location(item[key]) == here:
            item[key] = url
    text = "# ualm blend spec (format 1; see ualm.train.blend.spec)\n" + yaml.safe_dump(
        spec, sort_keys=False, allow_unicode=True)
    return FileEntry.of_bytes(BLEND, text.encode()), spec


def _card_entry(layout: CorpusLayout, url: str, blend: dict[str, Any] | None) -> FileEntry:
    from ualm.manifests.card import render_card
    from ualm.manifests.card_sections import card_facts
    from ualm.manifests.inspect import summarize

    corpus = layout.meta()
    card = render_card(corpus, summarize(layout), card_facts(layout), url=url, blend=blend)
    return FileEntry.of_bytes(CARD, card.encode())


def plan_files(corpus: str | Path, url: str, blend: str | Path | None = None) -> list[FileEntry]:
    """Every file the destination will hold, in publish order: data files, then the card,
    corpus.json and the publish record."""
    layout = CorpusLayout(corpus)
    entries = {e.path: e for e in corpus_files(layout.location)}
    spec = None
    if blend is not None:
        entry, spec = _blend_entry(blend, layout.location, url)
        entries[BLEND] = entry
    elif BLEND in entries:
        spec = yaml.safe_load(entries[BLEND].read())
    entries[CARD] = _card_entry(layout, url, spec)
    data, last = ordered(sorted(entries.values(), key=lambda e: e.path))
    everything = data + last
    record = FileEntry.of_bytes(RECORD, publish_record(everything,
                                                       layout.read_bytes(layout.corpus_file)))
    return [*everything, record]


def open_store(to: str, revision: str | None = None, private: bool = False) -> Any:
    destination = parse_destination(to, revision)
    if isinstance(destination, HubDestination):
        from ualm.publish.hub import HubStore

        return HubStore(destination, private=private)
    if private:
        raise UalmError("--private applies to Hub repos", fix="set access on the bucket instead")
    from ualm.publish.fsspec_store import FsspecStore

    return FsspecStore(destination)


def publish(corpus: str | Path, to: str, *, revision: str | None = None, private: bool = False,
            blend: str | Path | None = None, batch_files: int = 200,
            batch_bytes: int = 8 << 30,
            progress: Callable[[str], None] | None = None) -> PublishResult:
    """Publishes (or resumes publishing) `corpus` to `to`; see the module docstring."""
    if batch_files < 1 or batch_bytes < 1:
        raise UalmError("batches need at least one file and one byte",
                        fix="pass --batch-files N with N >= 1")
    if storage.is_remote(corpus):  # hashed and sent from a local copy
        from ualm.publish.source_copy import local_copy

        with local_copy(str(corpus)) as copy:
            return publish(copy, to, revision=revision, private=private, blend=blend,
                           batch_files=batch_files, batch_bytes=batch_bytes, progress=progress)
    say = progress or (lambda _line: None)
    store = open_store(to, revision, private)
    entries = plan_files(corpus, store.url, blend)
    say(f"{len(entries)} files, {sum(e.size for e in entries):,} bytes, to {store.url}")
    store.prepare()
    present = store.existing()
    wanted = {e.path for e in entries}
    result = PublishResult(store.url, len(entries),
                           extra=sorted(p for p in present if p not in wanted
                                        and not p.startswith((".ualm-publish/", ".git"))))
    closing = (CARD, CORPUS_FILE, RECORD)
    data = [e for e in entries if e.path not in closing]
    last = [e for e in entries if e.path in closing]
    todo = [e for e in data if not store.matches(present.get(e.path), e)]
    result.skipped = len(data) - len(todo)
    if result.skipped:
        say(f"{result.skipped} files already there with the same sha256: not sent again")
    chunks = list(batches(todo, batch_files, batch_bytes))
    for number, chunk in enumerate(chunks, start=1):
        store.send(chunk, f"ualm publish: batch {number}/{len(chunks)} ({len(chunk)} files)")
        result.sent += len(chunk)
        result.sent_bytes += sum(e.size for e in chunk)
        result.batches += 1
        say(f"batch {number}/{len(chunks)}: {len(chunk)} files, "
            f"{sum(e.size for e in chunk):,} bytes")
    _verify(store, data)
    final = [e for e in last if not store.matches(present.get(e.path), e)]
    result.skipped += len(last) - len(final)
    if final:
        _send_last(store, final)
        result.sent += len(final)
        result.sent_bytes += sum(e.size for e in final)
        result.batches += 1
    _verify(store, entries)
    store.close()
    return result


def _send_last(store: Any, final: list[FileEntry]) -> None:
    """The card, corpus.json and the publish record: one commit on the Hub; on a store, one
    object after the other with the publish record last."""
    if isinstance(getattr(store, "destination", None), HubDestination):
        store.send(final, "ualm publish: corpus complete (card, corpus.json, publish.json)")
        return
    *first, record = final  # the record changes whenever anything before it does
    for entry in first:
        store.send([entry], f"ualm publish: {entry.path}")
    store.send([record], "ualm publish: complete", index=False)


def _verify(store: Any, entries: list[FileEntry]) -> None:
    """Everything in `entries` is at the destination with its sha256 (from the Hub's tree, or
    from the store's index of read-back hashes, with the listed sizes)."""
    present = store.existing()
    bad = [e.path for e in entries if not store.matches(present.get(e.path), e)]
    if bad:
        raise UalmError(f"{len(bad)} files did not arrive intact at {store.url}, e.g. {bad[0]}",
                        fix="rerun the same command: the missing or damaged files are sent again")


__all__ = ["CORPUS_FILE", "PublishResult", "open_store", "plan_files", "publish"]

"""Destinations parsed and refused with their fix, batches, and the card's header and body."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ualm.errors import UalmError
from ualm.manifests.card import render_card
from ualm.manifests.card_sections import CardFacts, card_facts
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout
from ualm.publish.destinations import HubDestination, StoreDestination, parse_destination
from ualm.publish.plan import FileEntry, batches


def test_destinations(tmp_path: Path) -> None:
    assert parse_destination("hf://datasets/org/name", "dev") == HubDestination("org/name", "dev")
    assert parse_destination("hf://datasets/org/name@v2").url == "hf://datasets/org/name@v2"
    assert parse_destination("gs://b/p/") == StoreDestination("gs://b/p")
    assert parse_destination(f"file://{tmp_path}/x") == StoreDestination(str(tmp_path / "x"))
    for bad, fix in [("hf://datasets/org", "ORG/NAME"), ("hf://org/name", "ORG/NAME"),
                     ("hf://models/org/name", "dataset repo"), ("hf://datasets/o/../x", "ORG"),
                     ("hf://datasets/org/bad name", "letters, digits"),
                     ("hf://datasets/org/n@a", "revision once"), ("", "--to")]:
        with pytest.raises(UalmError, match=fix):
            parse_destination(bad, "b" if bad.endswith("@a") else None)


def test_batches_hold_files_and_bytes_limits() -> None:
    entries = [FileEntry(f"f{i}", "0" * 64, size) for i, size in enumerate([5, 5, 20, 1, 1, 1])]
    sizes = [[e.size for e in b] for b in batches(entries, max_files=2, max_bytes=10)]
    assert sizes == [[5, 5], [20], [1, 1], [1]]


def test_card_aggregates_licences_and_names_every_subset(publish_corpus: Path) -> None:
    layout = CorpusLayout(publish_corpus)
    corpus = layout.meta()
    facts = card_facts(layout)
    assert facts.subsets == ["traces", "pairs"] and "generation" in facts.tasks
    mixed = CardFacts(["cc-by-4.0", "mit"], facts.sources, ["generation", "understanding"],
                      ["traces", "pairs"])
    card = render_card(corpus, summarize(publish_corpus), mixed, url="s3://b/c")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "other" and header["license_details"] == "cc-by-4.0, mit"
    assert header["task_categories"] == ["audio-text-to-text", "text-to-audio"]
    assert header["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in header["configs"]][-2:] == ["traces", "pairs"]
    assert "ualm train s3://b/c" in card and "s3://b/c/audio/audio-{000000.." in card
    single = render_card(corpus, summarize(publish_corpus),
                         CardFacts(["cc0-1.0"], facts.sources, facts.tasks), url=None)
    assert yaml.safe_load(single.split("---\n")[1])["license"] == "cc0-1.0"

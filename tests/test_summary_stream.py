"""The corpus summary (`ualm inspect`, corpus.json's counts, the card) reads its manifests one
part at a time; its figures are those of the whole tables read at once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

from ualm.manifests.card_sections import card_facts
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout


def _whole(root: Path, kind: str) -> list[dict]:
    return ds.dataset(sorted((root / "manifests" / kind).glob("*.parquet"))).to_table().to_pylist()


def test_streamed_summary_matches_the_whole_tables(local_corpus: Path) -> None:
    summary = summarize(local_corpus)
    samples, rejects = _whole(local_corpus, "samples"), _whole(local_corpus, "rejects")
    duplicates = _whole(local_corpus, "duplicates")
    inputs = [r for r in rejects if r["level"] == "input"]
    assert summary["kept"] == len({s["input_index"] for s in samples})
    assert summary["rejected"] == len(inputs) > 0
    assert summary["duplicates"] == len(duplicates) > 0
    assert summary["accounted"] is True
    assert summary["reasons"] == dict(sorted(Counter(r["reason"] for r in inputs).items()))
    assert summary["samples"] == len(samples)
    assert summary["hours"] == round(sum(s["seconds"] for s in samples) / 3600, 6)
    assert summary["shards"] == len({s["shard"] for s in samples if s["modality"] == "audio"})
    assert summary["sources"] == dict(sorted(Counter(s["source"] for s in samples).items()))
    funnel = {r["outcome"]: r["count"] for r in summary["funnel_hours"]}
    assert funnel["duplicate"] == len(duplicates)

    facts = card_facts(CorpusLayout(local_corpus))
    assert sum(s["samples"] for s in facts.sources) == len(samples)
    assert {s["name"] for s in facts.sources} == {s["source"] for s in samples}

"""The blend is applied, not just computed: a spec from `ualm blend` (real token counts, task
targets far from the data's own proportions) drives the trainer's stream, and the token shares
it realises come within 2 percentage points of the spec, per task and per source."""

from __future__ import annotations

from pathlib import Path

import pytest

from ualm.train.blend.stats import corpus_stats
from ualm.train.blend.weights import BlendOptions, compute_blend
from ualm.train.data.datamodule import realised_table
from ualm.train.data.sources import discover, probabilities
from ualm.train.data.stream import PackedStream, StreamConfig
from ualm.train.sequence.text_tokenizer import ByteTokenizer

from .test_train_data import corpus  # noqa: F401  (the module's event-world corpus fixture)

TARGETS = {"understanding": 0.2, "generation": 0.5, "text": 0.3}


def test_realised_token_shares_match_the_spec_within_two_points(corpus: Path) -> None:  # noqa: F811
    stats = corpus_stats([corpus], ByteTokenizer())
    spec = compute_blend(stats, BlendOptions(targets=TARGETS, max_epochs=None))
    sources = discover([corpus])
    stream = PackedStream(sources, probabilities(sources, spec),
                          StreamConfig(512, 4, 4, 0, 8, 0.0), ByteTokenizer())
    it = iter(stream)
    for _ in range(400):
        _, state = next(it)
    realised = realised_table({k: list(v) for k, v in state["counts"].items()}, {})
    assert sum(s["samples"] for s in realised["sources"].values()) > 3000
    for task, target in TARGETS.items():
        assert realised["tasks"][task]["token_share"] == pytest.approx(target, abs=0.02), task
    for source in spec.sources:
        label = f"{source.name}/{source.task}"
        assert realised["sources"][label]["token_share"] == pytest.approx(source.weight,
                                                                          abs=0.02), label

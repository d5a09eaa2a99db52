"""Which streams the trainer draws from: the (corpus, source, task) triples of the corpora, each
with the shards that hold it, and the probability of drawing its next sample (from a blend spec,
or equal shares of samples when no blend is given).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.manifests import names, storage
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.token_sets import corpus_codec, row_task
from ualm.train.blend.spec import BlendSpec, SourceSpec


@dataclass(frozen=True)
class Source:
    corpus: str
    name: str
    task: str
    shards: tuple[str, ...]
    """Absolute shard paths or URLs (token shards, or text shards for text samples), sorted."""
    samples: int
    codec_id: str | None

    @property
    def label(self) -> str:
        return f"{self.name}/{self.task}"


def discover(corpora: Sequence[str | Path], codec_id: str | None = None) -> list[Source]:
    """Every (corpus, source, task) in the corpora's manifests, in a stable order."""
    found: list[Source] = []
    for corpus in corpora:
        root = storage.location(corpus)
        layout = CorpusLayout(root)
        with ThreadPoolExecutor(3) as pool:  # on a bucket each is a round trip or more
            codec_read = pool.submit(corpus_codec, root, codec_id)
            samples_read = pool.submit(layout.folder_table, layout.manifest_folder("samples"),
                                       ["shard", "modality", "source", "task", "extra"])
            traces_read = pool.submit(layout.folder_table, layout.manifest_folder("traces"),
                                      ["shard", "source", "task", "codec_id"])
            codec, table, traces = (codec_read.result(), samples_read.result(),
                                    traces_read.result())
        if table is None:
            continue
        groups: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in table.to_pylist():
            shard = row["shard"]
            if row["modality"] == "audio":
                shard = names.token_shard(codec, names.shard_index(shard))
            task = row_task(row["task"], row["modality"], row["extra"])
            groups[(row["source"], task)][layout.url(shard)] += 1
        _add_traces(layout, codec, traces, groups)
        for (name, task), shards in sorted(groups.items()):
            found.append(Source(root, name, task, tuple(sorted(shards)),
                                sum(shards.values()), codec))
    if not found:
        raise UalmError("the corpora hold no samples", fix="build corpora with `ualm build`")
    return found


def _add_traces(layout: CorpusLayout, codec: str, table: Any,
                groups: dict[tuple[str, str], dict[str, int]]) -> None:
    """Reasoning traces (`ualm synth`): one source per trace kind, shards from their manifest
    (its table: None without traces). Traces carry codes of one codec; those of another token
    set are not this run's data."""
    if table is None:
        return
    for row in table.to_pylist():
        if row["codec_id"] == codec:
            groups[(row["source"], row["task"])][layout.url(row["shard"])] += 1


def probabilities(sources: Sequence[Source], blend: BlendSpec | None) -> list[float]:
    """Per source, the probability of drawing its next sample. Without a blend every source is
    drawn equally often; with one, sources it does not name are not drawn, and a source it names
    that the corpora lack is an error."""
    if blend is None:
        return [1.0 / len(sources)] * len(sources)
    by_key = {(storage.location(s.corpus), s.name, s.task): p
              for s, p in zip(blend.sources, blend.sampling_probabilities(), strict=True)}
    known = {(s.corpus, s.name, s.task) for s in sources}
    for spec, p in zip(blend.sources, blend.sampling_probabilities(), strict=True):
        key = (storage.location(spec.corpus), spec.name, spec.task)
        if p > 0 and key not in known:
            raise UalmError(f"the blend names source {spec.name!r} ({spec.task}) of corpus "
                            f"{spec.corpus}, which the given corpora do not hold",
                            fix="pass that corpus to the trainer, or recompute the blend")
    probs = [by_key.get((s.corpus, s.name, s.task), 0.0) for s in sources]
    if sum(probs) <= 0:
        raise UalmError("the blend gives no weight to any source of the given corpora",
                        fix="recompute the blend for these corpora")
    total = sum(probs)
    return [p / total for p in probs]


def equal_blend(sources: Sequence[Source]) -> BlendSpec:
    """A blend spec giving every source the same share of samples (for tests and defaults)."""
    specs = tuple(SourceSpec(name=s.name, task=s.task, corpus=s.corpus,
                             weight=1.0 / len(sources), tokens=1, samples=1) for s in sources)
    return BlendSpec(sources=specs)

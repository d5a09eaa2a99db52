"""The Lightning data module: token shards of one or more corpora, mixed by a blend, packed into
fixed-size sequences, one deterministic stream per (rank, worker), resumable exactly.

Resume: every batch carries its stream's state (a small JSON-able dict: cursors, generator
states, references of buffered samples). The module records the state of each batch the model
consumed; a checkpoint stores them (gathered from every rank), and a resumed run restarts each
stream from its state, with the DataLoader's round-robin rotated to the worker whose batch is due.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ualm.errors import UalmError
from ualm.train.blend.spec import BlendSpec
from ualm.train.data.sources import Source, discover, probabilities
from ualm.train.data.stream import PackedStream, StreamConfig
from ualm.train.sequence.text_tokenizer import TextTokenizer

STATE_KEY = "stream_state"


@dataclass(frozen=True)
class DataConfig:
    """How samples become batches."""

    seq_len: int = 1024
    """Positions per packed sequence (samples longer than this are skipped and counted)."""
    batch_size: int = 8
    """Packed sequences per batch (per rank; gradient accumulation multiplies it)."""
    shuffle_buffer: int = 256
    """Samples held for shuffling, per stream."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0 reads in the training process)."""
    seed: int = 0
    cfg_dropout: float = 0.05
    """Probability of dropping a generation sample's condition (classifier-free guidance)."""
    codec_id: str | None = None
    """Which token set of the corpora (null: their only one)."""

    def __post_init__(self) -> None:
        if self.seq_len < 16 or self.batch_size < 1 or self.num_workers < 0:
            raise UalmError("data: need seq_len >= 16, batch_size >= 1, num_workers >= 0",
                            fix="correct the data section of the config")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise UalmError(f"data.cfg_dropout must be in [0, 1), got {self.cfg_dropout}",
                            fix="UALM uses 0.05")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StreamDataset(IterableDataset):
    """One PackedStream per DataLoader worker; yields batches (tensors) with their state."""

    def __init__(self, sources: Sequence[Source], probs: Sequence[float], config: StreamConfig,
                 tokenizer: TextTokenizer, rank: int = 0, world: int = 1, workers: int = 0,
                 resume: dict[int, dict] | None = None, rotation: int = 0) -> None:
        self.sources, self.probs, self.config, self.tokenizer = list(sources), list(probs), config, \
            tokenizer
        self.rank, self.world, self.workers = rank, world, max(workers, 1)
        self.resume, self.rotation = resume or {}, rotation

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        logical = ((info.id if info else 0) + self.rotation) % self.workers
        stream = PackedStream(self.sources, self.probs, self.config, self.tokenizer,
                              stream=self.rank * self.workers + logical,
                              streams=self.world * self.workers)
        if logical in self.resume:
            stream.restore(self.resume[logical])
        for arrays, state in stream:
            batch: dict[str, Any] = {k: torch.from_numpy(v) for k, v in arrays.items()}
            batch[STATE_KEY] = {"worker": logical, "state": state}
            yield batch


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """Batches are already tensors; torch's default_convert would walk the whole stream state
    (hundreds of nested lists) for nothing, about a sixth of the loader's time."""
    return batch


class UALMDataModule(L.LightningDataModule):
    """Streams the corpora's token shards in the blend's proportions.

    >>> # dm = UALMDataModule(["corpus/"], DataConfig(seq_len=512), tokenizer, codebooks=8)
    """

    def __init__(self, corpora: Sequence[str | Path], config: DataConfig,
                 tokenizer: TextTokenizer, codebooks: int, blend: BlendSpec | None = None) -> None:
        super().__init__()
        self.corpora = [str(c) for c in corpora]
        self.config, self.tokenizer, self.codebooks, self.blend = config, tokenizer, codebooks, blend
        self.sources: list[Source] = []
        self.probs: list[float] = []
        self._states: dict[int, dict] = {}
        self._consumed = 0
        self._resume: dict[int, dict] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.sources:
            self.sources = discover(self.corpora, self.config.codec_id)
            self.probs = probabilities(self.sources, self.blend)

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def stream_config(self) -> StreamConfig:
        c = self.config
        return StreamConfig(c.seq_len, c.batch_size, c.shuffle_buffer, c.seed, self.codebooks,
                            c.cfg_dropout)

    def dataset(self, workers: int) -> StreamDataset:
        """This rank's stream of batches, from where the last checkpoint left it."""
        self.setup()
        rank, world = self._rank_world()
        return StreamDataset(self.sources, self.probs, self.stream_config(), self.tokenizer,
                             rank, world, workers, self._resume,
                             rotation=self._consumed % max(workers, 1))

    def train_dataloader(self) -> DataLoader:
        workers = self.config.num_workers
        dataset = self.dataset(workers)
        return DataLoader(dataset, batch_size=None, num_workers=workers,
                          persistent_workers=workers > 0, collate_fn=_as_is)

    # -- consumption and checkpoints -----------------------------------------------------
    def record(self, stream_state: dict[str, Any]) -> None:
        """Called by the model for every batch it trains on."""
        self._states[int(stream_state["worker"])] = stream_state["state"]
        self._consumed += 1

    def _local(self) -> dict[str, Any]:
        return {"consumed": self._consumed, "states": {str(k): v for k, v in self._states.items()},
                "workers": max(self.config.num_workers, 1)}

    def state_dict(self) -> dict[str, Any]:
        """Every rank's stream states (a collective call under DDP: every rank saves)."""
        local = self._local()
        ranks = [local]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, local)
        return {"ranks": ranks, "sources": [s.label for s in self.sources]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rank, world = self._rank_world()
        ranks = state_dict["ranks"]
        if len(ranks) != world:
            raise UalmError(f"the checkpoint was written by {len(ranks)} ranks, this run has "
                            f"{world}", fix="resume with the same number of devices and nodes")
        mine = ranks[rank]
        if mine["workers"] != max(self.config.num_workers, 1):
            raise UalmError("the checkpoint's data.num_workers differs from this run's",
                            fix=f"resume with data.num_workers: {mine['workers']}")
        self._consumed = int(mine["consumed"])
        self._resume = {int(k): v for k, v in mine["states"].items()}
        self._states = dict(self._resume)

    def realised(self) -> dict[str, Any]:
        """Samples and tokens trained on per source and per task, with their shares, summed
        over every stream of every rank (a collective call under DDP)."""
        ranks = self.state_dict()["ranks"]
        per_source: dict[str, list[int]] = {}
        skipped: dict[str, int] = {}
        for rank in ranks:
            for state in rank["states"].values():
                for label, (samples, tokens) in state["counts"].items():
                    acc = per_source.setdefault(label, [0, 0])
                    acc[0] += samples
                    acc[1] += tokens
                for reason, n in state["skipped"].items():
                    skipped[reason] = skipped.get(reason, 0) + n
        return realised_table(per_source, skipped)


def realised_table(per_source: dict[str, list[int]], skipped: dict[str, int]) -> dict[str, Any]:
    total_samples = sum(v[0] for v in per_source.values()) or 1
    total_tokens = sum(v[1] for v in per_source.values()) or 1
    sources, tasks = {}, {}
    for label, (samples, tokens) in sorted(per_source.items()):
        sources[label] = {"samples": samples, "tokens": tokens,
                          "sample_share": samples / total_samples,
                          "token_share": tokens / total_tokens}
        task = label.rsplit("/", 1)[1]
        t = tasks.setdefault(task, {"samples": 0, "tokens": 0})
        t["samples"] += samples
        t["tokens"] += tokens
    for t in tasks.values():
        t["sample_share"] = t["samples"] / total_samples
        t["token_share"] = t["tokens"] / total_tokens
    return {"sources": sources, "tasks": tasks, "skipped": skipped}

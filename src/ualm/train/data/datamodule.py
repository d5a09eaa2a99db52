"""The Lightning data module: token shards of one or more corpora, mixed by a blend, packed into
fixed-size sequences, one deterministic stream per row of the global batch (a lane, see
`lanes`), resumable exactly on another number of ranks or loader workers.

Resume: every batch carries the state of its rows' lanes (small JSON-able dicts: cursors,
generator states, references of buffered samples). The module records the states of the batches
the model consumed; a checkpoint stores every lane's (gathered from every rank), and a resumed
run restarts each lane from its state, whichever rank and worker now drive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from ualm.errors import UalmError
from ualm.train.blend.spec import BlendSpec
from ualm.train.data.lanes import STATE_KEY, Joined, LaneDataset, rank_lanes, to_device
from ualm.train.data.sources import Source, discover, probabilities
from ualm.train.data.stream import StreamConfig
from ualm.train.sequence.text_tokenizer import TextTokenizer

__all__ = ["STATE_KEY", "DataConfig", "UALMDataModule", "realised_table", "to_device"]


@dataclass(frozen=True)
class DataConfig:
    """How samples become batches."""

    seq_len: int = 1024
    """Positions per packed sequence. A longer sample is cut into pieces at turn and part
    boundaries (`ualm.train.sequence.split`); one that cannot be cut to fit is skipped and
    counted. Give `ualm blend --seq_len` the same value so its shares count the same pieces."""
    batch_size: int = 8
    """Packed sequences per batch (per rank; gradient accumulation multiplies it)."""
    shuffle_buffer: int = 32
    """Samples held for shuffling, per lane (per row of the global batch)."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0 reads in the training process); each packs a
    block of every batch's rows. The sample order does not depend on it."""
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
        self._states: dict[int, dict] = {}  # lane -> its state after the last row trained on
        self._resume: dict[int, dict] = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.sources:
            self.sources = discover(self.corpora, self.config.codec_id)
            self.probs = probabilities(self.sources, self.blend)

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device,
                                 dataloader_idx: int) -> dict[str, Any]:
        return to_device(batch, device)  # the stream state stays as it is (see to_device)

    def _placement(self) -> tuple[int, int, int]:
        """(rank, world, micro-batches per optimizer step)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1, 1
        return (trainer.global_rank, trainer.world_size,
                int(getattr(trainer, "accumulate_grad_batches", 1)))

    def lanes(self) -> int:
        """Rows of a global batch (ranks x accumulated micro-batches x batch_size): one lane
        each, whatever the number of ranks and loader workers that drive them."""
        _, world, accumulate = self._placement()
        return world * accumulate * self.config.batch_size

    def stream_config(self) -> StreamConfig:
        c = self.config
        return StreamConfig(c.seq_len, 1, c.shuffle_buffer, c.seed, self.codebooks,
                            c.cfg_dropout)

    def dataset(self, workers: int) -> LaneDataset:
        """This rank's rows (one block of them per worker), from where the last checkpoint
        left every lane."""
        self.setup()
        rank, world, accumulate = self._placement()
        slots = rank_lanes(rank, world, self.config.batch_size, accumulate)
        return LaneDataset(self.sources, self.probs, self.stream_config(), self.tokenizer,
                           slots, self.lanes(), self._resume, workers)

    def loader_workers(self) -> int:
        """Worker processes (each packs a block of every batch; never more than its rows)."""
        return min(self.config.num_workers, self.config.batch_size)

    def train_dataloader(self) -> DataLoader | Joined:
        workers = self.loader_workers()
        loader = DataLoader(self.dataset(workers), batch_size=None, num_workers=workers,
                            persistent_workers=workers > 0, collate_fn=_as_is)
        return Joined(loader, workers) if workers > 1 else loader

    # -- consumption and checkpoints -----------------------------------------------------
    def record(self, stream_state: dict[str, Any]) -> None:
        """Called by the model for every batch it trains on: the state of each of its lanes."""
        self._states.update(stream_state["lanes"])

    def _all_lanes(self) -> dict[int, dict]:
        """The latest state of every lane of every rank (a collective call under DDP)."""
        ranks = [self._states]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
            torch.distributed.all_gather_object(ranks, self._states)
        return {int(k): v for states in ranks for k, v in states.items()}

    def state_dict(self) -> dict[str, Any]:
        """Every lane's state, gathered from every rank (under DDP every rank must call it)."""
        lanes = self._all_lanes()
        return {"lanes": {str(k): v for k, v in sorted(lanes.items())}, "rows": self.lanes(),
                "sources": [s.label for s in self.sources]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "lanes" not in state_dict:
            raise UalmError("the checkpoint's data state is per (rank, worker) stream, from a "
                            "version before lanes; it cannot continue its sample order",
                            fix="resume with the ualm version that wrote it")
        rows = int(state_dict["rows"])
        if rows != self.lanes():
            _, world, accumulate = self._placement()
            raise UalmError(f"the checkpoint's global batch has {rows} rows, this run's "
                            f"{self.lanes()} ({world} ranks x {accumulate} micro-batches x "
                            f"batch_size {self.config.batch_size})",
                            fix=f"keep ranks x run.accumulate x data.batch_size at {rows}")
        rank, world, accumulate = self._placement()
        mine = {g for slot in rank_lanes(rank, world, self.config.batch_size, accumulate)
                for g in slot}
        self._resume = {int(k): v for k, v in state_dict["lanes"].items() if int(k) in mine}
        self._states = dict(self._resume)  # only this rank's: the gather joins the ranks'


    def realised(self) -> dict[str, Any]:
        """Samples and tokens trained on per source and per task, with their shares, summed
        over every lane (a collective call under DDP)."""
        per_source: dict[str, list[int]] = {}
        skipped: dict[str, int] = {}
        cut = 0
        for state in self._all_lanes().values():
            cut += int(state.get("cut", 0))
            for label, (samples, tokens) in state["counts"].items():
                acc = per_source.setdefault(label, [0, 0])
                acc[0] += samples
                acc[1] += tokens
            for reason, n in state["skipped"].items():
                skipped[reason] = skipped.get(reason, 0) + n
        return {**realised_table(per_source, skipped), "cut": cut}


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

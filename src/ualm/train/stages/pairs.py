"""Preference pairs for DPO (`ualm synth` writes them: `pairs/pairs-*.tar` with `<key>.json`,
`<key>.chosen.npy`, `<key>.rejected.npy`, and `manifests/pairs/`), laid out as generation
samples: a batch of B pairs is 2B rows, chosen then rejected, each `<|bos|><|user|> caption
<|eot|><|assistant|> audio <|eot|><|eos|>` with the audio and its end as targets, exactly as
generation samples train (no condition dropout).

Pairs are split into training and held-out ones by a stable hash (of the pair's key, of its
rejected clip's key, or of each of its clips' keys), so the split does not move when pairs
are added. Training order is deterministic for a seed: each epoch shuffles
the shards, then the pairs within a shard (a reader holds one shard at a time); batch n of rank
r takes pairs (n * world + r) * B ... + B of that endless order, so resume needs only n.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from ualm.errors import UalmError
from ualm.manifests import storage
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.shard_reader import iter_samples, load_json, load_npy
from ualm.manifests.token_sets import corpus_codec
from ualm.train.data.datamodule import STATE_KEY, DataConfig, to_device
from ualm.train.sequence.chat import build_sample
from ualm.train.sequence.layout import TASK_IDS, empty_rows, place, with_labels
from ualm.train.sequence.text_tokenizer import TextTokenizer

MAX_HELDOUT = 512
"""Held-out pairs evaluated at most (the first ones in key order)."""
REPLAY_KEY = "__replay__"
"""A pair batch's replay batch (packed pretraining sequences), when the stage replays."""


@dataclass(frozen=True)
class PairRef:
    shard: str
    key: str
    rejected: str = ""
    """The rejected clip's corpus key."""
    chosen: str = ""
    """The chosen clip's corpus key."""


@dataclass(frozen=True)
class Pair:
    key: str
    caption: str
    chosen: np.ndarray
    rejected: np.ndarray
    """Codes [K, T] of the clip the scorer ranked higher, and of the lower one."""


def discover_pairs(corpora: Sequence[str | Path], codec_id: str | None = None) -> list[PairRef]:
    """Every preference pair of the corpora (of their token set), sorted by shard and key."""
    found = []
    for corpus in corpora:
        layout = CorpusLayout(storage.location(corpus))
        codec = corpus_codec(layout.location, codec_id)
        table = layout.folder_table(layout.manifest_folder("pairs"),
                                    ["key", "shard", "chosen_key", "rejected_key", "codec_id"])
        if table is None:
            continue
        found += [PairRef(layout.url(r["shard"]), r["key"], r["rejected_key"],
                          r["chosen_key"])
                  for r in table.to_pylist() if r["codec_id"] == codec]
    return sorted(found, key=lambda r: (r.shard, r.key))


def is_heldout(key: str, fraction: float) -> bool:
    """Whether a pair is held out: the first 8 bytes of sha256(key) as a share of 2**64."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_pairs(refs: Sequence[PairRef], fraction: float, by: str = "pair"
                ) -> tuple[list[PairRef], list[PairRef]]:
    """(training pairs, held-out pairs). by "pair": a hash of the pair's key; by "rejected": of
    its rejected clip's key, so that no held-out rejected clip is rejected in training; by
    "clip": `fraction` of the clips are held out, and with them every pair that has one of
    them, chosen or rejected, so training never sees a held-out pair's new clip at all (the
    model must prefer audio that fits an unseen caption, not recall clips it was shown)."""
    if by == "clip":
        held = [is_heldout(r.chosen, fraction) or is_heldout(r.rejected, fraction)
                for r in refs]
    else:
        held = [is_heldout(r.key if by == "pair" else r.rejected, fraction) for r in refs]
    return ([r for r, h in zip(refs, held, strict=True) if not h],
            [r for r, h in zip(refs, held, strict=True) if h])


class PairReader:
    """Pairs by reference, through a small cache of parsed shards."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._shards: OrderedDict[str, dict[str, Pair]] = OrderedDict()

    def get(self, ref: PairRef) -> Pair:
        if ref.shard not in self._shards:
            self._shards[ref.shard] = {key: _pair(key, parts) for key, parts
                                       in iter_samples(ref.shard)}
            if len(self._shards) > self.capacity:
                self._shards.popitem(last=False)
        self._shards.move_to_end(ref.shard)
        try:
            return self._shards[ref.shard][ref.key]
        except KeyError:
            raise UalmError(f"pair {ref.key} is in the manifest but not in {ref.shard}",
                            fix="rerun `ualm synth` on the corpus") from None


def _pair(key: str, parts: dict[str, memoryview]) -> Pair:
    meta = load_json(parts["json"])
    return Pair(key, str(meta.get("caption", "")), load_npy(parts["chosen.npy"]),
                load_npy(parts["rejected.npy"]))


def pair_batch(pairs: Sequence[Pair], tokenizer: TextTokenizer, codebooks: int
               ) -> dict[str, np.ndarray]:
    """2B rows (row 2i: pair i's chosen sample, 2i + 1: its rejected one), padded to the
    longest; the arrays the model's loss reads, as in `PackedStream.next_batch`."""
    laid = [build_sample({"task": "generation", "captions": [p.caption]}, codes, tokenizer,
                         codebooks).laid()
            for p in pairs for codes in (p.chosen, p.rejected)]
    length = max(len(s) for s in laid)
    rows = empty_rows(len(laid), length, codebooks)
    position_ids = np.tile(np.arange(length, dtype=np.int64), (len(laid), 1))
    task_ids = np.full((len(laid), length), -1, dtype=np.int64)
    for i, sample in enumerate(laid):
        place(rows, i, 0, sample)
        task_ids[i, : len(sample)] = TASK_IDS["generation"]
    return {**with_labels(rows), "position_ids": position_ids, "task_ids": task_ids}


def _tensors(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


class PairStream(IterableDataset):
    """Endless batches of training pairs for one rank, from batch `start` on."""

    def __init__(self, refs: Sequence[PairRef], batch_size: int, seed: int,
                 tokenizer: TextTokenizer, codebooks: int, rank: int = 0, world: int = 1,
                 start: int = 0) -> None:
        self.refs, self.batch_size, self.seed = list(refs), batch_size, seed
        self.tokenizer, self.codebooks = tokenizer, codebooks
        self.rank, self.world, self.start = rank, world, start
        self._order: tuple[int, list[int]] | None = None

    def order(self, epoch: int) -> list[int]:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 0xD90])
            by_shard: dict[str, list[int]] = {}
            for i, r in enumerate(self.refs):
                by_shard.setdefault(r.shard, []).append(i)
            groups = [by_shard[s] for s in sorted(by_shard)]
            order = []
            for g in rng.permutation(len(groups)):
                order += [groups[int(g)][int(j)] for j in rng.permutation(len(groups[int(g)]))]
            self._order = (epoch, order)
        return self._order[1]

    def ref(self, position: int) -> PairRef:
        n = len(self.refs)
        return self.refs[self.order(position // n)[position % n]]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        reader = PairReader()
        step = self.start
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            pairs = [reader.get(self.ref(first + j)) for j in range(self.batch_size)]
            batch = _tensors(pair_batch(pairs, self.tokenizer, self.codebooks))
            step += 1
            batch[STATE_KEY] = {"consumed": step}
            yield batch


class WithReplay(IterableDataset):
    """Pair batches, each carrying the next batch of a replay stream under REPLAY_KEY."""

    def __init__(self, pairs: PairStream, replay: IterableDataset) -> None:
        self.pairs, self.replay = pairs, replay

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch, replay in zip(self.pairs, self.replay, strict=False):
            batch[REPLAY_KEY] = replay
            yield batch


class PairDataModule(L.LightningDataModule):
    """Training batches of preference pairs (data.batch_size pairs each), and the held-out
    pairs' batches for measuring the implicit reward. With a `replay` data module, each batch
    also carries a batch of it (its stream state saved and restored with the pairs')."""

    def __init__(self, corpora: Sequence[str | Path], config: DataConfig,
                 tokenizer: TextTokenizer, codebooks: int, heldout_fraction: float,
                 heldout_by: str = "clip", replay: Any = None) -> None:
        super().__init__()
        self.corpora = [str(c) for c in corpora]
        self.config, self.tokenizer, self.codebooks = config, tokenizer, codebooks
        self.heldout_fraction, self.heldout_by = heldout_fraction, heldout_by
        self.replay = replay
        """A `UALMDataModule` with num_workers 0 (it streams inside this loader)."""
        self.train_refs: list[PairRef] = []
        self.heldout_refs: list[PairRef] = []
        self._consumed = 0

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device,
                                 dataloader_idx: int) -> dict[str, Any]:
        return to_device(batch, device)  # the replay's stream state stays as it is

    def setup(self, stage: str | None = None) -> None:
        if self.train_refs:
            return
        refs = discover_pairs(self.corpora, self.config.codec_id)
        if not refs:
            raise UalmError("the corpora hold no preference pairs (manifests/pairs)",
                            fix="run `ualm synth` with the `pairs` kind on them")
        self.train_refs, self.heldout_refs = split_pairs(refs, self.heldout_fraction,
                                                         self.heldout_by)
        if not self.train_refs or not self.heldout_refs:
            raise UalmError(f"{len(refs)} preference pairs are too few to hold out "
                            f"{self.heldout_fraction:.0%} and train on the rest",
                            fix="synthesise more pairs or change stage.heldout_fraction")

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        rank, world = self._rank_world()
        c = self.config
        stream: IterableDataset = PairStream(self.train_refs, c.batch_size, c.seed,
                                             self.tokenizer, self.codebooks, rank, world,
                                             self._consumed)
        if self.replay is not None:
            self.replay.trainer = getattr(self, "trainer", None)  # its rank and world
            stream = WithReplay(stream, self.replay.dataset(0))  # type: ignore[arg-type]
        return DataLoader(stream, batch_size=None, num_workers=0, collate_fn=lambda b: b)

    def heldout_batches(self) -> list[dict[str, Any]]:
        self.setup()
        reader = PairReader()
        pairs = [reader.get(r) for r in sorted(self.heldout_refs, key=lambda r: r.key)
                 [:MAX_HELDOUT]]
        size = self.config.batch_size
        return [_tensors(pair_batch(pairs[at : at + size], self.tokenizer, self.codebooks))
                for at in range(0, len(pairs), size)]

    def record(self, state: dict[str, Any]) -> None:
        self._consumed = int(state["consumed"])

    def record_replay(self, state: dict[str, Any]) -> None:
        self.replay.record(state)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"consumed": self._consumed}
        if self.replay is not None:
            state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._consumed = int(state_dict["consumed"])
        if self.replay is not None and "replay" in state_dict:
            self.replay.trainer = getattr(self, "trainer", None)
            self.replay.load_state_dict(state_dict["replay"])

    def realised(self) -> dict[str, Any]:
        _, world = self._rank_world()
        out: dict[str, Any] = {"pairs": {"train": len(self.train_refs),
                                         "heldout": len(self.heldout_refs),
                                         "trained_on": self._consumed * self.config.batch_size
                                         * world}}
        if self.replay is not None:
            out["replay"] = self.replay.realised()
        return out

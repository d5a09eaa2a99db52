"""The global sample order does not depend on the number of ranks or loader workers: which
samples land in which row of which global batch is the same for every placement of the lanes,
and a checkpoint of one placement resumes exactly on another (real gloo processes: 2 -> 1 -> 2)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from ualm.errors import UalmError
from ualm.train.data.datamodule import STATE_KEY, DataConfig, UALMDataModule
from ualm.train.data.lanes import rank_lanes
from ualm.train.sequence.text_tokenizer import ByteTokenizer

ROWS = 4  # rows of a global batch: lanes


@pytest.fixture(scope="module")
def corpus(event_corpus: Path) -> Path:
    return event_corpus


def _module(corpus: Path, rank: int, world: int, workers: int, accumulate: int = 1
            ) -> UALMDataModule:
    batch = ROWS // (world * accumulate)
    config = DataConfig(seq_len=256, batch_size=batch, shuffle_buffer=4, num_workers=workers)
    dm = UALMDataModule([corpus], config, ByteTokenizer(), codebooks=8)
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world,  # type: ignore[assignment]
                                 accumulate_grad_batches=accumulate)
    dm.setup()
    return dm


def _steps(modules: list[UALMDataModule], steps: int, accumulate: int = 1,
           every_rank: bool = True) -> list[dict[int, list]]:
    """Per global step, the sample references of every row (lane), gathered from the ranks'
    loaders; every batch is recorded as trained on."""
    loaders = [iter(dm.train_dataloader()) for dm in modules]
    out: list[dict[int, list]] = []
    for _ in range(steps):
        rows: dict[int, list] = {}
        for dm, loader in zip(modules, loaders, strict=True):
            rank, world, _ = dm._placement()
            for lanes in rank_lanes(rank, world, dm.config.batch_size, accumulate):
                batch = next(loader)
                state = batch[STATE_KEY]
                dm.record(state)
                for i, lane in enumerate(lanes):  # row i of the batch is that lane's row
                    digest = hashlib.sha1(batch["tokens"][i].numpy().tobytes()).hexdigest()
                    rows[lane] = [[list(r) for r in state["refs"][lane]], digest]
        assert sorted(rows) == list(range(ROWS)) or not every_rank
        out.append(rows)
    return out


PLACEMENTS = [(1, 0, 1), (2, 1, 1), (1, 2, 1), (2, 0, 2), (1, 3, 1)]
"""(ranks, loader workers, accumulated micro-batches), each with ROWS rows per global step."""


def test_the_rows_of_every_global_step_are_the_same_for_every_placement(corpus: Path) -> None:
    sequences = [_steps([_module(corpus, r, world, workers, acc) for r in range(world)], 5, acc)
                 for world, workers, acc in PLACEMENTS]
    assert sum(len(refs) for refs in sequences[0][0].values()) >= ROWS  # rows hold samples
    for placement, sequence in zip(PLACEMENTS[1:], sequences[1:], strict=True):
        assert sequence == sequences[0], placement


def test_a_checkpoint_resumes_on_another_placement(corpus: Path) -> None:
    straight = _steps([_module(corpus, 0, 1, 0)], 6)
    two = [_module(corpus, r, 2, 1) for r in range(2)]
    assert _steps(two, 3) == straight[:3]
    saved = {"lanes": {**two[0].state_dict()["lanes"], **two[1].state_dict()["lanes"]},
             "rows": ROWS, "sources": []}  # what all_gather joins under DDP
    one = _module(corpus, 0, 1, 2)
    one.load_state_dict(json.loads(json.dumps(saved)))  # the state is plain JSON
    assert _steps([one], 3) == straight[3:]
    assert one.realised() == _realised(corpus, 6)


def _realised(corpus: Path, steps: int) -> dict[str, Any]:
    dm = _module(corpus, 0, 1, 0)
    _steps([dm], steps)
    return dm.realised()


def test_old_or_mismatched_checkpoint_states_are_refused_in_one_line(corpus: Path) -> None:
    dm = _module(corpus, 0, 1, 0)
    with pytest.raises(UalmError, match="per \\(rank, worker\\) stream"):
        dm.load_state_dict({"ranks": [{"consumed": 3, "states": {}, "workers": 1}],
                            "sources": []})
    with pytest.raises(UalmError, match="global batch has 8 rows, this run's 4"):
        dm.load_state_dict({"lanes": {}, "rows": 8, "sources": []})


# -- real processes: 2 ranks -> 1 -> 2 over gloo ---------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(corpus: str, rank: int, world: int, workers: int, port: int, steps: int,
          checkpoint_in: str | None, checkpoint_out: str, log: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                             rank=rank, world_size=world)
    dm = _module(Path(corpus), rank, world, workers)
    if checkpoint_in:
        dm.load_state_dict(torch.load(checkpoint_in, weights_only=False))
    rows = _steps([dm], steps, every_rank=False)
    state, realised = dm.state_dict(), dm.realised()  # collectives: every rank calls them
    if rank == 0:
        torch.save(state, checkpoint_out)
    Path(log).write_text(json.dumps({"rows": rows, "realised": realised}))
    if world > 1:
        torch.distributed.destroy_process_group()


def _run(corpus: Path, tmp: Path, phase: str, world: int, workers: int, steps: int,
         checkpoint_in: str | None) -> tuple[list[dict[int, list]], dict[str, Any]]:
    """Runs `world` processes; the global steps' rows joined from every rank's log."""
    port, ctx = _free_port(), multiprocessing.get_context("fork")
    logs = [tmp / f"{phase}-{r}.json" for r in range(world)]
    procs = [ctx.Process(target=_rank, args=(str(corpus), r, world, workers, port, steps,
                                              checkpoint_in, str(tmp / f"{phase}.ckpt"),
                                              str(logs[r])))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, phase
    ranks = [json.loads(log.read_text()) for log in logs]
    rows = [{int(k): v for rank in ranks for k, v in rank["rows"][s].items()}
            for s in range(steps)]
    return rows, ranks[0]["realised"]


def test_gloo_two_ranks_then_one_then_two_continue_the_straight_sequence(
        corpus: Path, tmp_path: Path) -> None:
    straight, realised = _run(corpus, tmp_path, "straight", 1, 0, 9, None)
    first, _ = _run(corpus, tmp_path, "a", 2, 1, 3, None)
    second, _ = _run(corpus, tmp_path, "b", 1, 2, 3, str(tmp_path / "a.ckpt"))
    third, resumed = _run(corpus, tmp_path, "c", 2, 0, 3, str(tmp_path / "b.ckpt"))
    assert first + second + third == straight
    assert resumed == realised
    assert resumed["tasks"].keys() == {"generation", "understanding", "text"}


@pytest.mark.parametrize("module", ["pretrain", "dpo"])
def test_moving_a_batch_to_the_device_leaves_its_stream_states_as_they_are(module: str) -> None:
    """A lane's state holds thousands of sample references; Lightning's generic move rebuilt it
    element by element on every step (a quarter of a tiny-model step). The data modules move the
    tensors, nested replay batches included, and hand the states over untouched."""
    from ualm.train.stages.pairs import PairDataModule

    state = {"lanes": {0: {"buffer": [(0, 1, 2, 3)] * 1000}}, "refs": {0: []}}
    replay_state = {"lanes": {1: {"buffer": [(1, 2, 3, 4)] * 10}}, "refs": {1: []}}
    batch = {"tokens": torch.arange(6).reshape(2, 3), STATE_KEY: state,
             "replay": {"tokens": torch.ones(2), STATE_KEY: replay_state}}
    cls = UALMDataModule if module == "pretrain" else PairDataModule
    move = cls.transfer_batch_to_device
    moved = move(None, batch, torch.device("cpu"), 0)  # type: ignore[arg-type]
    assert moved[STATE_KEY] is state and moved["replay"][STATE_KEY] is replay_state
    assert torch.equal(moved["tokens"], batch["tokens"])
    assert torch.equal(moved["replay"]["tokens"], torch.ones(2))

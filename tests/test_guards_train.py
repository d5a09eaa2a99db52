"""Tests that bite: a resumed run continues the interrupted one (only the remaining steps, the
optimizer's moments, the schedule's position, the data streams' position), not a deterministic
restart that happens to land on the same weights; and `ualm blend fit` picks the mixture with
the LOWEST predicted loss. Each would fail if the behaviour it guards were broken (see the
mutations in the issue note)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.blend.fit import FitOptions
from ualm.train.blend.stats import CorpusStats, StatsRow
from ualm.train.config import TrainConfig
from ualm.train.stages.proxies import fit_blend
from ualm.train.trainer import train

from .test_train_fit import SMALL

STEPS, STOP = 6, 2  # stop off the checkpoint interval (3): the final save is what resumes
CONFIG = {**SMALL, "run": {**SMALL["run"], "max_steps": STEPS}}


class Tape(Callback):
    """What each executed step saw: its global step, a digest of its batch, its learning rate."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.batches: list[str] = []
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        self.steps.append(int(trainer.global_step))
        self.batches.append(hashlib.sha1(batch["tokens"].numpy().tobytes()).hexdigest())
        self.lrs.append(float(trainer.optimizers[0].param_groups[0]["lr"]))


class StopAt(Callback):
    """Interrupts a run after `step` optimizer steps, as a killed job or max_minutes would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


@dataclass(frozen=True)
class Runs:
    corpus: Path
    straight: Path
    straight_tape: Tape
    interrupted: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    # a text-only corpus of two sources: no codec to build, so the fixture takes seconds
    root = tmp_path_factory.mktemp("guards")
    rows = [{"id": f"t{i:03d}", "source": f"notes-{'ab'[i % 2]}", "messages": [
        {"role": "user", "content": f"Question {i}: what is {i} plus {i % 7}?"},
        {"role": "assistant", "content": f"It is {i + i % 7}, said {'slowly' * (i % 3)}."}]}
        for i in range(24)]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = build_corpus([root / "rows.jsonl"], root / "corpus",
                          BuildConfig.from_dict({"shards": {"max_samples": 4}, "tokenize": {"codec": "random"}}), engine="local",
                          progress=False).corpus
    config = TrainConfig.from_dict(CONFIG)
    tape = Tape()
    train([corpus], config, root / "straight", callbacks=[tape])
    stopped = train([corpus], config, root / "interrupted", callbacks=[StopAt(STOP)])
    assert stopped.steps == STOP and tape.steps == list(range(STEPS))
    return Runs(corpus, root / "straight", tape, root / "interrupted")


def _checkpoint(run: Path) -> dict[str, Any]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _resume(runs: Runs, out: Path,
            perturb: Callable[[dict[str, Any]], None] | None = None) -> tuple[Tape, Any]:
    """Reruns a copy of the interrupted run folder (its last.ckpt perturbed first, if asked)."""
    shutil.copytree(runs.interrupted, out)
    if perturb is not None:
        checkpoint = _checkpoint(out)
        perturb(checkpoint)
        torch.save(checkpoint, out / "checkpoints" / "last.ckpt")
    tape = Tape()
    result = train([runs.corpus], TrainConfig.from_dict(CONFIG), out, callbacks=[tape])
    return tape, result


def _same_weights(a: Path, b: Path) -> bool:
    x, y = _checkpoint(a)["state_dict"], _checkpoint(b)["state_dict"]
    assert x.keys() == y.keys()
    return all(torch.equal(x[k], y[k]) for k in x)


def test_resume_runs_only_the_remaining_steps_and_matches_a_straight_run(
        runs: Runs, tmp_path: Path) -> None:
    tape, result = _resume(runs, tmp_path / "resumed")
    straight = runs.straight_tape
    # a restart would execute all STEPS steps again from step 0
    assert tape.steps == list(range(STOP, STEPS)) and result.steps == STEPS
    # the data streams continue where they stopped: the straight run's remaining batches
    assert tape.batches == straight.batches[STOP:]
    # the schedule (and the optimizer's param-group lr) continue: the same learning rates
    assert tape.lrs == pytest.approx(straight.lrs[STOP:], rel=1e-12, abs=0)
    # the same updates from the same moments: equal weight for weight (threads=1, CPU)
    assert _same_weights(tmp_path / "resumed", runs.straight)
    assert _checkpoint(tmp_path / "resumed")["global_step"] == STEPS
    assert (json.loads((tmp_path / "resumed" / "realised_blend.json").read_text())
            == json.loads((runs.straight / "realised_blend.json").read_text()))


def _zero_adam_moments(checkpoint: dict[str, Any]) -> None:
    states = checkpoint["optimizer_states"][0]["state"]
    assert states  # AdamW has moments after STOP steps
    for state in states.values():
        state["exp_avg"].zero_()
        state["exp_avg_sq"].zero_()


def _rewind_schedule(checkpoint: dict[str, Any]) -> None:
    schedule = checkpoint["lr_schedulers"][0]
    assert schedule["last_epoch"] == STOP
    schedule["last_epoch"], schedule["_step_count"] = 0, 1


def _rewind_streams(checkpoint: dict[str, Any]) -> None:
    checkpoint["UALMDataModule"]["lanes"] = {}


def test_resume_uses_the_checkpoints_optimizer_schedule_and_stream_state(
        runs: Runs, tmp_path: Path) -> None:
    """If a resumed run equals the straight one only because the checkpoint's state is used,
    then spoiling that state must change the outcome (else the equality proves nothing)."""
    straight = runs.straight_tape
    tape, _ = _resume(runs, tmp_path / "moments", _zero_adam_moments)
    assert tape.steps == list(range(STOP, STEPS)) and tape.batches == straight.batches[STOP:]
    assert not _same_weights(tmp_path / "moments", runs.straight)

    tape, _ = _resume(runs, tmp_path / "schedule", _rewind_schedule)
    assert tape.lrs[0] == pytest.approx(straight.lrs[STOP])  # the optimizer's lr is restored
    assert tape.lrs[1:] != pytest.approx(straight.lrs[STOP + 1:])  # then the rewound schedule
    assert not _same_weights(tmp_path / "schedule", runs.straight)

    tape, _ = _resume(runs, tmp_path / "streams", _rewind_streams)
    assert tape.batches == straight.batches[:STEPS - STOP]  # the streams start over
    assert not _same_weights(tmp_path / "streams", runs.straight)


# -- blend fit ----------------------------------------------------------------------------------
SOURCES = (("gen-a", "generation"), ("und-a", "understanding"), ("text-a", "text"))
LINEAR = {"generation": np.array([1.0, 3.0, 2.0]), "understanding": np.array([2.0, 0.5, 3.0])}
"""Held-out loss per task = LINEAR[task] . mixture + 1 (exactly what the ridge fit can model).
Equal task weights: objective [3.0, 3.5, 5.0] . w, least at all of gen-a. Understanding weighted
4x: [9, 5, 14] . w, least at all of und-a. Per task the optima differ, so the sum is used."""


def _stats() -> CorpusStats:
    rows = tuple(StatsRow("corpus", name, task, None, 10, 10.0, 1000, 0)
                 for name, task in SOURCES)
    return CorpusStats(corpora=(), rows=rows, tokenizer="bytes-v1", codec_id=None)


def _write_proxies(workdir: Path, options: FitOptions) -> None:
    """The proxies' held-out losses, written where fit_blend finds finished proxy runs; the
    mixtures are the ones fit_blend draws (the same seeded generator, drawn first)."""
    rng = np.random.default_rng(options.seed)
    mixtures = rng.dirichlet([options.alpha] * len(SOURCES), size=options.proxies)
    for k, mixture in enumerate(mixtures):
        out = workdir / f"proxy-{k:03d}"
        out.mkdir(parents=True)
        losses = {t: round(float(c @ mixture) + 1.0, 6) for t, c in LINEAR.items()}
        (out / "heldout.json").write_text(json.dumps(losses))


@pytest.mark.parametrize(("task_weights", "best", "worst"), [
    (None, "generation:gen-a", "text:text-a"),
    ({"generation": 1.0, "understanding": 4.0}, "understanding:und-a", "text:text-a"),
])
def test_blend_fit_chooses_the_least_predicted_loss(tmp_path: Path, task_weights: Any,
                                                   best: str, worst: str) -> None:
    options = FitOptions(proxies=6, seed=0, candidates=20000, task_weights=task_weights)
    _write_proxies(tmp_path / "fit", options)
    spec, report = fit_blend(["unused"], ["unused"], _stats(), options, tmp_path / "fit")
    mixture = report["mixture"]
    # the true optimum is the vertex `best`; 20000 Dirichlet candidates come within ~2 %
    assert mixture[best] > 0.95 and mixture[worst] < 0.05
    weights = task_weights or dict.fromkeys(LINEAR, 1.0)
    objective = sum(weights[t] * c for t, c in LINEAR.items())
    w = np.array([mixture[f"{task}:{name}"] for name, task in SOURCES])
    assert float(objective @ w) <= float(objective.min()) + 0.05 * float(np.ptp(objective))
    # the regression recovers the losses (R^2 ~ 1) and predicts the chosen mixture's loss
    assert all(r2 > 0.999 for r2 in report["fit_r2"].values())
    for task, c in LINEAR.items():
        assert report["predicted_loss"][task] == pytest.approx(float(c @ w) + 1.0, abs=0.01)
    spec_weights = {f"{s.task}:{s.name}": s.weight for s in spec.sources}
    assert spec_weights[best] == pytest.approx(mixture[best], abs=1e-5)

"""UALM's training stages on a small event-world corpus with traces and pairs: align trains only
the rows UALM adds (frozen weights bit-identical), each stage starts from the previous one's
weights and records what it trained, sft mixes traces with replay and learns the enrichment
format, dpo keeps a frozen reference, learns its pairs (a swapped loss fails) and measures
held-out ones, and bad input is refused before any training step. The convincing figures are in
benchmarks/bench_train_stages.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from ualm.cli import main
from ualm.errors import UalmError
from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus
from ualm.train.config import TrainConfig, presets
from ualm.train.data.sources import discover
from ualm.train.sequence.layout import ASSISTANT, AUDIO, IGNORE, N_SPECIAL
from ualm.train.stages.pairs import PairReader, discover_pairs, is_heldout, pair_batch, split_pairs
from ualm.train.stages.stage import run_stage, sft_probabilities

from .synth_helpers import copy_corpus, event_corpus

SMALL: dict[str, Any] = {
    "model": {"hidden_size": 32, "layers": 1, "heads": 2, "kv_heads": 1,
              "intermediate_size": 64, "max_positions": 1024, "tie_embeddings": False},
    "data": {"seq_len": 1024, "batch_size": 2, "shuffle_buffer": 8},
    "optim": {"lr": 0.003, "warmup_steps": 1, "weight_decay": 0.1},
    "run": {"max_steps": 3, "checkpoint_every": 100, "log_every": 1, "accelerator": "cpu",
            "devices": 1, "progress_bar": False, "threads": 1},
}


def _config(**sections: dict[str, Any]) -> TrainConfig:
    data = {k: dict(v) for k, v in SMALL.items()}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return TrainConfig.from_dict(data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 clips of 9 classes, their traces and 36 preference pairs (2 per clip)."""
    root = copy_corpus(event_corpus(tmp_path_factory.mktemp("stages")),
                       tmp_path_factory.mktemp("stages-full") / "corpus")
    synth_corpus(root, SynthConfig(max_samples=20, pair_candidates=6), progress=False)
    return root


@pytest.fixture(scope="module")
def pretrained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = run_stage("pretrain", [corpus], _config(), tmp_path_factory.mktemp("pretrain"))
    assert result.checkpoint is not None
    return result.checkpoint


def _load(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)


def test_align_trains_only_the_new_rows(corpus: Path, pretrained: Path, tmp_path: Path) -> None:
    config = _config(optim={"lr": 0.01}, stage={"name": "align"})
    result = run_stage(None, [corpus], config, tmp_path / "align", init=pretrained)
    before, after = _load(pretrained), _load(result.checkpoint)
    meta = after["ualm"]
    assert meta["stage"] == "align" and meta["init"] == str(pretrained)
    assert before["ualm"]["stage"] == "pretrain"
    text = slice(N_SPECIAL, N_SPECIAL + 256)  # the byte tokenizer's rows
    tables = {"model.lm.model.embed_tokens.weight", "model.lm.lm_head.weight"}
    assert set(meta["trained"]["trainable"]) == {t.removeprefix("model.") for t in tables}
    assert len(meta["trained"]["frozen"]) > 5
    a, b = before["state_dict"], after["state_dict"]
    for name in a:
        if name in tables:
            assert torch.equal(a[name][text], b[name][text]), name  # text rows: bit-identical
            assert not torch.equal(a[name][text.stop:], b[name][text.stop:]), name  # codes moved
            assert not torch.equal(a[name][:N_SPECIAL], b[name][:N_SPECIAL]), name
        else:
            assert torch.equal(a[name], b[name]), name  # the backbone: bit-identical
    # the same steps as pretrain move the text rows too: the freeze is what kept them
    free = run_stage("pretrain", [corpus], _config(optim={"lr": 0.01}), tmp_path / "free",
                     init=pretrained)
    moved = _load(free.checkpoint)["state_dict"]["model.lm.model.embed_tokens.weight"]
    assert not torch.equal(moved[text], a["model.lm.model.embed_tokens.weight"][text])


def test_sft_mixes_traces_with_replay(corpus: Path, pretrained: Path, tmp_path: Path) -> None:
    sources = discover([corpus])
    probs = sft_probabilities(sources, None, 0.25)
    traces = sum(p for s, p in zip(sources, probs, strict=True) if s.task == "reasoning")
    assert traces == pytest.approx(0.75) and sum(probs) == pytest.approx(1.0)
    assert {s.name for s in sources if s.task == "reasoning"} == {
        "synth-enrichment", "synth-dialogue", "synth-reflection"}
    config = _config(stage={"name": "sft", "replay": 0.25})
    result = run_stage("sft", [corpus], config, tmp_path / "sft", init=pretrained)
    assert _load(result.checkpoint)["ualm"]["stage"] == "sft"
    tasks = result.realised["tasks"]
    assert tasks["reasoning"]["samples"] > 0 and result.realised["skipped"]["too_long"] == 0
    assert sum(t["samples"] for n, t in tasks.items() if n != "reasoning") > 0  # replay


def test_sft_learns_to_write_a_rich_caption_before_the_audio(corpus: Path,
                                                             tmp_path: Path) -> None:
    """Enrichment traces only, briefly (about 15 s): asked in the enrichment format, the model
    answers in the rich caption's format (measured: 30 steps write 'Ke t t t', 150 steps
    'Keywords: a click train: ...', 300 steps the right caption)."""
    from ualm.train.model.generate import reply_before_audio
    from ualm.train.model.module import load_trained

    config = _config(model={"hidden_size": 64, "heads": 4, "kv_heads": 2,
                            "intermediate_size": 128},
                     data={"seq_len": 512, "batch_size": 4},
                     optim={"lr": 0.005, "warmup_steps": 5, "weight_decay": 0.0},
                     run={"max_steps": 150}, stage={"name": "sft", "replay": 0.0})
    result = run_stage("sft", [_only_traces(corpus, tmp_path, ("enrichment",))], config,
                       tmp_path / "sft")
    text, end = reply_before_audio(load_trained(result.checkpoint), "I need the sound of "
                                   "white noise.", 40)
    assert text.startswith("Keywords: "), (text, end)


def _only_traces(corpus: Path, tmp_path: Path, kinds: tuple[str, ...]) -> Path:
    root = copy_corpus(corpus, tmp_path / "traces-only")
    synth_corpus(root, SynthConfig(kinds=kinds, max_samples=20), progress=False)
    shutil.rmtree(root / "pairs")
    shutil.rmtree(root / "manifests" / "pairs")
    return root


def test_sft_targets_are_the_assistant_turns(corpus: Path) -> None:
    from ualm.manifests.shard_reader import iter_samples, load_json, load_npy
    from ualm.train.sequence.chat import build_sample
    from ualm.train.sequence.text_tokenizer import ByteTokenizer

    shard = sorted((corpus / "traces").glob("traces-*.tar"))[0]
    _key, parts = next(iter_samples(shard))
    meta = load_json(parts["json"])
    codes = {e[:-4]: load_npy(v) for e, v in parts.items() if e.endswith(".npy")}
    arrays = build_sample(meta, codes, ByteTokenizer(), 8).arrays()
    stream0 = arrays["tokens"][0]
    target = np.zeros(len(stream0), dtype=bool)  # position p is a target: p - 1 predicts it
    target[1:] = arrays["text_labels"][:-1] != IGNORE
    first = int(list(stream0).index(ASSISTANT))
    assert meta["kind"] == "enrichment" and not target[: first + 1].any()
    assert target[first + 1 :].all()  # rich caption, audio, <|eot|>, <|eos|>
    assert stream0[first + 1] != AUDIO  # text first


class _Reference(L.Callback):
    """Checks, after training, that the reference is a frozen submodule equal to the init."""

    def __init__(self, init: dict[str, torch.Tensor]) -> None:
        self.init, self.checked = init, False

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        ref = module.reference
        assert any(m is ref for m in module.modules()) and not ref.training
        assert not any(p.requires_grad for p in ref.parameters())
        state = ref.state_dict()
        assert all(torch.equal(state[k], v) for k, v in self.init.items())
        policy = module.model.state_dict()
        assert any(not torch.equal(policy[k], v) for k, v in self.init.items())
        self.checked = True


class _TrainingPairs(L.Callback):
    """The implicit reward on the pairs DPO trains on, before the first step and after the
    last: what the objective optimises, measured the same way as on held-out pairs."""

    def __init__(self) -> None:
        self.measures: list[dict[str, float]] = []

    def _measure(self, trainer: L.Trainer, module: Any) -> None:
        dm = trainer.datamodule
        pairs = [PairReader().get(r) for r in dm.train_refs]
        batches = [{k: torch.from_numpy(v) for k, v in
                    pair_batch(pairs[at:at + 8], dm.tokenizer, dm.codebooks).items()}
                   for at in range(0, len(pairs), 8)]
        self.measures.append(module.evaluate_heldout(batches))

    on_train_start = on_train_end = _measure


def test_dpo_learns_its_pairs_and_measures_pairs_of_unseen_clips(corpus: Path, pretrained: Path,
                                                                  tmp_path: Path) -> None:
    """On this 18-clip world a 1-layer model learns the pairs it trains on (implicit-reward
    accuracy 0 -> 0.74, measured); that the preference carries over to pairs of clips training
    never saw needs a pretrained model and more pairs: benchmarks/bench_train_stages.py."""
    refs = discover_pairs([corpus])
    train, heldout = split_pairs(refs, 0.15, by="clip")
    assert len(refs) >= 24 and train and heldout
    held_clips = {k for r in heldout for k in (r.chosen, r.rejected) if is_heldout(k, 0.15)}
    assert all(is_heldout(r.chosen, 0.15) or is_heldout(r.rejected, 0.15) for r in heldout)
    assert not held_clips & {k for r in train for k in (r.chosen, r.rejected)}
    loose_train, loose_heldout = split_pairs(refs, 0.25, by="pair")
    assert all(is_heldout(r.key, 0.25) for r in loose_heldout) and loose_train
    strict_train, strict_heldout = split_pairs(refs, 0.25, by="rejected")
    assert strict_heldout and not ({r.rejected for r in strict_heldout}
                                   & {r.rejected for r in strict_train})
    init = {k.removeprefix("model."): v for k, v in _load(pretrained)["state_dict"].items()}
    check, trained = _Reference(init), _TrainingPairs()
    config = _config(data={"batch_size": 4}, optim={"lr": 0.01, "weight_decay": 0.0},
                     run={"max_steps": 80},
                     stage={"name": "dpo", "beta": 0.5, "ce_warmup_steps": 2, "ce_weight": 0.1,
                            "heldout_fraction": 0.15, "eval_every": 40})
    result = run_stage("dpo", [corpus], config, tmp_path / "dpo", init=pretrained,
                       callbacks=[check, trained])
    assert check.checked
    saved = _load(result.checkpoint)
    assert saved["ualm"]["stage"] == "dpo" and saved["ualm"]["init"] == str(pretrained)
    assert not any(k.startswith("reference.") for k in saved["state_dict"])
    history = json.loads((tmp_path / "dpo" / "dpo_heldout.json").read_text())
    assert [h["step"] for h in history] == [0, 40, 80]
    start, end = history[0], history[-1]
    assert start["margin"] == 0.0 and start["accuracy"] == 0.0  # policy == reference
    assert end["pairs"] == len(heldout) and all(np.isfinite(v) for v in end.values())
    before, after = trained.measures
    assert before["pairs"] == len(train) and before["accuracy"] == before["margin"] == 0.0
    assert after["accuracy"] >= 0.65 and after["margin"] > 0, trained.measures
    assert after["logp_margin"] > before["logp_margin"] + 2, trained.measures
    metrics = (tmp_path / "dpo" / "logs" / "metrics.csv").read_text()
    assert "train/reward_accuracy" in metrics and "heldout/accuracy" in metrics
    # rerun the folder with more steps: resumes (the reference rebuilt from the init)
    longer = dataclasses.replace(config, run=dataclasses.replace(config.run, max_steps=82))
    again = run_stage("dpo", [corpus], longer, tmp_path / "dpo", init=pretrained)
    assert again.steps == 82
    resumed = json.loads((tmp_path / "dpo" / "dpo_heldout.json").read_text())
    assert [h["step"] for h in resumed] == [0, 40, 80, 82] and resumed[:3] == history


def test_dpo_replays_the_pretraining_sources_and_resumes_exactly(corpus: Path, pretrained: Path,
                                                                 tmp_path: Path) -> None:
    """stage.replay_weight: each step also trains on a packed batch of the pretraining sources
    (traces left out); its stream is saved with the pairs', so a resumed run matches a straight
    one weight for weight."""
    config = _config(data={"batch_size": 2}, run={"max_steps": 6, "checkpoint_every": 3},
                     stage={"name": "dpo", "ce_warmup_steps": 1, "replay_weight": 1.0,
                            "heldout_fraction": 0.15, "eval_every": 100})
    straight = run_stage("dpo", [corpus], config, tmp_path / "straight", init=pretrained)
    replayed = straight.realised["replay"]
    drawn = {task: row["samples"] for task, row in replayed["tasks"].items() if row["samples"]}
    assert drawn.keys() == {"understanding", "generation", "text"} and sum(drawn.values()) > 6
    assert "train/replay_loss" in (tmp_path / "straight" / "logs" / "metrics.csv").read_text()
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "straight" / "checkpoints" / "step-3.ckpt",
                resumed / "checkpoints" / "last.ckpt")
    again = run_stage("dpo", [corpus], config, resumed, init=pretrained)
    a = _load(straight.checkpoint)["state_dict"]
    b = _load(again.checkpoint)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again.realised == straight.realised


def test_dpo_under_ddp(corpus: Path, pretrained: Path, tmp_path: Path) -> None:
    """Two CPU processes (gloo): the reference lives in the module the strategy wraps."""
    config = tmp_path / "dpo.yaml"
    data = {**SMALL, "data": {**SMALL["data"], "batch_size": 2},
            "run": {**SMALL["run"], "max_steps": 3},
            "stage": {"name": "dpo", "ce_warmup_steps": 1, "heldout_fraction": 0.25,
                      "eval_every": 3}}
    config.write_text(yaml.safe_dump(data))
    import ualm

    source = str(Path(ualm.__file__).parents[1])  # this checkout's package, from any folder
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "ualm.cli", "train", str(corpus), "--config", str(config),
         "--init", str(pretrained), "--out", str(tmp_path / "run"), "--devices", "2",
         "--strategy", "ddp", "--quiet"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out pairs: reward accuracy" in done.stdout
    saved = _load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 3 and saved["ualm"]["stage"] == "dpo"
    assert saved["PairDataModule"]["consumed"] == 3
    history = json.loads((tmp_path / "run" / "dpo_heldout.json").read_text())
    assert [h["step"] for h in history] == [0, 3]


def test_bad_input_is_refused_before_training(corpus: Path, pretrained: Path,
                                              tmp_path: Path) -> None:
    pairs_only = copy_corpus(corpus, tmp_path / "pairs-only")
    synth_corpus(pairs_only, SynthConfig(kinds=("pairs",), max_samples=20, pair_candidates=3),
                 progress=False)
    traces_only = _only_traces(corpus, tmp_path, ("enrichment",))
    cases = [
        ("sft", pairs_only, pretrained, _config(), "only preference pairs"),
        ("dpo", traces_only, pretrained, _config(), "only reasoning traces"),
        ("dpo", corpus, None, _config(), "no reference model"),
        ("sft", corpus, pretrained, _config(model={"hidden_size": 64}),
         "hidden_size: config 64, checkpoint 32"),
        ("align", corpus, pretrained, _config(model={"codebooks": 4}),
         "has 8 codebooks, the model 4"),  # the corpus's count, checked first
        ("sft", corpus, tmp_path / "none.ckpt", _config(), "not found"),
    ]
    other_vocab = tmp_path / "other.ckpt"
    checkpoint = _load(pretrained)
    checkpoint["ualm"]["tokenizer"] = "hf:other:0123456789ab"
    torch.save(checkpoint, other_vocab)
    cases.append(("sft", corpus, other_vocab, _config(), "tokenizer: config 'bytes-v1'"))
    for i, (stage, data, init, config, message) in enumerate(cases):
        with pytest.raises(UalmError, match=message):
            run_stage(stage, [data], config, tmp_path / f"run{i}", init=init)
        assert not (tmp_path / f"run{i}").exists()  # refused before anything ran


def test_presets_and_cli(corpus: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    names = set(presets())
    for size in ("tiny", "qwen2.5-1.5b"):
        assert TrainConfig.from_yaml(size).stage.name == "pretrain"
        for stage in ("align", "sft", "dpo"):
            config = TrainConfig.from_yaml(f"{size}-{stage}")
            assert f"{size}-{stage}" in names and config.stage.name == stage
            base = TrainConfig.from_yaml(size)
            assert config.model == base.model  # one architecture through the chain
    assert TrainConfig.from_yaml("tiny-dpo").data.seq_len == TrainConfig.from_yaml("tiny"
                                                                                  ).data.seq_len
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(UalmError, match="extends itself"):
        TrainConfig.from_yaml(loop)
    assert main(["train", str(corpus), "--config", "tiny-dpo", "--out",
                 str(tmp_path / "dpo")]) == 2
    assert "no reference model" in capsys.readouterr().err
    assert main(["train", str(corpus), "--config", "tiny", "--stage", "dpo", "--out",
                 str(tmp_path / "dpo")]) == 2
    assert "no reference model" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["model.freeze", "config"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"ualm.train.{module}"))
    assert result.attempted > 0 and result.failed == 0

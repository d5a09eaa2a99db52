"""UALM's training stages, each a run that starts from the previous one's checkpoint:

    align     the backbone frozen; the rows UALM adds to the vocabulary (special tokens, codebook
              blocks of the embedding table and of the head) train, at the stage's own LR, on
              the blend without reasoning traces
    pretrain  everything trains on the blend (the default; without a blend every source,
              traces included, is drawn equally often)
    sft       reasoning traces (enrichment, dialogue, self-reflection) mixed with a replay share
              of the pretraining sources; loss on the assistant's turns only (`chat.py`)
    dpo       preference pairs against a frozen reference (the init checkpoint), after a
              cross-entropy warm-up on the chosen samples and with a cross-entropy regulariser

`--init CKPT` carries the weights only: the optimizer, the schedule and the data streams start
fresh. Its architecture and vocabulary must match the config's. The checkpoint a stage writes
records the stage, which parameters (or rows) trained, and its init.

>>> # run_stage("sft", ["corpus/"], TrainConfig.from_yaml("tiny-sft"), "runs/sft",
>>> #           init="runs/pretrain/checkpoints/last.ckpt")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ualm.errors import UalmError
from ualm.train.blend.spec import BlendSpec
from ualm.train.config import STAGES, TrainConfig
from ualm.train.data.datamodule import UALMDataModule
from ualm.train.data.sources import Source, discover, probabilities
from ualm.train.model.model import ModelConfig
from ualm.train.model.module import UALMModule, read_checkpoint
from ualm.train.sequence.layout import BLOCK, N_SPECIAL
from ualm.train.sequence.text_tokenizer import load_text_tokenizer
from ualm.train.stages.dpo import DPOModule
from ualm.train.stages.pairs import PairDataModule, discover_pairs
from ualm.train.trainer import TrainResult, fit, optim_dict, prepare, with_corpus_codebooks

REASONING = "reasoning"


@dataclass(frozen=True)
class InitCheckpoint:
    path: Path
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]


def architecture(model: ModelConfig) -> dict[str, Any]:
    """What must match for weights to carry over, as the config describes the model."""
    tokenizer = load_text_tokenizer(model.tokenizer or model.backbone)
    if model.backbone is not None:
        hf = json.loads((Path(model.backbone) / "config.json").read_text())
        sizes = _hf_sizes(hf)
    else:
        sizes = {"hidden_size": model.hidden_size, "layers": model.layers, "heads": model.heads,
                 "kv_heads": model.kv_heads, "intermediate_size": model.intermediate_size,
                 "tied_head": model.tie_embeddings}
    return {**sizes, "codebooks": model.codebooks, "tokenizer": tokenizer.name,
            "text_vocab": tokenizer.vocab_size}


def _hf_sizes(hf: dict[str, Any]) -> dict[str, Any]:
    return {"hidden_size": hf.get("hidden_size"), "layers": hf.get("num_hidden_layers"),
            "heads": hf.get("num_attention_heads"),
            "kv_heads": hf.get("num_key_value_heads", hf.get("num_attention_heads")),
            "intermediate_size": hf.get("intermediate_size"),
            "tied_head": bool(hf.get("tie_word_embeddings", True))}


def checkpoint_architecture(meta: dict[str, Any]) -> dict[str, Any]:
    """The same fields, as a checkpoint records its model."""
    k = int(meta["model"]["codebooks"])
    vocab = int(meta["hf_config"]["vocab_size"])
    return {**_hf_sizes(meta["hf_config"]), "codebooks": k, "tokenizer": meta["tokenizer"],
            "text_vocab": vocab - N_SPECIAL - k * BLOCK}


def read_init(path: str | Path, model: ModelConfig) -> InitCheckpoint:
    """The init checkpoint, checked against the config's model (architecture and vocabulary)."""
    meta, state = read_checkpoint(path)
    want, have = architecture(model), checkpoint_architecture(meta)
    differ = [f"{k}: config {want[k]!r}, checkpoint {have[k]!r}" for k in want
              if want[k] != have[k]]
    if differ:
        raise UalmError(f"--init {path} is of another model ({'; '.join(differ)})",
                        fix="pass a checkpoint of the previous stage of this config, or the "
                            "config that checkpoint was trained with")
    return InitCheckpoint(Path(path), meta, state)


def check_inputs(stage: str, corpora: Sequence[str | Path], config: TrainConfig,
                 init: str | Path | None) -> list[Source]:
    """Errors before any training step for data a stage cannot use; the corpora's sources."""
    if stage not in STAGES:
        raise UalmError(f"unknown stage {stage!r}", fix=f"one of: {', '.join(STAGES)}")
    if not corpora:
        raise UalmError("no corpora to train on", fix="pass one or more corpus folders")
    if stage == "dpo" and init is None:
        raise UalmError("the dpo stage has no reference model",
                        fix="pass --init with the sft checkpoint (the reference and the start)")
    sources = discover(corpora, config.data.codec_id)
    traces = [s for s in sources if s.task == REASONING]
    if stage == "sft" and not traces:
        pairs = discover_pairs(corpora, config.data.codec_id)
        raise UalmError("the sft stage needs reasoning traces, and the corpora hold "
                        + ("only preference pairs (the dpo stage's data)" if pairs else "none"),
                        fix="run `ualm synth` with trace kinds (enrichment, dialogue, "
                            "reflection), or train the pairs with --stage dpo")
    if stage == "dpo" and not discover_pairs(corpora, config.data.codec_id):
        raise UalmError("the dpo stage needs preference pairs, and the corpora hold "
                        + ("only reasoning traces (the sft stage's data)" if traces else "none"),
                        fix="run `ualm synth` with the `pairs` kind, or train the traces with "
                            "--stage sft")
    return sources


def sft_probabilities(sources: Sequence[Source], blend: BlendSpec | None,
                      replay: float) -> list[float]:
    """Reasoning sources share 1 - replay (in the blend's proportions, or equally when it does
    not name them); the pretraining sources share `replay` in the blend's proportions."""
    is_trace = [s.task == REASONING for s in sources]
    others = [s for s, t in zip(sources, is_trace, strict=True) if not t]
    if replay > 0 and not others:
        raise UalmError(f"stage.replay is {replay}, but the corpora hold only reasoning traces",
                        fix="pass the pretraining corpora too, or set stage.replay: 0")
    base = probabilities(sources, blend)
    out = []
    for group, share in ((True, 1.0 - replay), (False, replay)):
        mine = [p for p, t in zip(base, is_trace, strict=True) if t == group]
        total = sum(mine)
        n = len(mine)
        out.append([share * (p / total if total > 0 else 1.0 / n) for p in mine])
    traces, rest = iter(out[0]), iter(out[1])
    return [next(traces) if t else next(rest) for t in is_trace]


def align_probabilities(sources: Sequence[Source], blend: BlendSpec | None) -> list[float]:
    """The blend without reasoning traces: alignment learns audio in and out, not reasoning."""
    base = [0.0 if s.task == REASONING else p
            for s, p in zip(sources, probabilities(sources, blend), strict=True)]
    if sum(base) <= 0:
        raise UalmError("the align stage needs understanding, generation or text samples, and "
                        "the corpora (or the blend) give it only reasoning traces",
                        fix="pass the tokenized corpora, or a blend that names their sources")
    return [p / sum(base) for p in base]


class StageDataModule(UALMDataModule):
    """The data module with a stage's mixture: align (and dpo's replay) leave the traces out;
    sft draws traces plus a replay share of the rest."""

    def __init__(self, *args: Any, stage: str, replay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage, self.replay = stage, replay

    def setup(self, stage: str | None = None) -> None:
        if not self.sources:
            self.sources = discover(self.corpora, self.config.codec_id)
            self.probs = (sft_probabilities(self.sources, self.blend, self.replay)
                          if self.stage == "sft" else
                          align_probabilities(self.sources, self.blend))


def run_stage(stage: str | None, corpora: Sequence[str | Path], config: TrainConfig,
              out: str | Path, init: str | Path | None = None, blend: BlendSpec | None = None,
              resume: bool = True, callbacks: Sequence[Any] = (),
              heldout: Sequence[str | Path] = ()) -> TrainResult:
    """Trains one stage into `out` (rerun the same folder to resume it). `stage` None: the
    config's stage.name. For dpo, `out/dpo_heldout.json` holds the held-out measures by step;
    the other stages measure the loss on `heldout` corpora every `run.val_every` steps."""
    name = stage or config.stage.name
    config = dataclasses.replace(config, stage=dataclasses.replace(config.stage, name=name))
    check_inputs(name, corpora, config, init)
    config = with_corpus_codebooks(corpora, config)
    start = read_init(init, config.model) if init is not None else None
    out = prepare(config, out)
    hf_config = start.meta["hf_config"] if start else None  # no backbone weights to load
    max_steps = config.run.max_steps
    module: Any
    if name == "dpo":
        assert start is not None
        s = config.stage
        module = DPOModule(config.model.to_dict(), optim_dict(config), max_steps, hf_config,
                           {"beta": s.beta, "ce_warmup_steps": s.ce_warmup_steps,
                            "ce_weight": s.ce_weight, "replay_weight": s.replay_weight,
                            "eval_every": s.eval_every})
        module.start_from(start.state, str(start.path))
        replay = (StageDataModule(corpora, dataclasses.replace(config.data, num_workers=0),
                                  module.model.tokenizer, config.model.codebooks, blend,
                                  stage="dpo", replay=0.0) if s.replay_weight > 0 else None)
        datamodule: Any = PairDataModule(corpora, config.data, module.model.tokenizer,
                                         config.model.codebooks, s.heldout_fraction,
                                         s.heldout_by, replay)
    else:
        module = UALMModule(config.model.to_dict(), optim_dict(config), max_steps, hf_config,
                            stage=name)
        if start is not None:
            module.model.load_state_dict(start.state)
            module.init = str(start.path)
        args = (corpora, config.data, module.model.tokenizer, config.model.codebooks, blend)
        datamodule = (UALMDataModule(*args) if name == "pretrain" else
                      StageDataModule(*args, stage=name, replay=config.stage.replay))
    result = fit(module, datamodule, config, out, resume, callbacks,
                 heldout if name != "dpo" else ())  # dpo measures its held-out pairs
    if name == "dpo" and module.trainer.is_global_zero:
        (out / "dpo_heldout.json").write_text(json.dumps(module.heldout, indent=2) + "\n")
    return result

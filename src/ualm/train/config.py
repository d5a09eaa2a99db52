"""Training configuration: documented dataclasses, validated at construction; YAML presets
(src/ualm/train/presets/*.yaml, or any file) mirror them section by section.

>>> cfg = TrainConfig.from_dict({"optim": {"lr": 1e-3}, "run": {"max_steps": 10}})
>>> cfg.optim.lr, cfg.run.max_steps, cfg.model.codebooks  # codebooks: the corpus decides
(0.001, 10, None)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ualm.errors import UalmError
from ualm.sections import from_sections
from ualm.train import STAGES
from ualm.train.data.datamodule import DataConfig
from ualm.train.model.model import ModelConfig

PRESETS = Path(__file__).parent / "presets"
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup and cosine decay."""

    lr: float = 3e-4
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """The cosine ends at lr x this."""
    warmup_steps: int = 100
    weight_decay: float = 0.1
    """Applied to matrices only (not to norms, biases or embeddings)."""
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    """Gradient norm clipping (0: off)."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise UalmError("optim: need lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1",
                            fix="correct the optim section of the config")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclass(frozen=True)
class RunConfig:
    """The Lightning Trainer around the model."""

    max_steps: int = 1000
    """Optimizer steps."""
    max_minutes: float | None = None
    """Stop (and checkpoint) after this much wall time, if reached before max_steps."""
    precision: str = "32-true"
    """32-true, bf16-mixed (GPUs), bf16-true or 16-mixed."""
    accumulate: int = 1
    """Micro-batches per optimizer step."""
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    """auto, ddp, ddp_spawn, fsdp, ... (Lightning's strategy names)."""
    log_every: int = 10
    checkpoint_every: int = 200
    """Steps between checkpoints (the last one is always kept)."""
    val_every: int | None = None
    """Steps between held-out loss measurements (`--heldout` corpora; null: none)."""
    val_batches: int | None = 20
    """Batches per held-out measurement (null: a whole pass)."""
    seed: int = 0
    """Seeds the weights and the condition dropout."""
    threads: int | None = None
    """CPU threads for torch (null: torch's default)."""
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.accumulate < 1 or self.log_every < 1 or (
                self.val_every is not None and self.val_every < 1):
            raise UalmError("run: need max_steps, accumulate, log_every (and val_every, if "
                            "set) >= 1", fix="correct the run section of the config")
        if self.precision not in PRECISIONS:
            raise UalmError(f"run.precision {self.precision!r} is not supported",
                            fix=f"one of: {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class StageConfig:
    """Which of UALM's training stages this run is (see `ualm.train.stages`), and the settings
    only some stages read. Each stage starts from the previous one's checkpoint (`--init`)."""

    name: str = "pretrain"
    """align (backbone frozen: only the rows UALM adds to the vocabulary train), pretrain
    (everything, on the blend), sft (reasoning traces plus replay), dpo (preference pairs)."""
    replay: float = 0.25
    """sft: share of samples drawn from the pretraining sources (by the blend), against
    forgetting; the rest are reasoning traces."""
    beta: float = 0.1
    """dpo: strength of the implicit KL to the reference model."""
    ce_warmup_steps: int = 20
    """dpo: steps of plain cross-entropy on the chosen samples before the DPO loss starts."""
    ce_weight: float = 0.1
    """dpo: weight of the cross-entropy regulariser on the chosen samples during DPO."""
    replay_weight: float = 0.0
    """dpo: weight of the pretraining loss on a batch of the blend's sources (without traces)
    added every step, so that what the pairs do not train (understanding, text) is not
    forgotten; 0: pairs only."""
    heldout_fraction: float = 0.2
    """dpo: share of pairs (by a stable hash of their key) held out to measure the implicit
    reward's accuracy."""
    heldout_by: str = "clip"
    """dpo: what the held-out hash is of: `clip` (a share of the clips; every pair with one of
    them is held out, so each held-out pair has a clip training never saw), `rejected` (the
    rejected clip's key: no held-out rejected clip is rejected in training) or `pair` (the
    pair's key: the loosest, its clips are seen in other pairs)."""
    eval_every: int = 50
    """dpo: steps between held-out evaluations (also run before the first and after the last)."""

    def __post_init__(self) -> None:
        if self.name not in STAGES:
            raise UalmError(f"unknown stage {self.name!r}", fix=f"one of: {', '.join(STAGES)}")
        if not 0.0 <= self.replay < 1.0 or not 0.0 < self.heldout_fraction < 1.0:
            raise UalmError("stage: need 0 <= replay < 1 and 0 < heldout_fraction < 1",
                            fix="correct the stage section of the config")
        if self.heldout_by not in ("clip", "rejected", "pair"):
            raise UalmError(f"stage.heldout_by must be clip, rejected or pair, got "
                            f"{self.heldout_by!r}")
        if self.beta <= 0 or self.ce_warmup_steps < 0 or self.ce_weight < 0 \
                or self.replay_weight < 0 or self.eval_every < 1:
            raise UalmError("stage: need beta > 0, ce_warmup_steps, ce_weight and "
                            "replay_weight >= 0, eval_every >= 1",
                            fix="correct the stage section of the config")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    stage: StageConfig = field(default_factory=StageConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str | None = None) -> TrainConfig:
        """Unknown sections or keys and values of the wrong type are errors (naming `source`,
        the file), never silently ignored."""
        return from_sections(cls, data, "config", "see src/ualm/train/presets/tiny.yaml",
                             source=source)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None
                  ) -> TrainConfig:
        """A YAML file, or the name of a preset (`tiny`, `qwen2.5-1.5b`). A top-level
        `extends: PRESET_OR_FILE` starts from that config and overrides what the file sets;
        `overrides` (sections of values, e.g. command-line flags) go on top of it all."""
        from ualm.recipes import merged

        return cls.from_dict(merged(_yaml_dict(path, ()), overrides or {}), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _yaml_dict(path: str | Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    from ualm.recipes import merged

    path = Path(path)
    if not path.is_file() and (PRESETS / f"{path.name}.yaml").is_file():
        path = PRESETS / f"{path.name}.yaml"
    if not path.is_file():
        raise UalmError(f"config file not found: {path}",
                        fix=f"pass a YAML file or a preset: {', '.join(presets())}")
    if path.resolve() in seen:
        raise UalmError(f"config {path} extends itself", fix="break the `extends` cycle")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UalmError(f"config {path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UalmError(f"config {path} must be a mapping of sections",
                        fix="see src/ualm/train/presets/tiny.yaml")
    base = data.pop("extends", None)
    if base is None:
        return data
    # a relative base is a preset name or a file beside this one
    near = path.parent / str(base)
    base_path = near if near.is_file() else Path(str(base))
    return merged(_yaml_dict(base_path, (*seen, path.resolve())), data)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))

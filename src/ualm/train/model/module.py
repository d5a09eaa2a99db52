"""The LightningModule: the UALM model, its loss, AdamW with warmup + cosine, and the
bookkeeping that makes resume exact (each consumed batch's stream state goes to the data
module, which checkpoints it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from ualm.errors import UalmError
from ualm.train.data.datamodule import STATE_KEY
from ualm.train.model.freeze import apply_stage, row_masked
from ualm.train.model.model import ModelConfig, UALMModel
from ualm.train.model.safe_load import check_meta, load_weights_only
from ualm.train.model.schedule import warmup_cosine
from ualm.train.sequence.layout import TASK_IDS

CHECKPOINT_KEY = "ualm"


class UALMModule(L.LightningModule):
    def __init__(self, model: dict[str, Any], optim: dict[str, Any], max_steps: int,
                 hf_config: dict[str, Any] | None = None, stage: str = "pretrain") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = UALMModel(ModelConfig(**model), hf_config=hf_config)
        self.stage = stage
        self.trained = apply_stage(self.model, stage)
        """What this stage trains (recorded in checkpoints)."""
        self.init: str | None = None
        """The checkpoint the weights started from (`--init`), if any."""
        self.optim = optim
        self.max_steps = max_steps
        self.positions_seen = 0
        """Sequence positions trained on in this process (padding excluded), for throughput."""

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        state = batch.pop(STATE_KEY, None)
        datamodule = getattr(self.trainer, "datamodule", None)
        if state is not None and hasattr(datamodule, "record"):
            datamodule.record(state)
        out = self.model(batch)
        size = batch["tokens"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=size)
        for task, i in TASK_IDS.items():
            weight = out["task_weight"][i]
            if weight > 0:
                self.log(f"train/loss_{task}", out["task_loss_sum"][i] / weight, batch_size=size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        self.positions_seen += int((batch["task_ids"] >= 0).sum())
        return out["loss"]

    def configure_optimizers(self) -> Any:
        return adamw_warmup_cosine(self.model, self.optim, self.max_steps,
                                   row_masked(self.trained))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_meta(self.model, self.stage, self.trained,
                                                     self.init)


def checkpoint_meta(model: UALMModel, stage: str, trained: dict[str, Any],
                    init: str | None) -> dict[str, Any]:
    """What a checkpoint says about its model: the architecture, the tokenizer, the stage that
    wrote it, which parameters (or rows) that stage trained, and where its weights started."""
    return {"model": dict(model.config.to_dict()), "hf_config": model.hf_config,
            "tokenizer": model.tokenizer.name, "stage": stage, "trained": trained,
            "init": init}


def adamw_warmup_cosine(model: torch.nn.Module, o: dict[str, Any], max_steps: int,
                        no_decay_names: frozenset[str] | set[str] = frozenset()) -> Any:
    """AdamW over the trainable parameters (decay on matrices that are not embeddings, nor
    tables with frozen rows) with linear warmup and cosine decay per step."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        plain = p.ndim >= 2 and "embed" not in name and name not in no_decay_names
        (decay if plain else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=tuple(o["betas"]))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, o["warmup_steps"], max_steps, o["min_lr_ratio"]))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def read_checkpoint(path: str | Path, device: str = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(what the checkpoint says about its model, the model's weights) of a `.ckpt` that
    `ualm train` wrote; anything else in its state (a DPO reference) is left out."""
    path = Path(path)
    if not path.is_file():
        raise UalmError(f"checkpoint {path} not found",
                        fix="pass a .ckpt from a run's checkpoints/ folder")
    checkpoint = load_weights_only(path, device)
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if meta is None or not isinstance(checkpoint.get("state_dict"), dict):
        raise UalmError(f"{path} is not a ualm training checkpoint",
                        fix="pass one `ualm train` wrote")
    meta = check_meta(meta, path)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()
             if k.startswith("model.")}
    return meta, state


def load_trained(path: str | Path, device: str = "cpu") -> UALMModel:
    """The model of a training checkpoint (`.ckpt`), in eval mode, without its backbone folder's
    weights (the architecture is in the checkpoint; the tokenizer folder must still exist)."""
    meta, state = read_checkpoint(path, device)
    model = UALMModel(ModelConfig(**meta["model"]), hf_config=meta["hf_config"])
    if model.tokenizer.name != meta["tokenizer"]:
        raise UalmError(f"the text tokenizer is {model.tokenizer.name}, the checkpoint was "
                        f"trained with {meta['tokenizer']}", fix="use the training tokenizer")
    model.load_state_dict(state)
    return model.to(device).eval()

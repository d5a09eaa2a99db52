"""DPO on preference pairs, with the safeguards UALM's recipe publishes: a short cross-entropy
warm-up on the chosen samples before DPO starts, and a cross-entropy regulariser during it.

A sequence's log-probability is the sum over its target positions of the target's log-prob,
weighted as the generation loss weighs it (each codebook 1/K, stream 0 at audio steps 1/K), so
one frame counts like one text token. With policy π and frozen reference π_ref (the stage's
`--init` checkpoint), the implicit reward of a sample is r = β (log π - log π_ref) and the loss
is -log sigmoid(r_chosen - r_rejected) (Rafailov et al., 2023).

The reference is a submodule with requires_grad False, so a Lightning strategy places and shards
it as it does the policy (DDP leaves it out of the gradient all-reduce; under FSDP it is wrapped
by the same policy, with `use_orig_params=True` because a unit then mixes frozen and trained
parameters). It stays in eval mode (Lightning's note of modules "in eval mode at the start of
training" is about it) and out of the checkpoints (it is the init checkpoint).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ualm.train.data.datamodule import STATE_KEY
from ualm.train.model.model import ModelConfig, UALMModel
from ualm.train.model.module import CHECKPOINT_KEY, adamw_warmup_cosine, checkpoint_meta
from ualm.train.sequence.layout import IGNORE
from ualm.train.stages.pairs import REPLAY_KEY

REFERENCE = "reference."


def sequence_logps(model: UALMModel, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the weighted sum of the targets' log-probs, and the sum of their weights."""
    h, _ = model.hidden(batch["tokens"], batch["position_ids"])
    rows = batch["tokens"].shape[0]
    row_of = torch.arange(rows, device=h.device).view(-1, 1).expand(h.shape[:2])
    logp = h.new_zeros(rows, dtype=torch.float32)
    weight = h.new_zeros(rows, dtype=torch.float32)
    labels = batch["text_labels"]
    mask = labels != IGNORE
    if mask.any():
        taken = -F.cross_entropy(model.text_logits(h[mask]).float(), labels[mask],
                                 reduction="none")
        w = batch["text_weight"][mask]
        logp = logp.index_add(0, row_of[mask], taken * w)
        weight = weight.index_add(0, row_of[mask], w)
    for n in range(model.k):
        labels = batch["code_labels"][:, n]
        mask = labels != IGNORE
        if mask.any():
            taken = -F.cross_entropy(model.code_logits(h[mask], n).float(), labels[mask],
                                     reduction="none")
            logp = logp.index_add(0, row_of[mask], taken / model.k)
            weight = weight.index_add(0, row_of[mask], torch.full_like(taken, 1.0 / model.k))
    return logp, weight


def dpo_terms(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """From per-row log-probs (chosen rows even, rejected odd): the DPO loss per pair, the
    rewards, and the policy's own log-prob margin (chosen minus rejected)."""
    chosen = beta * (policy[0::2] - reference[0::2])
    rejected = beta * (policy[1::2] - reference[1::2])
    return {"loss": -F.logsigmoid(chosen - rejected), "chosen_reward": chosen,
            "rejected_reward": rejected, "logp_margin": policy[0::2] - policy[1::2]}


class DPOModule(L.LightningModule):
    def __init__(self, model: dict[str, Any], optim: dict[str, Any], max_steps: int,
                 hf_config: dict[str, Any], dpo: dict[str, Any]) -> None:
        """dpo: beta, ce_warmup_steps, ce_weight, replay_weight, eval_every (see
        `StageConfig`)."""
        super().__init__()
        self.save_hyperparameters()
        self.model = UALMModel(ModelConfig(**model), hf_config=hf_config)
        self.reference = UALMModel(ModelConfig(**model), self.model.tokenizer, hf_config)
        self.reference.requires_grad_(False)
        self.reference.eval()
        self.optim, self.max_steps, self.dpo = optim, max_steps, dpo
        self.trained: dict[str, Any] = {"trainable": {n: "all" for n, _ in
                                                      self.model.named_parameters()},
                                        "frozen": []}
        self.init: str | None = None
        self.positions_seen = 0
        self.heldout: list[dict[str, float]] = []
        """Held-out measures by step (before the first step, every eval_every, at the end)."""

    def start_from(self, state: dict[str, torch.Tensor], init: str) -> None:
        """The policy and the reference both start as the init checkpoint's model."""
        self.model.load_state_dict(state)
        self.reference.load_state_dict(state)
        self.init = init

    def train(self, mode: bool = True) -> DPOModule:
        super().train(mode)
        self.reference.eval()  # the reference never trains (no dropout either)
        return self

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        state = batch.pop(STATE_KEY, None)
        replay = batch.pop(REPLAY_KEY, None)
        datamodule = getattr(self.trainer, "datamodule", None)
        if state is not None and hasattr(datamodule, "record"):
            datamodule.record(state)
        logp, weight = sequence_logps(self.model, batch)
        with torch.no_grad():
            ref, _ = sequence_logps(self.reference, batch)
        terms = dpo_terms(logp, ref, self.dpo["beta"])
        ce = -logp[0::2].sum() / weight[0::2].sum().clamp(min=1e-6)  # per-token NLL, chosen
        warming = self.global_step < self.dpo["ce_warmup_steps"]
        loss = ce if warming else terms["loss"].mean() + self.dpo["ce_weight"] * ce
        size = batch["tokens"].shape[0] // 2
        if replay is not None:  # the pretraining loss, against forgetting what DPO ignores
            replay_state = replay.pop(STATE_KEY, None)
            if replay_state is not None and hasattr(datamodule, "record_replay"):
                datamodule.record_replay(replay_state)
            replay_loss = self.model(replay)["loss"]
            loss = loss + self.dpo.get("replay_weight", 0.0) * replay_loss
            self.log("train/replay_loss", replay_loss, batch_size=replay["tokens"].shape[0])
            self.positions_seen += int((replay["task_ids"] >= 0).sum())
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/ce_chosen", ce, batch_size=size)
        self.log("train/dpo_loss", terms["loss"].mean(), batch_size=size)
        for name in ("chosen_reward", "rejected_reward"):
            self.log(f"train/{name}", terms[name].mean(), batch_size=size)
        margin = terms["chosen_reward"] - terms["rejected_reward"]
        self.log("train/reward_margin", margin.mean(), batch_size=size)
        self.log("train/reward_accuracy", (margin > 0).float().mean(), batch_size=size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        self.positions_seen += int((batch["task_ids"] >= 0).sum())
        return loss

    @torch.no_grad()
    def evaluate_heldout(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Mean rewards, reward margin, implicit-reward accuracy (chosen's reward strictly
        above rejected's) and the policy's log-prob margin over held-out pairs."""
        was_training = self.model.training
        self.model.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        for batch in batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            terms = dpo_terms(sequence_logps(self.model, batch)[0],
                              sequence_logps(self.reference, batch)[0], self.dpo["beta"])
            terms["margin"] = terms["chosen_reward"] - terms["rejected_reward"]
            for name, value in terms.items():
                parts.setdefault(name, []).append(value.float().cpu())
        self.model.train(was_training)
        joined = {k: torch.cat(v) for k, v in parts.items()}
        return {"step": int(self.global_step), "pairs": len(joined["margin"]),
                "accuracy": float((joined["margin"] > 0).float().mean()),
                "margin": float(joined["margin"].mean()),
                "chosen_reward": float(joined["chosen_reward"].mean()),
                "rejected_reward": float(joined["rejected_reward"].mean()),
                "logp_margin": float(joined["logp_margin"].mean()),
                "loss": float(joined["loss"].mean())}

    def _heldout_now(self) -> None:
        datamodule = self.trainer.datamodule
        result = self.evaluate_heldout(datamodule.heldout_batches())
        if self.heldout and self.heldout[-1]["step"] == result["step"]:
            return
        self.heldout.append(result)
        if self.logger is not None and self.trainer.is_global_zero:
            self.logger.log_metrics({f"heldout/{k}": v for k, v in result.items()
                                     if k not in ("step", "pairs")}, step=result["step"])

    def on_train_start(self) -> None:
        self.reference.eval()  # Lightning restores the modes modules had when fit began
        self._heldout_now()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % self.dpo["eval_every"] == 0:
            self._heldout_now()

    def on_train_end(self) -> None:
        self._heldout_now()

    def configure_optimizers(self) -> Any:
        return adamw_warmup_cosine(self.model, self.optim, self.max_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_meta(self.model, "dpo", self.trained, self.init)
        for key in [k for k in checkpoint["state_dict"] if k.startswith(REFERENCE)]:
            del checkpoint["state_dict"][key]  # the reference is the init checkpoint
        checkpoint["dpo_heldout"] = self.heldout

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: the reference comes from the init checkpoint again, not from this one."""
        checkpoint["state_dict"].update({REFERENCE + k: v for k, v in
                                         self.reference.state_dict().items()})
        self.heldout = list(checkpoint.get("dpo_heldout", []))

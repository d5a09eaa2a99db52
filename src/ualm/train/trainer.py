"""`ualm train`: the fit loop as one function. A run folder holds

    config.yaml            the resolved config
    checkpoints/           step-N.ckpt every run.checkpoint_every steps, and last.ckpt
    logs/metrics.csv       Lightning's CSV log (loss per task, learning rate)
    loss.png               the loss curve
    realised_blend.json    samples and tokens trained on, per source and per task

Rerunning with the same folder resumes from last.ckpt (model, optimizer, schedule, data streams).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ualm.errors import UalmError
from ualm.train.blend.spec import BlendSpec
from ualm.train.config import TrainConfig
from ualm.train.data.datamodule import UALMDataModule
from ualm.train.model.module import UALMModule
from ualm.train.model.safe_load import refused


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    final_loss: float | None
    seconds: float
    positions: int
    """Sequence positions trained on (packing padding excluded)."""
    realised: dict[str, Any]
    checkpoint: Path | None

    @property
    def positions_per_second(self) -> float:
        return self.positions / max(self.seconds, 1e-9)


def train(corpora: Sequence[str | Path], config: TrainConfig, out: str | Path,
          blend: BlendSpec | None = None, resume: bool = True,
          callbacks: Sequence[Any] = (), heldout: Sequence[str | Path] = ()) -> TrainResult:
    """Trains (or resumes training) into `out`; returns when max_steps (or max_minutes) is hit.
    With `heldout` corpora and `run.val_every`, the held-out loss is logged as it trains."""
    if not corpora:
        raise UalmError("no corpora to train on", fix="pass one or more corpus folders")
    config = with_corpus_codebooks(corpora, config)
    out = prepare(config, out)
    module = UALMModule(config.model.to_dict(), optim_dict(config), config.run.max_steps)
    datamodule = UALMDataModule(corpora, config.data, module.model.tokenizer,
                                config.model.codebooks, blend)
    return fit(module, datamodule, config, out, resume, callbacks, heldout)


def with_corpus_codebooks(corpora: Sequence[str | Path], config: TrainConfig) -> TrainConfig:
    """The config with `model.codebooks` taken from the corpora's token sets (the one
    `data.codec_id` names, or each corpus's only one) when it is unset, and checked against
    them when it is set. Before any work: the corpora must agree, and their codes must fit the
    audio vocabulary (1024 a codebook: EnCodec, X-codec and DAC fit; Mimi's 2048 do not)."""
    found = check_codecs(corpora, config.data.codec_id, config.model.codebooks)
    if config.model.codebooks is None:
        model = dataclasses.replace(config.model, codebooks=found)
        config = dataclasses.replace(config, model=model)
    return config


def check_codecs(corpora: Sequence[str | Path], codec_id: str | None,
                 codebooks: int | None) -> int:
    """The codebook count the corpora's chosen token sets share (`codebooks`, when given,
    must be it); an error naming the corpus and the fix otherwise."""
    from ualm.manifests import storage
    from ualm.manifests.layout import CorpusLayout
    from ualm.manifests.token_sets import corpus_codec
    from ualm.train.sequence.layout import CODEBOOK_SIZE

    first: tuple[str, int] | None = None
    for corpus in corpora:
        root = storage.location(corpus)
        chosen = corpus_codec(root, codec_id)
        record = CorpusLayout(root).meta()["tokens"][chosen]
        have = int(record["codebooks"])
        if codebooks is not None and have != codebooks:
            raise UalmError(f"{corpus}'s token set {chosen} has {have} codebooks, "
                            f"the model {codebooks}",
                            fix=f"set model.codebooks: {have} (or leave it unset: the corpus "
                                "decides)")
        if first is not None and have != first[1]:
            raise UalmError(f"{first[0]}'s token set has {first[1]} codebooks and {corpus}'s "
                            f"{have}: one model trains on one codec's codes",
                            fix="tokenize the corpora with the same codec (`ualm tokenize "
                                "--codec ...`) and pick it with data.codec_id")
        first = first or (str(corpus), have)
        if record.get("codebook_size", CODEBOOK_SIZE) > CODEBOOK_SIZE:
            raise UalmError(f"{corpus}'s token set {chosen} has codebooks of "
                            f"{record['codebook_size']} codes; the model's audio vocabulary "
                            f"holds {CODEBOOK_SIZE} a codebook",
                            fix="tokenize with EnCodec, X-codec or DAC")
    assert first is not None  # callers refuse an empty list of corpora first
    return first[1]


def prepare(config: TrainConfig, out: str | Path) -> Path:
    """The run folder with its config.yaml; threads and seeds set (before weights are made)."""
    import lightning as L

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    L.seed_everything(config.run.seed, workers=True, verbose=False)
    return out


def fit(module: Any, datamodule: Any, config: TrainConfig, out: Path, resume: bool = True,
        callbacks: Sequence[Any] = (), heldout: Sequence[str | Path] = ()) -> TrainResult:
    """Runs Lightning's fit on a prepared run folder; `datamodule` records the batches the
    module consumed and reports what it realised (see `UALMDataModule`). With `heldout`
    corpora and `run.val_every`, the held-out loss is logged every val_every steps."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ualm.train.progress import StepBar
    from ualm.train.run_log import resumable_csv_logger

    run = config.run
    measure = _heldout_loss(heldout, config) if heldout and run.val_every else None
    callbacks = [*callbacks, *([measure] if measure else [])]
    if run.progress_bar:  # steps of max_steps, not Lightning's batches of an endless epoch
        callbacks.append(StepBar(measure))
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", filename="step-{step}",
                                  every_n_train_steps=run.checkpoint_every, save_last=True,
                                  save_top_k=-1, auto_insert_metric_name=False)
    last = out / "checkpoints" / "last.ckpt"
    resuming = resume and last.is_file()
    logger = resumable_csv_logger(out, _checkpoint_step(last) if resuming else None)
    trainer = L.Trainer(
        accelerator=run.accelerator, devices=run.devices, num_nodes=run.num_nodes,
        strategy=run.strategy, precision=run.precision, max_steps=run.max_steps,
        max_time={"minutes": run.max_minutes} if run.max_minutes else None,
        accumulate_grad_batches=run.accumulate,
        gradient_clip_val=config.optim.grad_clip or None, log_every_n_steps=run.log_every,
        logger=logger, callbacks=[checkpoints, *callbacks],
        enable_progress_bar=run.progress_bar, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False,
        default_root_dir=out)
    started = time.perf_counter()
    # weights_only: resuming unpickles nothing but tensors and plain data (see safe_load)
    try:
        trainer.fit(module, datamodule=datamodule,
                    ckpt_path=str(last) if resuming else None, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise refused(last, exc) from None
    seconds = time.perf_counter() - started
    realised = datamodule.realised()
    final = None
    # the last step is always saved, whatever the interval; in full (optimizer and loops: a
    # resume needs them), said explicitly, as Lightning otherwise logs that it chose that
    trainer.save_checkpoint(last, weights_only=False)
    if trainer.is_global_zero:
        (out / "realised_blend.json").write_text(json.dumps(realised, indent=2) + "\n")
        plot_loss(out / "logs" / "metrics.csv", out / "loss.png")
        final = _final_loss(out / "logs" / "metrics.csv")
    positions = module.positions_seen
    return TrainResult(out, trainer.global_step, final, seconds, positions, realised,
                       last if last.is_file() else None)


def _checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was saved at (its tensors mapped, not read)."""
    from ualm.train.model.safe_load import load_weights_only

    return int(load_weights_only(path, mmap=True)["global_step"])


def _heldout_loss(corpora: Sequence[str | Path], config: TrainConfig) -> Any:
    from ualm.train.model.validate import HeldoutLoss

    return HeldoutLoss(corpora, config.run.val_every or 1, config.data.seq_len,
                       config.data.batch_size, config.data.codec_id, config.run.val_batches)


def optim_dict(config: TrainConfig) -> dict[str, Any]:
    o = config.optim
    return {"lr": o.lr, "min_lr_ratio": o.min_lr_ratio, "warmup_steps": o.warmup_steps,
            "weight_decay": o.weight_decay, "betas": list(o.betas)}


def _rows(metrics: Path) -> list[dict[str, str]]:
    import csv

    if not metrics.is_file():
        return []
    with open(metrics) as handle:
        return list(csv.DictReader(handle))


def _final_loss(metrics: Path) -> float | None:
    losses = [float(r["train/loss"]) for r in _rows(metrics) if r.get("train/loss")]
    return losses[-1] if losses else None


def plot_loss(metrics: Path, png: Path) -> Path | None:
    """The training loss (and per-task losses) against the step; held-out ones (`val/loss*`)
    dashed, in the colour of their training curve: the report's loss figure."""
    from ualm.figures import losses
    from ualm.train.metrics import loss_series, read_metrics

    rows = read_metrics(metrics)
    if not rows:
        return None
    png.write_bytes(losses({split: loss_series(rows, split) for split in ("train", "val")}))
    return png

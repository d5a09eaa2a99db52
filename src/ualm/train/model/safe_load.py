"""Checkpoints are untrusted input (one downloaded from the Hub, one a colleague sent): they load
with `weights_only=True`, which unpickles tensors and plain containers and nothing else, so a
pickle that would run code is refused before it can; what a checkpoint says about its model is
then validated like a user's config, before anything is built from it.

A ualm checkpoint needs no allow-list beyond torch's own: Lightning's state (loops, optimizer,
schedulers, callbacks), the weights and the `ualm` record are all tensors, numbers, strings,
lists and dicts (`tests/test_checkpoint_safety.py` loads a trainer's checkpoint to keep it so).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ualm.errors import UalmError
from ualm.sections import build_section
from ualm.train import STAGES
from ualm.train.model.model import ModelConfig

FOREIGN_FIX = ("load only checkpoints that `ualm train` wrote; if you trust this file's "
               "source, convert it to a state dict of tensors in a separate step")


def load_weights_only(path: str | Path, device: str = "cpu", mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)`; a pickle that holds anything but tensors and
    plain data is refused with one line naming the file and the first foreign object. `mmap`
    maps the tensors instead of reading them (to read a checkpoint's small fields)."""
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise refused(path, exc) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UalmError(f"cannot read checkpoint {path}: {first}",
                        fix="pass a .ckpt from a run's checkpoints/ folder") from None


def refused(path: str | Path, exc: pickle.UnpicklingError) -> UalmError:
    """The one-line error for a checkpoint that `weights_only` loading refused."""
    return UalmError(f"refused checkpoint {path}: it holds Python objects a ualm checkpoint "
                     f"never does ({_foreign(exc)}); loading it could run code", fix=FOREIGN_FIX)


def _foreign(exc: pickle.UnpicklingError) -> str:
    """What torch refused (`posix.system`), picked out of its long explanation."""
    text = str(exc)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"a reference to {named.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    unsupported = [line for line in lines if line.startswith("Unsupported")]
    return (unsupported or lines or ["an object it cannot unpickle"])[0][:200].rstrip(".")


def check_meta(meta: Any, path: str | Path) -> dict[str, Any]:
    """The checkpoint's `ualm` record, checked as a user's config is: its `model` section
    through the same walker (unknown keys, wrong types and bad values are errors naming the
    file), and the fields beside it of the types `ualm train` writes."""
    what = f"checkpoint {path}"
    fix = "pass a checkpoint `ualm train` wrote, unmodified"
    if not isinstance(meta, Mapping):
        raise UalmError(f"{what}: its ualm record is not a mapping", fix=fix)
    missing = [k for k in ("model", "hf_config", "tokenizer", "stage", "trained")
               if k not in meta]
    if missing:
        raise UalmError(f"{what}: its ualm record lacks {', '.join(missing)}", fix=fix)
    try:
        model = build_section(ModelConfig, "model", meta["model"], what, fix)
    except UalmError as exc:  # a value check of ModelConfig itself does not know the file
        if str(path) in exc.message:
            raise
        raise UalmError(f"{what}: {exc.message}", fix=exc.fix) from None
    hf = meta["hf_config"]
    if not isinstance(hf, Mapping) or not isinstance(hf.get("model_type"), str):
        raise UalmError(f"{what}: hf_config must be a mapping with a model_type", fix=fix)
    if not isinstance(meta["tokenizer"], str):
        raise UalmError(f"{what}: tokenizer must be a string, got {meta['tokenizer']!r}",
                        fix=fix)
    if meta["stage"] not in STAGES:
        raise UalmError(f"{what}: unknown stage {meta['stage']!r}", fix=f"one of: "
                        f"{', '.join(STAGES)}")
    if not isinstance(meta["trained"], Mapping):
        raise UalmError(f"{what}: trained must be a mapping", fix=fix)
    init = meta.get("init")
    if init is not None and not isinstance(init, str):
        raise UalmError(f"{what}: init must be a path or null, got {init!r}", fix=fix)
    return {**meta, "model": model.to_dict(), "hf_config": dict(hf)}

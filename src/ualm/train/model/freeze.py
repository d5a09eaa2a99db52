"""What trains in each stage, and the record of it that a checkpoint keeps.

The align stage keeps the backbone's weights: only the rows UALM adds to the LLM's vocabulary
train, i.e. the 256 special tokens and the K codebook blocks of the embedding table and of the
output head (`layout.Vocab`). Text rows share those tables with them, so they are frozen by
masking their rows of the gradient (a tensor hook), and the tables are kept out of weight decay
(AdamW's decay would move rows whose gradient is zero). AdamW's update of a row whose gradient
was always zero is exactly zero, so the frozen weights stay bit-identical (tests prove it).

Under FSDP the hooks must see the original parameters: use Lightning's
`FSDPStrategy(use_orig_params=True)` for the align stage.

>>> from ualm.train.model.model import ModelConfig, UALMModel
>>> model = UALMModel(ModelConfig(hidden_size=32, layers=1, heads=2, kv_heads=1,
...                               intermediate_size=64))
>>> record = apply_stage(model, "align")
>>> record["trainable"]["lm.model.embed_tokens.weight"]
[[0, 256], [512, 8712]]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ualm.train.sequence.layout import N_SPECIAL

ALL = "all"


def _tables(model: nn.Module) -> dict[int, nn.Parameter]:
    lm: Any = model.lm
    found = [lm.get_input_embeddings().weight, lm.get_output_embeddings().weight]
    return {id(p): p for p in found}


def _mask_rows(param: nn.Parameter, start: int, stop: int) -> None:
    """Zeroes rows [start, stop) of every gradient of `param` before it accumulates."""
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[start:stop] = 0
        return grad

    param.register_hook(hook)


def apply_stage(model: nn.Module, stage: str) -> dict[str, Any]:
    """Freezes what `stage` must not train; returns the record of what trains: per trainable
    parameter `"all"` or its trainable row ranges, and the names of the frozen ones."""
    if stage != "align":
        return {"trainable": {name: ALL for name, p in model.named_parameters()
                              if p.requires_grad}, "frozen": []}
    vocab: Any = model.vocab
    tables = _tables(model)
    new_rows = [[0, N_SPECIAL], [vocab.text_rows, vocab.size]]
    trainable: dict[str, Any] = {}
    frozen: list[str] = []
    for name, param in model.named_parameters():  # tied tables are listed once
        if id(param) in tables:
            _mask_rows(param, N_SPECIAL, vocab.text_rows)
            trainable[name] = new_rows
        else:
            param.requires_grad_(False)
            frozen.append(name)
    return {"trainable": trainable, "frozen": frozen}


def row_masked(record: dict[str, Any]) -> set[str]:
    """Parameters only some rows of which train (to keep out of weight decay)."""
    return {name for name, rows in record["trainable"].items() if rows != ALL}

"""The UALM model: a transformers causal LM backbone over 1 + K summed streams, a text head and
one head per codebook restricted to its own 1025 entries, the loss weighted as UALM weighs it.

The backbone is built from a small Qwen2 config with random weights (tests, the CPU demo), or
loaded from a local folder (e.g. Qwen2.5-1.5B): its text embeddings and head are copied after
the 256 special tokens and the vocabulary is extended by K blocks of 1025 codec entries.

>>> model = UALMModel(ModelConfig(hidden_size=32, layers=1, heads=2, kv_heads=1,
...                               intermediate_size=64))
>>> model.vocab.size
8712
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ualm.errors import UalmError
from ualm.train.sequence.layout import BLOCK, IGNORE, N_SPECIAL, TASK_IDS, Vocab
from ualm.train.sequence.text_tokenizer import TextTokenizer, load_text_tokenizer

DEFAULT_CODEBOOKS = 8


@dataclass(frozen=True)
class ModelConfig:
    """The model. With `backbone` unset, a Qwen2-style network of the given size is built with
    random weights; with it set, the size fields are ignored."""

    backbone: str | None = None
    """A local Hugging Face causal-LM folder (weights are never downloaded), or null."""
    tokenizer: str | None = None
    """Text tokenizer: a local folder, `bytes` (the offline default), or null for the
    backbone's own (or `bytes` without a backbone)."""
    codebooks: int | None = None
    """Codec streams a frame holds. Null: the training corpus's token set decides (8 for
    EnCodec 24 kHz at 6 kbps, X-codec and DAC as UALM uses them); a model built with no corpus
    in sight takes DEFAULT_CODEBOOKS."""
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 512
    max_positions: int = 4096
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    """Output heads share the input embedding table (as Qwen2.5-1.5B does)."""
    init_std: float = 0.02
    """Std of the random rows (special tokens, codec entries, or every row without backbone)."""
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        if self.codebooks is not None and self.codebooks < 1:
            raise UalmError(f"model.codebooks must be >= 1, got {self.codebooks}",
                            fix="8 for EnCodec 24 kHz at 6 kbps")
        if self.backbone is None and self.hidden_size % self.heads:
            raise UalmError("model.hidden_size must be a multiple of model.heads",
                            fix="e.g. hidden_size 128 with 4 heads")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UALMModel(nn.Module):
    def __init__(self, config: ModelConfig, tokenizer: TextTokenizer | None = None,
                 hf_config: dict[str, Any] | None = None) -> None:
        """hf_config: the backbone's architecture as saved in a checkpoint, so a trained model
        is rebuilt without the backbone's weights."""
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer or load_text_tokenizer(config.tokenizer or config.backbone)
        codebooks = config.codebooks or DEFAULT_CODEBOOKS
        self.vocab = Vocab(self.tokenizer.vocab_size, codebooks)
        if hf_config is not None:
            self.lm = _from_hf_config(hf_config, config)
        elif config.backbone is not None:
            self.lm = _load_backbone(config, self.vocab)
        else:
            self.lm = _random_backbone(config, self.vocab)
        self.k = codebooks

    @property
    def hf_config(self) -> dict[str, Any]:
        return self.lm.config.to_dict()

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, 1 + K, L] (stream 0 ids, then local codes) -> summed embeddings [B, L, H]."""
        offsets = torch.tensor([0] + [self.vocab.code_offset(n) for n in range(self.k)],
                               device=tokens.device).view(1, -1, 1)
        table = self.lm.get_input_embeddings()
        return table(tokens + offsets).sum(dim=1)

    def hidden(self, tokens: torch.Tensor, position_ids: torch.Tensor, cache: Any = None,
               attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        out = self.lm.base_model(inputs_embeds=self.embed(tokens), position_ids=position_ids,
                                 attention_mask=attention_mask, cache=cache,
                                 use_cache=cache is not None)
        # transformers 5 names the returned cache `cache` (4.x: `past_key_values`); 5's
        # `past_key_values` property logs a deprecation line, so it is read only on 4.x
        name = "cache" if hasattr(out, "cache") else "past_key_values"
        returned = getattr(out, name, None)
        return out.last_hidden_state, returned if returned is not None else cache

    def _head(self) -> torch.Tensor:
        return self.lm.get_output_embeddings().weight

    def text_logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self._head()[: self.vocab.text_rows].t()

    def code_logits(self, h: torch.Tensor, codebook: int) -> torch.Tensor:
        start = self.vocab.code_offset(codebook)
        return h @ self._head()[start : start + BLOCK].t()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of a packed batch (see `data.py`): each audio stream weighs 1/K, loss only at
        target positions. Also returns per-task sums: loss and weight, and teacher-forced top-1
        hits and counts of text tokens (task_right, task_counted) and codes (code_*)."""
        h, _ = self.hidden(batch["tokens"], batch["position_ids"])
        tasks = batch["task_ids"]
        n_tasks = len(TASK_IDS)
        loss_sum = h.new_zeros(n_tasks, dtype=torch.float32)
        weight_sum = h.new_zeros(n_tasks, dtype=torch.float32)
        right = h.new_zeros(n_tasks, dtype=torch.float32)
        counted = h.new_zeros(n_tasks, dtype=torch.float32)
        code_right = h.new_zeros(n_tasks, dtype=torch.float32)
        code_counted = h.new_zeros(n_tasks, dtype=torch.float32)
        labels = batch["text_labels"]
        mask = labels != IGNORE
        if mask.any():
            logits = self.text_logits(h[mask]).float()
            ce = F.cross_entropy(logits, labels[mask], reduction="none")
            w = batch["text_weight"][mask]
            t = tasks[mask]
            loss_sum = loss_sum.index_add(0, t, ce * w)
            weight_sum = weight_sum.index_add(0, t, w)
            full = w >= 1.0  # text tokens proper (not frame markers)
            hit = (logits.argmax(-1) == labels[mask]) & full
            right = right.index_add(0, t, hit.float().detach())
            counted = counted.index_add(0, t, full.float())
        for n in range(self.k):
            code_labels = batch["code_labels"][:, n]
            mask = code_labels != IGNORE
            if not mask.any():
                continue
            logits = self.code_logits(h[mask], n).float()
            ce = F.cross_entropy(logits, code_labels[mask], reduction="none")
            t = tasks[mask]
            loss_sum = loss_sum.index_add(0, t, ce / self.k)
            weight_sum = weight_sum.index_add(0, t, torch.full_like(ce, 1.0 / self.k))
            hit = (logits.argmax(-1) == code_labels[mask]).float()
            code_right = code_right.index_add(0, t, hit.detach())
            code_counted = code_counted.index_add(0, t, torch.ones_like(hit))
        loss = loss_sum.sum() / weight_sum.sum().clamp(min=1e-6)
        if not weight_sum.sum() > 0:  # a batch of padding still touches every parameter
            loss = loss + 0.0 * h.sum()
        return {"loss": loss, "task_loss_sum": loss_sum.detach(),
                "task_weight": weight_sum.detach(), "task_right": right, "task_counted": counted,
                "code_right": code_right, "code_counted": code_counted}


def _qwen2_config(config: ModelConfig, vocab: Vocab) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab.size, hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.layers,
        num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=config.tie_embeddings,
        initializer_range=config.init_std, rope_theta=config.rope_theta,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)


def _random_backbone(config: ModelConfig, vocab: Vocab) -> nn.Module:
    from transformers import AutoModelForCausalLM

    hf = _qwen2_config(config, vocab)
    hf._attn_implementation = config.attn_implementation
    return AutoModelForCausalLM.from_config(hf, attn_implementation=config.attn_implementation)


def _from_hf_config(data: dict[str, Any], config: ModelConfig) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    data = dict(data)
    hf = AutoConfig.for_model(data.pop("model_type"), **data)
    return AutoModelForCausalLM.from_config(hf, attn_implementation=config.attn_implementation)


def _load_backbone(config: ModelConfig, vocab: Vocab) -> nn.Module:
    """The folder's LM with its vocabulary rebuilt as [specials | its text rows | codec blocks]."""
    from transformers import AutoModelForCausalLM

    folder = Path(str(config.backbone))
    if not (folder / "config.json").is_file():
        raise UalmError(f"backbone folder {folder} has no config.json",
                        fix="pass a local Hugging Face model folder (weights are never "
                            "downloaded)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lm = AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True, dtype=torch.float32,
                attn_implementation=config.attn_implementation)
    except (OSError, ValueError) as exc:
        raise UalmError(f"cannot load a causal LM from {folder}: {exc}".splitlines()[0],
                        fix="the folder needs config.json and model weights") from exc
    old_in = lm.get_input_embeddings().weight.data
    tied = lm.get_output_embeddings().weight is lm.get_input_embeddings().weight
    old_out = lm.get_output_embeddings().weight.data
    rows = min(vocab.text_size, old_in.shape[0])
    new_in = _extended(old_in, rows, vocab, config.init_std)
    lm.set_input_embeddings(nn.Embedding.from_pretrained(new_in, freeze=False))
    head = nn.Linear(new_in.shape[1], vocab.size, bias=False)
    head.weight = (lm.get_input_embeddings().weight if tied
                   else nn.Parameter(_extended(old_out, rows, vocab, config.init_std)))
    lm.set_output_embeddings(head)
    lm.config.vocab_size = vocab.size
    return lm


def _extended(old: torch.Tensor, rows: int, vocab: Vocab, std: float) -> torch.Tensor:
    """A [vocab.size, H] table: random rows around the old rows' mean, the text rows copied."""
    generator = torch.Generator().manual_seed(0)
    new = torch.randn(vocab.size, old.shape[1], generator=generator) * std + old.mean(0)
    new[N_SPECIAL : N_SPECIAL + rows] = old[:rows].float()
    return new

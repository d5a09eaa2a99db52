"""How many tokens a sample is worth: one rule, shared by `ualm blend` (planning) and the
trainer (logging the blend it realised), so planned and realised shares are comparable.

tokens = text tokens (the configured text tokenizer) + audio frames x codebooks.

The text of a sample, by task:
- generation: its first caption (the condition);
- understanding: every turn of its conversation (UALM's `{from, value}` turns, or
  `{role, content}`), joined by newlines; with no conversation, its first caption (the answer to
  "describe the audio");
- text (and reasoning): every message's content, joined by newlines (a reasoning turn's text
  parts; its audio parts count as their codes: `code_tokens` sums frames x codebooks over every
  array of the sample).
A sample longer than the training sequence counts as the trainer uses it (`trained_tokens`,
given the sequence length): the sum over the pieces it is cut into (`ualm.train.sequence.split`,
each piece with its repeated context), or 0 when it cannot be cut to fit and is skipped.
Special tokens and the delay pattern's padding are not counted: they depend on the model, and
counting them would make a blend depend on the backbone.

The task of a sample (`sample_task`) is its own `task` when its input manifest gave one (UALM
understanding rows and chat rows get one at ingest). Otherwise chat `messages` make it `text`,
an audio sample with a conversation is `understanding`, and any other audio sample is
`generation`: its first caption is the condition (none: it trains unconditional generation,
as classifier-free guidance's dropped condition does). The trainer lays samples out by the same
rule (`ualm.train.sequence.chat`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ualm.train.sequence.split import Codes, split_sample
from ualm.train.sequence.text_tokenizer import TextTokenizer


def sample_text(meta: Mapping[str, Any]) -> str:
    task = sample_task(meta)  # a task-less sample is counted as the task it is inferred to be
    captions = meta.get("captions") or []
    if task in ("text", "reasoning") or meta.get("messages"):
        return "\n".join(_turn_text(m) for m in meta.get("messages") or [])
    if task == "understanding" and meta.get("conversations"):
        return "\n".join(_turn_text(t) for t in meta["conversations"])
    return str(captions[0]) if captions else ""


def sample_task(meta: Mapping[str, Any]) -> str:
    """The task a sample trains (see the module docstring)."""
    if meta.get("task"):
        return str(meta["task"])
    if meta.get("messages") is not None:
        return "text"
    return "understanding" if meta.get("conversations") else "generation"


def sample_tokens(meta: Mapping[str, Any], tokenizer: TextTokenizer, frames: int = 0,
                  codebooks: int = 0) -> int:
    """Tokens of one sample; frames and codebooks from its code array (0 for text samples)."""
    return len(tokenizer.encode(sample_text(meta))) + frames * codebooks


def code_tokens(codes: np.ndarray | Mapping[str, np.ndarray] | None) -> int:
    """Audio tokens of a sample's code array, or of all of a reasoning sample's arrays (by
    ref): frames x codebooks each."""
    if codes is None:
        return 0
    if type(codes) is np.ndarray:  # the common case, without the slow ABC check
        return int(codes.shape[0]) * int(codes.shape[1])
    arrays = codes.values() if isinstance(codes, Mapping) else (codes,)
    return sum(int(a.shape[0]) * int(a.shape[1]) for a in arrays)


def trained_tokens(meta: Mapping[str, Any], codes: Codes, tokenizer: TextTokenizer,
                   codebooks: int, seq_len: int | None) -> tuple[int, int, int]:
    """(text tokens, audio tokens, pieces) the trainer uses of one sample at `seq_len` (None:
    the whole sample, uncut). 0 pieces (and tokens): skipped, too long or malformed."""
    if seq_len is None:
        return sample_tokens(meta, tokenizer), code_tokens(codes), 1
    try:
        pieces = split_sample(meta, codes, tokenizer, codebooks, seq_len)
    except ValueError:  # the trainer skips it as `bad`
        return 0, 0, 0
    return (sum(sample_tokens(m, tokenizer) for m, _ in pieces),
            sum(code_tokens(c) for _, c in pieces), len(pieces))


def _turn_text(turn: Any) -> str:
    if type(turn) is dict or isinstance(turn, Mapping):  # dict first: the ABC check is slow
        content = turn.get("content", turn.get("value", ""))
        if isinstance(content, list):  # reasoning turns: text parts (audio counts as codes)
            return "\n".join(str(p.get("text", "")) for p in content
                             if isinstance(p, Mapping) and p.get("type") == "text")
        return str(content)
    return str(turn)

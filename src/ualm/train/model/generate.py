"""Inference: audio codes from captions (classifier-free guidance, top-k sampling, the delay
pattern undone) and text answers about audio (greedy). Both run batched, left-padded, with the
backbone's KV cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ualm.train.model.model import UALMModel
from ualm.train.sequence.chat import prompt_for_generation, prompt_for_understanding, text_ids
from ualm.train.sequence.layout import (
    ASSISTANT,
    AUDIO,
    BOS,
    CODE_PAD,
    EOS,
    EOT,
    FRAME,
    N_SPECIAL,
    PAD,
    USER,
)


@dataclass(frozen=True)
class GenerationConfig:
    guidance: float = 3.0
    """λ in logits = λ·cond + (1 - λ)·uncond (1: no guidance)."""
    top_k: int = 20
    temperature: float = 0.8
    max_frames: int = 750
    """Upper bound on the audio length (750 frames: 10 s at 75 frames/s)."""
    seed: int = 0


DEFAULT_GENERATION = GenerationConfig()


class _Batch:
    """Left-padded rows sharing one KV cache; `step` feeds one position to every row."""

    def __init__(self, model: UALMModel, rows: Sequence[np.ndarray]) -> None:
        from transformers import DynamicCache

        self.model = model
        k1 = rows[0].shape[0]
        width = max(r.shape[1] for r in rows)
        device = next(model.parameters()).device
        tokens = torch.full((len(rows), k1, width), CODE_PAD, dtype=torch.long)
        tokens[:, 0] = PAD
        self.mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, :, width - r.shape[1] :] = torch.from_numpy(r)
            self.mask[i, width - r.shape[1] :] = 1
        self.next_position = self.mask.sum(1)
        positions = (self.mask.cumsum(1) - 1).clamp(min=0)
        self.cache = DynamicCache(config=model.lm.config)
        self.device = device
        self.mask = self.mask.to(device)
        h, self.cache = model.hidden(tokens.to(device), positions.to(device), self.cache,
                                     self.mask)
        self.last = h[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [rows, 1 + K] -> hidden state of that position [rows, H]."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        positions = self.next_position.view(-1, 1).to(self.device)
        self.next_position = self.next_position + 1
        h, self.cache = self.model.hidden(tokens[:, :, None].to(self.device), positions,
                                          self.cache, self.mask)
        self.last = h[:, -1]
        return self.last


def _sample(logits: torch.Tensor, top_k: int, temperature: float,
            generator: torch.Generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).view(-1).to(logits.device)


@torch.inference_mode()
def generate_codes(model: UALMModel, captions: Sequence[str],
                   config: GenerationConfig = DEFAULT_GENERATION) -> list[np.ndarray]:
    """Codes [K, T] (int16) per caption. T is where the model ends the audio (stream 0 turns
    from <|frame|> to <|pad|>), at most config.max_frames."""
    k, b = model.k, len(captions)
    guided = config.guidance != 1.0
    texts: list[str | None] = list(captions) + ([None] * b if guided else [])
    rows = []
    for text in texts:
        ids = [*prompt_for_generation(text, model.tokenizer), AUDIO]
        row = np.full((1 + k, len(ids)), CODE_PAD, dtype=np.int64)
        row[0] = ids
        rows.append(row)
    batch = _Batch(model, rows)
    generator = torch.Generator().manual_seed(config.seed)
    ends = [None] * b  # frame count T of each caption's audio, once known
    steps = torch.full((b, k, config.max_frames + k - 1), CODE_PAD, dtype=torch.long)
    for t in range(config.max_frames + k - 1):
        h = batch.last
        text = model.text_logits(h[:b])
        for i in range(b):
            if ends[i] is None and (text[i, PAD] > text[i, FRAME] or t == config.max_frames):
                ends[i] = t
        codes = torch.full((b, k), CODE_PAD, dtype=torch.long)
        for n in range(min(t + 1, k)):
            logits = model.code_logits(h, n)
            if guided:
                logits = config.guidance * logits[:b] + (1 - config.guidance) * logits[b:]
            real = logits[:, :CODE_PAD]  # never sample the pad: the delay pattern places it
            drawn = _sample(real, config.top_k, config.temperature, generator).cpu()
            for i in range(b):
                if ends[i] is None or t < ends[i] + n:
                    codes[i, n] = drawn[i]
        steps[:, :, t] = codes
        if all(e is not None and t >= e + k - 1 for e in ends):
            break
        stream0 = torch.tensor([FRAME if e is None else PAD for e in ends])
        step = torch.cat([stream0[:, None], codes], dim=1)
        batch.step(torch.cat([step, step]) if guided else step)
    out = []
    for i in range(b):
        frames = int(ends[i])  # type: ignore[arg-type]
        out.append(np.stack([steps[i, n, n : n + frames].numpy() for n in range(k)])
                   .astype(np.int16))
    return out


@torch.inference_mode()
def answer(model: UALMModel, questions: Sequence[str], codes: Sequence[np.ndarray],
           max_new_tokens: int = 64) -> list[str]:
    """Greedy text answers, one per (question, codes [K, T]); `<sound>` in a question marks
    where the audio goes (default: before the question)."""
    k = model.k
    rows = [prompt_for_understanding(q, c, model.tokenizer, k).arrays()["tokens"]
            for q, c in zip(questions, codes, strict=True)]
    batch = _Batch(model, rows)
    done = [False] * len(rows)
    produced: list[list[int]] = [[] for _ in rows]
    offset = 256
    for _ in range(max_new_tokens):
        ids = model.text_logits(batch.last).argmax(-1).cpu()
        for i, tok in enumerate(ids.tolist()):
            if done[i]:
                continue
            if tok in (EOT, EOS):
                done[i] = True
            elif tok >= offset:
                produced[i].append(tok - offset)
        if all(done):
            break
        step = torch.full((len(rows), 1 + k), CODE_PAD, dtype=torch.long)
        step[:, 0] = ids
        batch.step(step)
    return [model.tokenizer.decode(p) for p in produced]


@torch.inference_mode()
def reply_before_audio(model: UALMModel, prompt: str, max_tokens: int = 512
                       ) -> tuple[str, int | None]:
    """Greedy stream-0 reply to a user prompt, up to the first special token the model writes:
    (the text before it, that token, or None when max_tokens ran out). After sft on enrichment
    traces the model writes a rich caption, then <|audio|>."""
    ids = [BOS, USER, *text_ids(model.tokenizer, prompt), EOT, ASSISTANT]
    row = np.full((1 + model.k, len(ids)), CODE_PAD, dtype=np.int64)
    row[0] = ids
    batch = _Batch(model, [row])
    text: list[int] = []
    for _ in range(max_tokens):
        tok = int(model.text_logits(batch.last).argmax(-1)[0])
        if tok < N_SPECIAL:
            return model.tokenizer.decode(text), tok
        text.append(tok - N_SPECIAL)
        step = torch.full((1, 1 + model.k), CODE_PAD, dtype=torch.long)
        step[0, 0] = tok
        batch.step(step)
    return model.tokenizer.decode(text), None

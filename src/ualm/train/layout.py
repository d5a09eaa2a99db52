"""The sequence layout UALM trains on: one sequence of 1 + K streams, the chat format with UALM's
256 reserved special tokens, and the delay pattern.

Vocabulary (one table, shared by the input embedding and the output heads):

    [0, 256)                     special tokens (<|pad|>, <|bos|>, ..., then reserved ones)
    [256, 256 + V)               the text tokenizer's tokens
    [256 + V + n * 1025, +1025)  codebook n's block: codes 0..1023, then its pad (1024)

A position holds stream 0 (a special or text id) and K codebook streams (a code 0..1024, local to
its block). At text positions every codebook holds its pad; at audio steps stream 0 holds
<|frame|> while codebook 1 still carries real codes and <|pad|> in the delay tail, so the text
head learns where audio ends.

An audio segment of T frames becomes <|audio|>, T + K - 1 delayed steps, <|audio_end|>:

    >>> delay(np.array([[1, 2, 3], [4, 5, 6]]), pad=9)
    array([[1, 2, 3, 9],
           [9, 4, 5, 6]])
    >>> undelay(delay(np.array([[1, 2, 3], [4, 5, 6]]), pad=9)).tolist()
    [[1, 2, 3], [4, 5, 6]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SPECIAL = 256
NAMED_SPECIALS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|eot|>", "<|system|>", "<|user|>",
                  "<|assistant|>", "<|text|>", "<|audio|>", "<|audio_end|>", "<|frame|>",
                  "<|think|>", "<|/think|>")
SPECIAL_TOKENS = NAMED_SPECIALS + tuple(f"<|reserved_{i}|>"
                                        for i in range(len(NAMED_SPECIALS), N_SPECIAL))
SPECIAL = {name.strip("<|>").replace("/", "end_"): i for i, name in enumerate(NAMED_SPECIALS)}
PAD, BOS, EOS, EOT = SPECIAL["pad"], SPECIAL["bos"], SPECIAL["eos"], SPECIAL["eot"]
SYSTEM, USER, ASSISTANT = SPECIAL["system"], SPECIAL["user"], SPECIAL["assistant"]
AUDIO, AUDIO_END, FRAME = SPECIAL["audio"], SPECIAL["audio_end"], SPECIAL["frame"]
ROLES = {"system": SYSTEM, "user": USER, "human": USER, "assistant": ASSISTANT, "gpt": ASSISTANT}

CODEBOOK_SIZE = 1024
CODE_PAD = CODEBOOK_SIZE  # each codebook's own pad entry
BLOCK = CODEBOOK_SIZE + 1
IGNORE = -100
TASK_IDS = {"understanding": 0, "generation": 1, "text": 2, "reasoning": 3}


@dataclass(frozen=True)
class Vocab:
    """Where each stream's entries sit in the shared table.

    >>> v = Vocab(text_size=256)
    >>> v.text_rows, v.code_offset(0), v.size
    (512, 512, 8712)
    """

    text_size: int
    codebooks: int = 8

    @property
    def text_rows(self) -> int:
        """Rows of the text head: special tokens and text tokens."""
        return N_SPECIAL + self.text_size

    def code_offset(self, codebook: int) -> int:
        return self.text_rows + codebook * BLOCK

    @property
    def size(self) -> int:
        return self.text_rows + self.codebooks * BLOCK


def delay(codes: np.ndarray, pad: int = CODE_PAD) -> np.ndarray:
    """[K, T] -> [K, T + K - 1]: codebook n shifted right by n steps, pads around it."""
    k, t = codes.shape
    out = np.full((k, t + k - 1), pad, dtype=np.int64)
    for n in range(k):
        out[n, n : n + t] = codes[n]
    return out


def undelay(steps: np.ndarray) -> np.ndarray:
    """[K, T + K - 1] -> [K, T], the inverse of `delay`."""
    k = steps.shape[0]
    t = steps.shape[1] - k + 1
    return np.stack([steps[n, n : n + t] for n in range(k)])


class SequenceBuilder:
    """Accumulates one sample's positions: stream 0, the codebooks, and what is a target.

    A target position is one the model must predict (from the position before it). Stream-0
    targets at audio steps weigh 1/K, like the codebooks, so a frame of audio counts about as
    much as one text token."""

    def __init__(self, codebooks: int) -> None:
        self.k = codebooks
        self.stream0: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.target: list[np.ndarray] = []
        self.weight0: list[np.ndarray] = []
        self.code_target: list[np.ndarray] = []  # bool [K, n]: real codes to predict

    def text(self, ids: list[int] | np.ndarray, target: bool = False) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.stream0.append(ids)
        self.codes.append(np.full((self.k, len(ids)), CODE_PAD, dtype=np.int64))
        self.target.append(np.full(len(ids), target))
        self.weight0.append(np.ones(len(ids), dtype=np.float32))
        self.code_target.append(np.zeros((self.k, len(ids)), dtype=bool))

    def audio(self, codes: np.ndarray, target: bool = False) -> None:
        """<|audio|>, the delayed steps, <|audio_end|>."""
        k, t = codes.shape
        if k != self.k:
            raise ValueError(f"sample has {k} codebooks, the model {self.k}")
        self.text([AUDIO], target)
        steps = delay(codes.astype(np.int64))
        n = steps.shape[1]
        self.stream0.append(np.where(np.arange(n) < t, FRAME, PAD).astype(np.int64))
        self.codes.append(steps)
        self.target.append(np.full(n, target))
        self.weight0.append(np.full(n, 1.0 / self.k, dtype=np.float32))
        self.code_target.append((steps != CODE_PAD) & target)
        self.text([AUDIO_END], target)

    def __len__(self) -> int:
        return sum(len(s) for s in self.stream0)

    def arrays(self) -> dict[str, np.ndarray]:
        """tokens [1 + K, n]; labels shifted so that position p holds what p predicts
        (IGNORE where nothing): text_labels [n], text_weight [n], code_labels [K, n]."""
        stream0 = np.concatenate(self.stream0)
        codes = np.concatenate(self.codes, axis=1)
        target = np.concatenate(self.target)
        weight0 = np.concatenate(self.weight0)
        code_target = np.concatenate(self.code_target, axis=1)
        n = len(stream0)
        text_labels = np.full(n, IGNORE, dtype=np.int64)
        text_labels[:-1] = np.where(target[1:], stream0[1:], IGNORE)
        text_weight = np.zeros(n, dtype=np.float32)
        text_weight[:-1] = np.where(target[1:], weight0[1:], 0.0)
        code_labels = np.full((self.k, n), IGNORE, dtype=np.int64)
        code_labels[:, :-1] = np.where(code_target[:, 1:], codes[:, 1:], IGNORE)
        return {"tokens": np.concatenate([stream0[None], codes]), "text_labels": text_labels,
                "text_weight": text_weight, "code_labels": code_labels}

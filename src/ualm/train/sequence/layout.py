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
from typing import Any

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
    much as one text token.

    A sample is kept as pieces (runs of text with one target flag, and audio segments) and the
    text ids alone; `place` writes the pieces into a batch with a few slice assignments each.
    Building samples is the data loader's hot path: per-position Python lists and arrays cost
    more than everything else it does."""

    def __init__(self, codebooks: int) -> None:
        self.k = codebooks
        self.ids: list[int] = []
        """Stream-0 ids of the text positions, in order, less N_SPECIAL: a text tokenizer's ids
        as it gives them, special tokens negative. `place` offsets a run of them in the step
        that copies it (offsetting each token in Python cost more than the rest of laying a
        sample out)."""
        self.pieces: list[list[Any]] = []
        """[first position, length, target, codes [K, T] or None for text] of each piece."""
        self.length = 0

    def text(self, ids: list[int] | np.ndarray, target: bool = False) -> None:
        """Stream-0 ids: special tokens, or `chat.text_ids`."""
        if type(ids) is not list:  # about six calls per sample: the checks are kept cheap
            ids = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        self.words([i - N_SPECIAL for i in ids], target)

    def words(self, tokens: list[int], target: bool = False) -> None:
        """A text tokenizer's ids (stream-0 ids N_SPECIAL + id)."""
        n = len(tokens)
        if n == 0:
            return
        pieces = self.pieces
        last = pieces[-1] if pieces else None
        if last is not None and last[3] is None and last[2] == target:
            last[1] += n
        else:
            pieces.append([self.length, n, target, None])
        self.ids += tokens
        self.length += n

    def audio(self, codes: np.ndarray, target: bool = False) -> None:
        """<|audio|>, the delayed steps (<|frame|> in stream 0, then <|pad|> in the delay
        tail), <|audio_end|>."""
        k, t = codes.shape
        if k != self.k:
            raise ValueError(f"sample has {k} codebooks, the model {self.k}")
        self.text([AUDIO], target)
        self.pieces.append([self.length, t + k - 1, target, codes])
        self.length += t + k - 1
        self.text([AUDIO_END], target)

    def __len__(self) -> int:
        return self.length

    def laid(self) -> LaidSample:
        return LaidSample(np.array(self.ids, dtype=np.int64), tuple(map(tuple, self.pieces)),
                          self.length)  # type: ignore[arg-type]

    def arrays(self) -> dict[str, np.ndarray]:
        """tokens [1 + K, n]; labels shifted so that position p holds what p predicts
        (IGNORE where nothing): text_labels [n], text_weight [n], code_labels [K, n]."""
        rows = empty_rows(1, len(self), self.k)
        place(rows, 0, 0, self.laid())
        return {name: array[0] for name, array in with_labels(rows).items()}


class LaidSample:
    """One sample, compact: what `place` writes into a row of a batch. Read only once made
    (a plain class with slots: a frozen dataclass's constructor cost a microsecond a sample)."""

    __slots__ = ("length", "pieces", "text_ids")

    def __init__(self, text_ids: np.ndarray,
                 pieces: tuple[tuple[int, int, bool, np.ndarray | None], ...], length: int) -> None:
        self.text_ids = text_ids
        """int64: stream-0 ids of the text positions, in order, less N_SPECIAL."""
        self.pieces = pieces
        """(first position, length, target, codes or None for text)."""
        self.length = length

    def __len__(self) -> int:
        return self.length


def empty_rows(rows: int, length: int, codebooks: int) -> dict[str, Any]:
    """Rows of padding: tokens [rows, 1 + K, length], target flags [rows, length], and a view
    of the codebooks along the delay pattern (`delayed[r, n, p]` is codebook n's entry at step
    p + n of row r), so that a segment's codes are written with one assignment."""
    tokens = np.full((rows, 1 + codebooks, length), CODE_PAD, dtype=np.int64)
    tokens[:, 0] = PAD
    item = tokens.itemsize
    delayed = np.lib.stride_tricks.as_strided(tokens.reshape(-1)[length:],
                                              shape=(rows, codebooks, length),
                                              strides=(tokens.strides[0], (length + 1) * item,
                                                       item))
    return {"tokens": tokens, "target": np.zeros((rows, length), dtype=bool),
            "delayed": delayed}


def place(rows: dict[str, Any], row: int, at: int, sample: LaidSample) -> None:
    """Writes a sample into padding of `empty_rows` at a position, codebook n of each segment
    delayed n steps. (A segment of T frames spans T + K - 1 steps and <|audio_end|> follows
    it, so the delayed view never reaches past the row; its delay tail stays <|pad|>.)"""
    place_in_row(rows["tokens"][row, 0], rows["target"][row], rows["delayed"][row], at, sample)


def place_in_row(stream0: np.ndarray, target: np.ndarray, delayed: np.ndarray, at: int,
                 sample: LaidSample) -> None:
    """`place`, given one row's stream 0, target flags and delay view (a packer keeps them)."""
    used = 0
    for first, n, is_target, codes in sample.pieces:
        a = at + first
        if codes is None:
            np.add(sample.text_ids[used : used + n], N_SPECIAL, out=stream0[a : a + n])
            used += n
        else:
            t = codes.shape[1]
            stream0[a : a + t] = FRAME
            delayed[:, a : a + t] = codes
        if is_target:
            target[a : a + n] = True
    target[at] = False  # a sample's first position is never predicted from the position
    # before it, which belongs to another sample (or to nothing)


def with_labels(rows: dict[str, Any]) -> dict[str, np.ndarray]:
    """tokens and what each position predicts (IGNORE where nothing): text_labels, text_weight
    (1/K at audio steps, which hold <|frame|> or <|pad|> in stream 0) and code_labels.

    Position p predicts p + 1 where p + 1 is a target: stream 0's id, and each codebook's code
    unless it is that codebook's pad. `place` writes codes only at audio steps, so only the
    target audio steps are read for code labels, a run per audio segment (about a fifth of a
    packed batch's positions; comparing every codebook at every position cost more than the
    rest of this function)."""
    tokens, target = rows["tokens"], rows["target"]
    k = tokens.shape[1] - 1
    stream0, ahead = tokens[:, 0], target[:, 1:]
    following = stream0[:, 1:]
    text_labels = np.full(stream0.shape, IGNORE, dtype=np.int64)
    np.copyto(text_labels[:, :-1], following, where=ahead)
    audio = ahead & ((following == FRAME) | (following == PAD))
    text_weight = np.zeros(stream0.shape, dtype=np.float32)
    text_weight[:, :-1] = ahead
    text_weight[:, :-1][audio] = 1.0 / k
    code_labels = np.full((tokens.shape[0], k, tokens.shape[2]), IGNORE, dtype=np.int64)
    rows_at, edges = np.nonzero(np.diff(audio, prepend=False, append=False, axis=1))
    for row, start, end in zip(rows_at[::2].tolist(), edges[::2].tolist(), edges[1::2].tolist(),
                               strict=True):  # each run of target audio steps
        codes = tokens[row, 1:, start + 1 : end + 1]
        np.copyto(code_labels[row, :, start:end], codes, where=codes != CODE_PAD)
    return {"tokens": tokens, "text_labels": text_labels, "text_weight": text_weight,
            "code_labels": code_labels}

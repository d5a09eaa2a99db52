"""One shard sample -> one training sequence, in UALM's chat layout.

    generation     <|bos|><|user|> caption <|eot|><|assistant|> [audio] <|eot|><|eos|>
    understanding  <|bos|><|user|> [audio] question <|eot|><|assistant|> answer <|eot|> ... <|eos|>
    text           <|bos|><|user|> ... <|eot|><|assistant|> ... <|eot|> ... <|eos|>
    reasoning      <|bos|><|user|> text <|eot|><|assistant|> text [audio] text [audio] <|eot|> <|eos|>

Targets (what the loss sees) are everything the assistant says, and the final <|eos|>. For
classifier-free guidance a generation sample's condition (everything before <|assistant|>,
BOS included) is dropped with a given probability; inference runs the same unconditional prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ualm.train.sequence.layout import (
    ASSISTANT,
    BOS,
    EOS,
    EOT,
    N_SPECIAL,
    ROLES,
    USER,
    SequenceBuilder,
)
from ualm.train.sequence.text_tokenizer import TextTokenizer

SOUND_TAG = "<sound>"
DESCRIBE = "Describe the audio."


def sample_task(meta: Mapping[str, Any]) -> str:
    """The task a sample trains: its own, or what its fields imply (conversations mean
    understanding, audio with captions means generation, messages mean text)."""
    task = meta.get("task")
    if task:
        return str(task)
    if meta.get("messages") is not None:
        return "text"
    return "understanding" if meta.get("conversations") else "generation"


def text_ids(tokenizer: TextTokenizer, text: str) -> list[int]:
    return [N_SPECIAL + i for i in tokenizer.encode(text)]


def build_sample(meta: Mapping[str, Any], codes: np.ndarray | Mapping[str, np.ndarray] | None,
                 tokenizer: TextTokenizer, codebooks: int,
                 drop_condition: bool = False) -> SequenceBuilder:
    """The sequence of one sample; raises ValueError for a sample that cannot be laid out.
    `codes` is the sample's code array, or for a reasoning sample its arrays by ref."""
    task = sample_task(meta)
    seq = SequenceBuilder(codebooks)
    if task == "generation":
        if codes is None:
            raise ValueError("a generation sample needs codes")
        if not drop_condition:
            captions = meta.get("captions") or []
            seq.text([BOS, USER])
            seq.words(tokenizer.encode(str(captions[0]) if captions else ""))
            seq.text([EOT])
        seq.text([ASSISTANT])
        seq.audio(codes, target=True)
        seq.text([EOT, EOS], target=True)
    elif task == "understanding":
        if codes is None:
            raise ValueError("an understanding sample needs codes")
        turns = meta.get("conversations") or [
            {"from": "human", "value": f"{SOUND_TAG}\n{DESCRIBE}"},
            {"from": "gpt", "value": (meta.get("captions") or [""])[0]}]
        seq.text([BOS])
        _turns(seq, turns, tokenizer, codes)
        seq.text([EOS], target=True)
    elif task == "reasoning":
        if not isinstance(codes, Mapping):
            raise ValueError("a reasoning sample needs its audio arrays by ref")
        seq.text([BOS])
        _reasoning_turns(seq, meta.get("messages") or [], tokenizer, codes)
        seq.text([EOS], target=True)
    else:  # text
        messages = meta.get("messages") or []
        seq.text([BOS])
        _turns(seq, messages, tokenizer, None)
        seq.text([EOS], target=True)
    return seq


def _turns(seq: SequenceBuilder, turns: list[Any], tokenizer: TextTokenizer,
           codes: np.ndarray | None) -> None:
    """Each turn: role token, content, <|eot|>. Assistant turns are targets; with no assistant
    turn at all (plain text), every turn is. The audio goes where the first <sound> tag is (or
    before the first user turn's text)."""
    roles = [str(t.get("from", t.get("role", "user"))) for t in turns]
    everything = not any(ROLES.get(r) == ASSISTANT for r in roles)
    audio_left = codes is not None
    for role, turn in zip(roles, turns, strict=True):
        content = str(turn.get("value", turn.get("content", "")))
        role_id = ROLES.get(role, USER)
        target = everything or role_id == ASSISTANT
        seq.text([role_id], target=everything)
        if audio_left and role_id == USER:
            before, _, after = content.partition(SOUND_TAG) if SOUND_TAG in content else ("",
                                                                                        "", content)
            if before.strip():
                seq.words(tokenizer.encode(before.strip()))
            seq.audio(codes)  # type: ignore[arg-type]
            content = after.strip()
            audio_left = False
        seq.words(tokenizer.encode(content), target=target)
        seq.text([EOT], target=target)


def _reasoning_turns(seq: SequenceBuilder, messages: list[Any], tokenizer: TextTokenizer,
                     codes: Mapping[str, np.ndarray]) -> None:
    """Each turn: role token, its parts in order (text as text, audio as codes by ref),
    <|eot|>. Assistant turns are targets, text and audio alike; an audio part marked
    `"target": false` (self-reflection's near-miss, which the model heard but should not learn
    to make) is context."""
    for turn in messages:
        role_id = ROLES.get(str(turn.get("role", "user")), USER)
        target = role_id == ASSISTANT
        seq.text([role_id])
        content = turn.get("content", "")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            kind = part.get("type")
            if kind == "text":
                seq.words(tokenizer.encode(str(part.get("text", ""))), target=target)
            elif kind == "audio":
                ref = str(part.get("ref"))
                if ref not in codes:
                    raise ValueError(f"audio part {ref!r} has no codes in the sample")
                seq.audio(codes[ref], target=target and part.get("target", True) is not False)
            else:
                raise ValueError(f"unknown message part type {kind!r}")
        seq.text([EOT], target=target)


def prompt_for_generation(caption: str | None, tokenizer: TextTokenizer) -> list[int]:
    """Stream-0 prefix for generating audio (None: the unconditional one)."""
    cond = [] if caption is None else [BOS, USER, *text_ids(tokenizer, caption), EOT]
    return [*cond, ASSISTANT]


def prompt_for_understanding(question: str, codes: np.ndarray, tokenizer: TextTokenizer,
                             codebooks: int) -> SequenceBuilder:
    """The prefix up to <|assistant|>; the answer is decoded after it."""
    seq = SequenceBuilder(codebooks)
    seq.text([BOS])
    seq.text([USER])
    before, _, after = question.partition(SOUND_TAG) if SOUND_TAG in question else ("", "",
                                                                                    question)
    if before.strip():
        seq.text(text_ids(tokenizer, before.strip()))
    seq.audio(codes)
    seq.text([*text_ids(tokenizer, after.strip()), EOT, ASSISTANT])
    return seq

"""One corpus sample (its shard JSON) as the sample UALM's trainer reads: which of UALM's tasks it
trains, the `text` dict its `tarball_dialogue` reader hands to that task's template, which audio it
uses, and what UALM's loader would not train of it.

    ours           UALM                    text
    generation     caption_to_audio        {caption: captions[0], captions}
    understanding  audio_to_conversation   {conversations}            (with a conversation)
                   audio_to_caption        {caption: captions[0]}     (without one)
    text           text_only               {conversations}            (messages as from/value)
    reasoning      caption_to_audio        {caption: the assistant's reasoning text, trace}

UALM's templates read `conversations` (or `messages`) as `{"from", "value"}` turns before any
other field, and its caption_to_audio template then puts the audio on the *user* side: a trace
given as a conversation would train audio in, text out. So a reasoning trace becomes the
generation it ends in: its caption is everything the assistant wrote before the target audio
in the turn that holds the target audio (the rich caption; or plan, what it heard and
critique), its audio the target clip; the full trace rides along under `trace`, which no
template reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOUND_TAG = "<sound>"
AUDIO_FRAMES_PER_SECOND = 50
"""UALM's length statistics count 50 positions per second of audio (X-codec's frame rate)."""
ROLES = {"user": "human", "assistant": "gpt", "human": "human", "gpt": "gpt"}
"""Our message roles as UALM's conversation speakers (`system` and others stay as they are)."""
# The fixed prompts of UALM's templates, for the length estimate of samples without turns.
PROMPTS = {"caption_to_audio": "<|text to audio|> Generate audio for this caption. ",
           "audio_to_caption": "<|audio to caption|> Generate caption for this audio."}

LOSSES = {
    "multi_turn": "conversations longer than one exchange: UALM trains the first two turns only",
    "multichannel": "multi-channel audio: UALM keeps channel 0 only (no downmix)",
    "extra_audio": "trace audio beyond the target clip: UALM trains one audio per example",
    "trace_prompt": "trace user turns: UALM's caption_to_audio template conditions on the "
                    "caption alone",
    "too_long": "samples longer than the batch size: UALM drops them (left out of the export)",
}
"""What UALM's loader would lose without a word, by the name the export report counts it."""


@dataclass
class UalmSample:
    """One exported sample before ids and copies are assigned."""

    key: str
    """The corpus key (an audio or text sample's, or a trace's)."""
    source: str
    task: str
    """Our task: generation, understanding, text or reasoning."""
    ualm_task: str
    text: dict[str, Any]
    audio_key: str | None
    """The corpus key of the audio sample it uses (None for text only)."""
    turns: list[str]
    """The texts UALM's template will tokenize, for the length estimate."""
    losses: list[str]

    @property
    def dataset(self) -> str:
        return dataset_id(self.source, self.task)


def dataset_id(source: str, task: str) -> str:
    """A UALM dataset id, `<task>.<source>`: no `:` or whitespace (its specifiers are
    `task:dataset:factor`), and the one dot first, because UALM's train.py gives a stats file
    to the first manifest whose name ends the file's name: `generation.caps` cannot end
    `..._generation.audiocaps`, where `caps-generation` would end `..._audiocaps-generation`."""
    def clean(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "x"

    return f"{clean(task)}.{clean(source)}"


def our_task(meta: dict[str, Any], has_audio: bool) -> str:
    """Our task as the trainer resolves it: the sample's own, else what its fields imply."""
    if meta.get("task"):
        return str(meta["task"])
    if not has_audio:
        return "text"
    return "understanding" if _conversation(meta) else "generation"


def _conversation(meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    return meta.get("conversations") or (meta.get("extra") or {}).get("conversations")


def as_conversation(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Turns as UALM reads them: `{"from", "value"}`, roles human/gpt, text content."""
    out = []
    for turn in turns:
        role = str(turn.get("from", turn.get("role", "user")))
        value = turn.get("value", turn.get("content", ""))
        if not isinstance(value, str):  # parts: the text ones, audio as the sound tag
            value = " ".join(p.get("text", "") if p.get("type") == "text" else SOUND_TAG
                             for p in value)
        out.append({"from": ROLES.get(role, role), "value": str(value)})
    return out


def map_sample(key: str, meta: dict[str, Any], has_audio: bool) -> UalmSample | None:
    """The UALM sample of one corpus sample or trace; None for a task UALM has no template
    for (the caller counts it as not exported)."""
    task = our_task(meta, has_audio)
    source = str(meta.get("source") or "unknown")
    captions = [str(c) for c in meta.get("captions") or []]
    caption = captions[0] if captions else ""
    if task == "generation" and has_audio:
        text: dict[str, Any] = {"caption": caption, "captions": captions}
        return UalmSample(key, source, task, "caption_to_audio", text, key,
                          [PROMPTS["caption_to_audio"] + caption, ""], [])
    if task == "understanding" and has_audio:
        conv = _conversation(meta)
        if not conv:
            return UalmSample(key, source, task, "audio_to_caption", {"caption": caption}, key,
                              [PROMPTS["audio_to_caption"], caption], [])
        turns = as_conversation(conv)
        return UalmSample(key, source, task, "audio_to_conversation", {"conversations": turns},
                          key, [t["value"] for t in turns[:2]],
                          ["multi_turn"] if len(turns) > 2 else [])
    if task == "text" and not has_audio:
        turns = as_conversation(meta.get("messages") or [])
        if not turns:
            plain = str(meta.get("text") or "")
            return UalmSample(key, source, task, "text_only", {"text": plain}, None, [plain], [])
        return UalmSample(key, source, task, "text_only", {"conversations": turns}, None,
                          [t["value"] for t in turns[:2]],
                          ["multi_turn"] if len(turns) > 2 else [])
    if task == "reasoning":
        return _trace(key, source, meta)
    return None


def _trace(key: str, source: str, meta: dict[str, Any]) -> UalmSample | None:
    """A reasoning trace as the generation it ends in (see the module's docstring)."""
    said: list[str] = []
    target: str | None = None
    audios = users = 0
    for turn in meta.get("messages") or []:
        content = turn.get("content", "")
        if turn.get("role") != "assistant":
            users += 1
            continue
        if target is None:  # the caption: the turn that ends in the target audio
            said = []
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if part.get("type") == "audio":
                audios += 1
                if part.get("target", True) is not False:
                    target = str(part.get("key"))
                    break
            elif target is None:
                said.append(str(part.get("text", "")).strip())
    if target is None:
        return None
    caption = " ".join(s for s in said if s)
    losses = (["extra_audio"] if audios > 1 else []) + (["trace_prompt"] if users else [])
    if len(meta.get("messages") or []) > 2:
        losses.append("multi_turn")
    text = {"caption": caption, "trace": {"kind": meta.get("kind"),
                                          "conversations": as_conversation(
                                              meta.get("messages") or [])}}
    return UalmSample(key, source, "reasoning", "caption_to_audio", text, target,
                      [PROMPTS["caption_to_audio"] + caption, ""], losses)


def estimate_tokens(text: str) -> int:
    """Text tokens of a BPE vocabulary such as Qwen's, estimated: one per four UTF-8 bytes."""
    return math.ceil(len(text.encode()) / 4)


def length(sample: UalmSample, seconds: float,
           count: Callable[[str], int] = estimate_tokens) -> int:
    """UALM's length statistic: 1, plus per turn 3 and its text tokens, plus 50 per second of
    the sample's audio."""
    audio = math.ceil(AUDIO_FRAMES_PER_SECOND * seconds) if sample.audio_key else 0
    return 1 + sum(3 + count(turn) for turn in sample.turns) + audio

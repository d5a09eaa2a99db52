"""Versioned prompt templates, one per trace kind, and the repair prompt. Every trace records the
sha256 of the template that produced it: change a word here and bump `version`, and the cache and
the manifests tell the two apart.

>>> t = TEMPLATES["enrichment"]
>>> msgs = t.messages({"captions": "a dog barks", "seconds": 2.0, "tags": "", "transcript": ""})
>>> [m["role"] for m in msgs], len(t.sha256)
(['system', 'user'], 64)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

_RICH = ('"rich_caption": {"keywords": [sound events, short noun phrases], '
         '"layout": [{"event": a keyword, "start": seconds, "end": seconds}, ... in time order], '
         '"description": [{"event": a keyword, "text": its acoustic attributes}, one per keyword]}')

_RICH_F = _RICH.replace("{", "{{").replace("}", "}}")  # literal braces inside str.format text

SYSTEM = ("You write training data for an audio generation model. You answer with exactly one "
          "JSON object and nothing else: no prose, no code fences.")


@dataclass(frozen=True)
class Template:
    kind: str
    version: int
    user: str
    """str.format text over the job's variables."""

    @property
    def sha256(self) -> str:
        blob = json.dumps([self.kind, self.version, SYSTEM, self.user, REPAIR], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def messages(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": self.user.format(**variables)}]


TEMPLATES = {
    "enrichment": Template("enrichment", 1, (
        "A {seconds:.2f}-second audio clip is described by these captions: {captions}\n"
        "Tags: {tags}\nTranscript: {transcript}\n"
        "Write (1) a short request a user might type to get this sound (under 20 words, "
        "casual, not a copy of the caption) and (2) its rich caption.\n"
        'Answer as {{"prompt": "...", ' + _RICH_F + "}}")),
    "dialogue": Template("dialogue", 1, (
        "A {seconds:.2f}-second audio clip is described by these captions: {captions}\n"
        "Tags: {tags}\nTranscript: {transcript}\n"
        "Write a short dialogue in which a user asks vaguely for a sound and an assistant asks "
        "one or two clarifying questions (which events, their order, their character) that the "
        "user answers, so that the answers lead to this clip. Then write its rich caption.\n"
        'Answer as {{"turns": [{{"role": "user", "content": "..."}}, {{"role": "assistant", '
        '"content": "..."}}, ... ending with the user\'s last answer], ' + _RICH_F + "}}")),
    "reflection": Template("reflection", 1, (
        "A model was asked for a {seconds:.2f}-second clip matching: {captions}\n"
        "It planned the clip, generated audio, and listened to it. What it generated is "
        "described by: {v1_captions}\n"
        "Write (1) the plan as a rich caption of the requested clip, (2) a one-sentence caption "
        "of what was generated, as heard, and (3) a critique comparing the plan with what was "
        "generated (missing or extra events, wrong order, wrong character) and saying what to "
        "change.\n"
        'Answer as {{"plan": {{"keywords": [...], "layout": [...], "description": [...]}}, '
        '"v1_caption": "...", "critique": "..."}} where the plan has the fields of '
        + _RICH_F.split(": ", 1)[1])),
}

REPAIR = ("Your answer could not be used: {error}. Reply again with only the corrected JSON "
          "object, following the format asked for.")


def repair_message(error: str) -> dict[str, str]:
    return {"role": "user", "content": REPAIR.format(error=error)}

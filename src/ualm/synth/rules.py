"""The embedded rule-based teacher's writing: deterministic templates over a clip's captions,
tags and transcript. It needs no model, so the demo and the tests run offline; its phrasings
vary with the clip's key (a hash picks among variants), never with a random state.

A caption is cut into events at sequence words ("followed by", "then") and at overlap words
("while", "with"); sequential events share the clip's time evenly, overlapping ones span it.

>>> split_events("first a low tone, then white noise")
[('a low tone', False), ('white noise', False)]
>>> [e["event"] for e in rich_caption(["rain while a dog barks"], 4.0, "k")["layout"]]
['rain', 'a dog barks']
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

_SEQUENCE = re.compile(r"\s*(?:,?\s*followed by|,?\s*and then|,\s*then|\bthen\b|;|\.\s+)\s*",
                       re.IGNORECASE)
_OVERLAP = re.compile(r"\s+(?:while|with|as|over)\s+", re.IGNORECASE)
_TRIM = re.compile(r"^(?:first|just|only)\s+|\s+(?:alone|only)$|[.!,;:]+$", re.IGNORECASE)

ATTRIBUTES = {
    "low": ("low-pitched and deep", "deep, low in pitch"),
    "high": ("high-pitched and bright", "bright, high in pitch"),
    "tone": ("a steady sine-like tone with a pure timbre", "a held pitch, smooth and pure"),
    "white": ("a flat hiss spread evenly over all frequencies", "bright, even hiss"),
    "brown": ("dark rumbling noise weighted to the low frequencies", "a deep, muffled rumble"),
    "pink": ("soft noise, balanced between hiss and rumble", "a gentle, rain-like noise"),
    "noise": ("broadband noise without pitch", "unpitched noise"),
    "click": ("a regular train of short, sharp clicks", "fast, evenly spaced ticks"),
    "rising": ("sweeping upward in pitch", "gliding from low to high"),
    "falling": ("sweeping downward in pitch", "gliding from high to low"),
    "chirp": ("a quick frequency sweep", "a whistle-like glide"),
    "dog": ("barking, sharp and percussive", "a dog's short barks"),
    "rain": ("a dense patter of drops", "steady rainfall"),
    "speech": ("a person talking", "a spoken voice"),
    "music": ("tonal music with a steady beat", "melodic music"),
}
REQUESTS = ("I need the sound of {what}.", "Can you make {what}?",
            "Give me a clip with {what}.", "Sound effect please: {what}.")
OPENERS = ("I need a sound for a scene I'm working on.", "Can you make me a sound effect?",
           "I want some audio for a short video.")


def _pick(options: Sequence[str], *salt: str) -> str:
    digest = hashlib.sha256("\x00".join(salt).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def split_events(caption: str) -> list[tuple[str, bool]]:
    """(event, overlaps the previous one) in the caption's order."""
    out: list[tuple[str, bool]] = []
    for step in _SEQUENCE.split(caption.strip()):
        for i, part in enumerate(_OVERLAP.split(step)):
            event = _TRIM.sub("", part.strip()).strip()
            if event and event.lower() not in {e.lower() for e, _ in out}:
                out.append((event, i > 0))
    return out


def describe(event: str, key: str) -> str:
    words = [w for w in re.findall(r"[a-z]+", event.lower()) if w in ATTRIBUTES]
    if not words:
        return f"{event}, clearly audible and close"
    return "; ".join(_pick(ATTRIBUTES[w], key, event, w) for w in words)


def rich_caption(captions: Sequence[str], seconds: float, key: str,
                 transcript: str | None = None) -> dict[str, Any]:
    """Keywords, layout and description from the first caption (and a transcript)."""
    events = split_events(captions[0]) if captions else []
    if transcript:
        events.append(("speech", bool(events)))
    steps = [i for i, (_, overlap) in enumerate(events) if not overlap]
    span = seconds / max(len(steps), 1)
    layout, step = [], -1
    for event, overlap in events:
        if overlap:  # spans the step it sounds with
            start = layout[-1]["start"] if layout else 0.0
            end = layout[-1]["end"] if layout else seconds
        else:
            step += 1
            start, end = step * span, (step + 1) * span
        layout.append({"event": event, "start": round(start, 2), "end": round(end, 2)})
    description = [{"event": e, "text": describe(e, key) if e != "speech" else
                    f'a voice saying "{transcript[:80]}"'} for e, _ in events]
    return {"keywords": [e for e, _ in events], "layout": layout, "description": description}


def _spoken_order(rc: dict[str, Any]) -> str:
    parts = [rc["layout"][0]["event"]]
    for prev, cur in zip(rc["layout"], rc["layout"][1:], strict=False):
        parts.append(("while " if cur["start"] < prev["end"] else "then ") + cur["event"])
    return ", ".join(parts)


def answer(kind: str, facts: dict[str, Any]) -> str:
    """The rule teacher's JSON reply for one request."""
    key, seconds = str(facts["key"]), float(facts["seconds"])
    rc = rich_caption(facts["captions"], seconds, key, facts.get("transcript"))
    what = " and ".join(rc["keywords"]) if rc["keywords"] else "this"
    if kind == "enrichment":
        return json.dumps({"prompt": _pick(REQUESTS, key).format(what=what), "rich_caption": rc})
    if kind == "dialogue":
        turns = [_pick(OPENERS, key), "Sure. Which sounds should it have?",
                 what[:1].upper() + what[1:] + "."]
        if len(rc["keywords"]) > 1:
            turns += ["In what order should they come, or all at once?",
                      _spoken_order(rc).capitalize() + "."]
        else:
            turns += ["How should it sound?", rc["description"][0]["text"].capitalize() + "."]
        roles = ("user", "assistant")
        return json.dumps({"turns": [{"role": roles[i % 2], "content": t}
                                     for i, t in enumerate(turns)], "rich_caption": rc})
    if kind == "reflection":
        v1 = rich_caption(facts["v1_captions"], seconds, key)
        return json.dumps({"plan": rc, "v1_caption": f"I hear {_spoken_order(v1)}.",
                           "critique": critique(rc, v1)})
    raise ValueError(f"unknown trace kind {kind!r}")


def critique(plan: dict[str, Any], heard: dict[str, Any]) -> str:
    """What differs between the plan and what was heard, and what to change."""
    want = [e.lower() for e in plan["keywords"]]
    got = [e.lower() for e in heard["keywords"]]
    notes = []
    missing = [e for e in want if e not in got]
    extra = [e for e in got if e not in want]
    if missing:
        notes.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    if extra:
        notes.append(f"{', '.join(extra)} should not be there")
    shared_want = [e for e in want if e in got]
    if len(shared_want) > 1 and shared_want != [e for e in got if e in want]:
        notes.append("the order is wrong")
    if not notes:
        notes.append("the events match but their timing differs from the plan")
    return (f"The plan asks for {_spoken_order(plan)}, but the result has "
            f"{_spoken_order(heard)}: {'; '.join(notes)}. Regenerate it following the plan's "
            "layout.")

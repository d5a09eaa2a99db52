"""What a teacher must answer, checked: the rich caption's three parts, the enrichment prompt,
the dialogue's turns and the self-reflection's plan, caption of v1 and critique.

A reply is one JSON object (a fenced ```json block is accepted). `parse_reply` returns the
normalised object or a short error that the repair prompt quotes back to the teacher; a reply
that declines the task is told apart as a refusal, which no repair prompt can fix.

>>> rc = {"keywords": ["a dog barks"], "layout": [{"event": "a dog barks", "start": 0, "end": 2}],
...       "description": [{"event": "a dog barks", "text": "two sharp barks"}]}
>>> parse_reply("enrichment", json.dumps({"prompt": "a dog", "rich_caption": rc}), 2.0)[1]
>>> parse_reply("enrichment", "{}", 2.0)[1]
'missing field "prompt"'
>>> render_rich_caption(check_rich_caption(rc, 2.0))
'Keywords: a dog barks. Layout: a dog barks (0.00-2.00 s). Description: a dog barks: two sharp barks.'
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_TEXT = 600
MAX_EVENTS = 16
SLACK_SECONDS = 0.25
"""Layout times may run this far past the clip's end (teachers round)."""

_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(no|')t|i cannot|i won'?t|"
                      r"i am unable|i'?m unable|as an ai)", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


class SchemaError(ValueError):
    """The reply does not match the schema; the message is what the repair prompt says."""


def is_refusal(text: str, finish_reason: str | None = None) -> bool:
    """A reply that declines: a content filter stop, or an apology with no JSON object in it."""
    if finish_reason in ("content_filter", "refusal"):
        return True
    return bool(_REFUSAL.match(text)) and "{" not in text


def extract_object(text: str) -> dict[str, Any]:
    """The reply's JSON object: the whole text, a fenced block, or the outermost braces."""
    candidates = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1))
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
        raise SchemaError(f"expected a JSON object, got {type(value).__name__}")
    raise SchemaError("the reply is not valid JSON")


def _text(obj: dict[str, Any], field: str, limit: int = MAX_TEXT) -> str:
    if field not in obj:
        raise SchemaError(f'missing field "{field}"')
    value = obj[field]
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f'"{field}" must be a non-empty string')
    value = " ".join(value.split())
    if len(value) > limit:
        raise SchemaError(f'"{field}" is longer than {limit} characters')
    return value


def _list(obj: dict[str, Any], field: str) -> list[Any]:
    if field not in obj:
        raise SchemaError(f'missing field "{field}"')
    value = obj[field]
    if not isinstance(value, list) or not value:
        raise SchemaError(f'"{field}" must be a non-empty list')
    if len(value) > MAX_EVENTS:
        raise SchemaError(f'"{field}" has more than {MAX_EVENTS} entries')
    return value


def check_rich_caption(obj: Any, seconds: float) -> dict[str, Any]:
    """Keywords (sound events), layout (each event's span in seconds, in time order) and
    description (every keyword described); events must name keywords."""
    if not isinstance(obj, dict):
        raise SchemaError('"rich_caption" must be an object')
    keywords = []
    for word in _list(obj, "keywords"):
        if not isinstance(word, str) or not word.strip() or len(word) > 80:
            raise SchemaError('"keywords" must be short non-empty strings')
        keywords.append(" ".join(word.split()))
    known = set(keywords)
    layout = []
    for item in _list(obj, "layout"):
        if not isinstance(item, dict):
            raise SchemaError('each "layout" entry must be an object with event, start, end')
        event = _text(item, "event", 80)
        start, end = item.get("start"), item.get("end")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end)):
            raise SchemaError(f'layout of "{event}": start and end must be numbers (seconds)')
        if event not in known:
            raise SchemaError(f'layout event "{event}" is not one of the keywords')
        if not 0 <= start < end <= seconds + SLACK_SECONDS:
            raise SchemaError(f'layout of "{event}": need 0 <= start < end <= {seconds:g} s')
        layout.append({"event": event, "start": round(float(start), 2),
                       "end": round(float(end), 2)})
    if [e["start"] for e in layout] != sorted(e["start"] for e in layout):
        raise SchemaError('"layout" must be in time order')
    description = []
    for item in _list(obj, "description"):
        if not isinstance(item, dict):
            raise SchemaError('each "description" entry must be an object with event, text')
        event = _text(item, "event", 80)
        if event not in known:
            raise SchemaError(f'description event "{event}" is not one of the keywords')
        description.append({"event": event, "text": _text(item, "text")})
    missing = known - {d["event"] for d in description}
    if missing:
        raise SchemaError(f'no description for keyword "{sorted(missing)[0]}"')
    return {"keywords": keywords, "layout": layout, "description": description}


def _check_turns(obj: dict[str, Any]) -> list[dict[str, str]]:
    """A vague request, then clarifying questions and answers: user first, alternating, the
    user's last answer last (the rich caption and the audio follow it)."""
    turns = _list(obj, "turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise SchemaError('each turn must be an object with "role" and "content"')
        want = "user" if i % 2 == 0 else "assistant"
        if turn.get("role") != want:
            raise SchemaError(f"turn {i + 1} must have role {want!r} (turns alternate, user "
                              f"first)")
        out.append({"role": want, "content": _text(turn, "content")})
    if len(out) < 3 or len(out) % 2 == 0:
        raise SchemaError('"turns" must hold at least 3 turns and end with the user\'s answer')
    return out


def check(kind: str, obj: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The normalised reply of one template kind (raises SchemaError)."""
    if kind == "enrichment":
        return {"prompt": _text(obj, "prompt"),
                "rich_caption": check_rich_caption(obj.get("rich_caption"), seconds)}
    if kind == "dialogue":
        return {"turns": _check_turns(obj),
                "rich_caption": check_rich_caption(obj.get("rich_caption"), seconds)}
    if kind == "reflection":
        return {"plan": check_rich_caption(obj.get("plan"), seconds),
                "v1_caption": _text(obj, "v1_caption"), "critique": _text(obj, "critique")}
    raise ValueError(f"unknown trace kind {kind!r}")


def parse_reply(kind: str, text: str, seconds: float) -> tuple[dict[str, Any] | None, str | None]:
    """(normalised reply, None) or (None, what is wrong with it)."""
    try:
        return check(kind, extract_object(text), seconds), None
    except SchemaError as exc:
        return None, str(exc)


def render_rich_caption(rc: dict[str, Any]) -> str:
    """The rich caption as the assistant says it (one line, stable wording)."""
    layout = ""
    for i, e in enumerate(rc["layout"]):
        if i:  # events that start before the previous one ends sound together
            layout += " while " if e["start"] < rc["layout"][i - 1]["end"] else ", then "
        layout += f"{e['event']} ({e['start']:.2f}-{e['end']:.2f} s)"
    described = "; ".join(f"{d['event']}: {d['text']}" for d in rc["description"])
    return (f"Keywords: {', '.join(rc['keywords'])}. Layout: {layout}. "
            f"Description: {described}.")

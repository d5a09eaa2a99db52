"""The input record: one row of an input listing, normalised from any supported format.

Rows are flat and carry their own position (`index`) in the listing: that position is the global,
deterministic order every later decision (units, dedup tie-breaks, shard order) follows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4",
     ".aif", ".aiff", ".webm", ".wma", ".caf", ".w64", ".rf64"}
)


@dataclass(frozen=True)
class InputRecord:
    """One input row.

    >>> r = InputRecord(index=0, input_id="a.wav", path="/data/a.wav", captions=("a dog barks",))
    >>> r.modality, r.reject_reason
    ('audio', None)
    """

    index: int
    input_id: str
    path: str | None = None
    url: str | None = None
    captions: tuple[str, ...] = ()
    caption_scores: tuple[float, ...] = ()
    """CLAP audio-text score of each caption, aligned with `captions` (empty: not scored)."""
    source: str | None = None
    license: str | None = None
    task: str | None = None
    language: str | None = None
    start: float = 0.0
    end: float | None = None
    messages: str | None = None
    """Canonical JSON of chat messages for text-only rows (task `text`)."""
    extra: str = "{}"
    """JSON object of every column the schema does not name."""
    reject_reason: str | None = None
    """Set when the row was already rejected while listing (malformed row, hostile path)."""
    reject_detail: str = ""
    line: int | None = field(default=None, compare=False)

    @property
    def modality(self) -> str:
        return "text" if self.messages is not None else "audio"

    def to_dict(self) -> dict[str, Any]:
        # field by field rather than `asdict`, which deep-copies every value: a listing makes
        # this dict for every input row (asdict was 30% of listing a manifest)
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["captions"] = list(self.captions)
        out["caption_scores"] = list(self.caption_scores)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputRecord:
        data = dict(data)
        data["captions"] = tuple(data.get("captions") or ())
        data["caption_scores"] = tuple(data.get("caption_scores") or ())
        return cls(**data)

    def metadata(self) -> dict[str, Any]:
        """What travels with every sample cut from this input (provenance)."""
        return {
            "input_id": self.input_id,
            "path": self.path,
            "url": self.url,
            "source": self.source,
            "license": self.license,
            "task": self.task,
            "language": self.language,
            "extra": json.loads(self.extra),
        }


_FIELD_NAMES = tuple(f.name for f in fields(InputRecord))


def is_utf8(text: str) -> bool:
    """False for a string holding a lone surrogate: a file name that is not UTF-8 (Python's
    surrogateescape) or a JSON `\\udXXX` escape. Such text cannot be written to any table."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text` with each lone surrogate spelled out (`\\udce9`): an id or path fit to record."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

"""Telling a web page from audio by its bytes: servers label error pages `audio/mpeg` too."""

from __future__ import annotations

from pathlib import Path

from ualm.audio.sniff import sniff

_HEAD = 1024


def looks_like_markup(path: Path) -> str | None:
    """A description when the file is an HTML/XML page or plain text rather than audio; None
    when it sniffs as audio or is binary (the decoders then judge it)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    if not head or head[:3] == b"ID3" or sniff(head) is not None:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"<":
        return "the body is HTML/XML markup, not audio"
    if b"\0" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end is still text
            return None
    return "the body is text, not audio"

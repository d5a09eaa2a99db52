"""Name an audio container from a file's first bytes, never from its name."""

from __future__ import annotations

import stat
from pathlib import Path

from ualm.audio.errors import AudioRejected

_HEAD_BYTES = 64
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"RF64", "rf64"),
    (0, b"BW64", "bw64"),
    (0, b"riff.\x91\xcf\x11", "w64"),
    (0, b"caff", "caf"),
    (0, b".snd", "au"),
    (4, b"ftyp", "mp4"),
    (0, b"\x1aE\xdf\xa3", "webm"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "asf"),
    (0, b"#!AMR", "amr"),
    (0, b"MAC ", "ape"),
    (0, b"wvpk", "wavpack"),
    (0, b"MPCK", "mpc"),
    (0, b"TTA1", "tta"),
)


def sniff(head: bytes) -> str | None:
    """Names the container from a file's first bytes, or None when nothing matches."""
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return _ogg_codec(head) if name == "ogg" else name
    if head[:4] == b"RIFF":
        return {b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if (head[1] >> 1) & 3 == 0:  # layer 0 is ADTS AAC, not MPEG audio
        return "aac" if head[1] & 0xF0 == 0xF0 else None
    # Reject reserved version / bitrate / rate fields so random bytes rarely pass as mp3.
    if (head[1] >> 3) & 3 == 1 or head[2] >> 4 == 15 or (head[2] >> 2) & 3 == 3:
        return None
    return "mp3"


def _ogg_codec(head: bytes) -> str:
    """Ogg holds Vorbis or Opus; the first packet (after the segment table) says which."""
    segments = head[26] if len(head) > 26 else 0
    first_packet = head[27 + segments : 27 + segments + 8]
    return "opus" if first_packet == b"OpusHead" else "ogg"


def read_head(path: Path) -> str | None:
    """Checks the path, then sniffs the container, looking past a leading ID3v2 tag."""
    try:
        mode = path.stat()
    except FileNotFoundError as exc:
        raise AudioRejected("input/missing_file", str(path)) from exc
    except OSError as exc:  # permission denied on a parent, a loop of links, ...
        raise AudioRejected("input/unreadable", f"{path}: {exc}") from exc
    if not stat.S_ISREG(mode.st_mode):
        raise AudioRejected("input/not_a_file", str(path))
    if mode.st_size == 0:
        raise AudioRejected("decode/empty_file", str(path))
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
            if head[:3] != b"ID3" or len(head) < 10:
                return sniff(head)
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            fh.seek(10 + size + (10 if head[5] & 0x10 else 0))
            return sniff(fh.read(_HEAD_BYTES)) or "mp3"
    except OSError as exc:
        raise AudioRejected("input/unreadable", f"{path}: {exc}") from exc

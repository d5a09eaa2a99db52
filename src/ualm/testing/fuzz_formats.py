"""The fuzz corpus's seeds and their structure: one small valid file per supported container,
and, parsed from its bytes, where its structures start (chunks, metadata blocks, pages,
frames, atoms) and where its header fields lie, so that mutations hit real boundaries.

    >>> seed = make_seed("wav16", 0)
    >>> seed.boundaries[:3], seed.fields[0][0]  # doctest: +SKIP
    ([0, 12, 20], 'fmt.format')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ualm.audio.encode import FORMATS, _pin_ogg_serial, write_audio
from ualm.audio.synthetic import synth_clip

# FORMATS (the project's writers) plus the containers libsndfile writes that sniff() names.
EXTRA = {"aiff": ("AIFF", "PCM_16", "aiff"), "au": ("AU", "PCM_16", "au"),
         "caf": ("CAF", "PCM_16", "caf"), "w64": ("W64", "PCM_16", "w64"),
         "rf64": ("RF64", "PCM_16", "rf64")}
CONTAINERS = (*FORMATS, *EXTRA)
SUFFIX = {"wav16": "wav", "wav24": "wav", "wav_f32": "wav", "wav8": "wav", "flac": "flac",
          "ogg": "ogg", "opus": "opus", "mp3": "mp3", "m4a": "m4a", "aiff": "aiff", "au": "au",
          "caf": "caf", "w64": "w64", "rf64": "rf64"}  # fmt: skip


@dataclass
class Seed:
    """A valid file and what its parse found: structure offsets (sorted) and header fields as
    (name, offset, width in bytes, byte order)."""

    container: str
    data: bytes
    boundaries: list[int] = field(default_factory=list)
    fields: list[tuple[str, int, int, str]] = field(default_factory=list)
    metadata_at: int = 0
    """Where a metadata block can be inserted without breaking the file's grammar."""


def make_seed(container: str, number: int, folder: Path) -> Seed:
    """A 2.5 s clip (mono or stereo, by number) in `container`, written under `folder` (it is
    an input of the corpus too) and parsed."""
    rate = (16000, 22050, 44100, 48000)[number % 4]
    samples = synth_clip(2.5, rate, seed=9000 + number, channels=1 + number % 2)
    path = folder / f"seed-{number:03d}-{container}.{SUFFIX[container]}"
    if container in EXTRA:
        fmt, subtype, _ = EXTRA[container]
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples, rate, format=fmt, subtype=subtype)
    else:
        write_audio(path, samples, rate, container)
    seed = Seed(container, path.read_bytes())
    _PARSERS[_family(container)](seed)
    seed.boundaries = sorted({b for b in seed.boundaries if 0 < b < len(seed.data)})
    return seed


def _family(container: str) -> str:
    return {"wav16": "riff", "wav24": "riff", "wav_f32": "riff", "wav8": "riff", "rf64": "riff",
            "opus": "ogg", "m4a": "mp4"}.get(container, container)


def _u(data: bytes, at: int, width: int, order: str = "little") -> int:
    return int.from_bytes(data[at : at + width], order)  # type: ignore[arg-type]


def _riff(seed: Seed) -> None:
    data, pos = seed.data, 12
    seed.boundaries += [4, 8, 12]
    seed.fields.append(("riff.size", 4, 4, "little"))
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], _u(data, pos + 4, 4)
        seed.boundaries += [pos, pos + 4, pos + 8]
        seed.fields.append((f"{cid.decode('latin-1').strip()}.size", pos + 4, 4, "little"))
        if cid == b"fmt ":
            names = ("format", "channels", "rate", "byte_rate", "block_align", "bits")
            widths = (2, 2, 4, 4, 2, 2)
            at = pos + 8
            for name, width in zip(names, widths, strict=True):
                seed.fields.append((f"fmt.{name}", at, width, "little"))
                at += width
            seed.metadata_at = pos + 8 + size + size % 2
        elif cid == b"ds64":
            for i, name in enumerate(("riff_size", "data_size", "sample_count")):
                seed.fields.append((f"ds64.{name}", pos + 8 + 8 * i, 8, "little"))
        if cid == b"data":
            seed.boundaries += [pos + 8 + size // 2, pos + 8 + size - 1]
            break
        pos += 8 + size + size % 2


def _aiff(seed: Seed) -> None:
    data, pos = seed.data, 12
    seed.boundaries += [4, 8, 12]
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], _u(data, pos + 4, 4, "big")
        seed.boundaries += [pos, pos + 8]
        seed.fields.append((f"{cid.decode('latin-1').strip()}.size", pos + 4, 4, "big"))
        if cid == b"COMM":
            seed.fields += [("COMM.channels", pos + 8, 2, "big"),
                            ("COMM.frames", pos + 10, 4, "big"), ("COMM.bits", pos + 14, 2, "big"),
                            ("COMM.rate_exponent", pos + 16, 2, "big")]
            seed.metadata_at = pos + 8 + size + size % 2
        pos += 8 + size + size % 2


def _caf(seed: Seed) -> None:
    data, pos = seed.data, 8
    while pos + 12 <= len(data):
        cid, size = data[pos : pos + 4], _u(data, pos + 4, 8, "big")
        seed.boundaries += [pos, pos + 12]
        seed.fields.append((f"{cid.decode('latin-1')}.size", pos + 4, 8, "big"))
        if cid == b"desc":
            seed.fields += [("desc.rate", pos + 12, 8, "big"),
                            ("desc.bytes_per_packet", pos + 24, 4, "big"),
                            ("desc.frames_per_packet", pos + 28, 4, "big"),
                            ("desc.channels", pos + 32, 4, "big"),
                            ("desc.bits", pos + 36, 4, "big")]
            seed.metadata_at = pos + 12 + size
        if size >= 1 << 62:  # data of unknown size runs to the end
            break
        pos += 12 + size


def _au(seed: Seed) -> None:
    names = ("header_size", "data_size", "encoding", "rate", "channels")
    seed.fields += [(f"au.{n}", 4 + 4 * i, 4, "big") for i, n in enumerate(names)]
    seed.boundaries += [4, 8, 24, _u(seed.data, 4, 4, "big")]


def _w64(seed: Seed) -> None:
    data, pos = seed.data, 40
    seed.fields.append(("riff.size", 16, 8, "little"))
    while pos + 24 <= len(data):
        guid, size = data[pos : pos + 16], _u(data, pos + 16, 8)
        seed.boundaries += [pos, pos + 16, pos + 24]
        seed.fields.append((f"{guid[:4].decode('latin-1').strip()}.size", pos + 16, 8, "little"))
        if guid[:4] == b"fmt ":
            seed.fields += [("fmt.channels", pos + 26, 2, "little"),
                            ("fmt.rate", pos + 28, 4, "little")]
        if size < 24:
            break
        pos += size + (-size) % 8


def _flac(seed: Seed) -> None:
    data, pos = seed.data, 4
    seed.boundaries.append(4)
    while pos + 4 <= len(data):
        head, size = data[pos], _u(data, pos + 1, 3, "big")
        seed.boundaries += [pos, pos + 4]
        seed.fields.append((f"block{head & 0x7F}.size", pos + 1, 3, "big"))
        if head & 0x7F == 0:  # STREAMINFO: rate, channels and bits share bytes 10-13
            seed.fields += [("streaminfo.block_sizes", pos + 4, 4, "big"),
                            ("streaminfo.rate_channels_bits", pos + 14, 4, "big"),
                            ("streaminfo.total_samples", pos + 18, 4, "big")]
            seed.metadata_at = pos + 4 + size
        pos += 4 + size
        if head & 0x80:
            break
    frames = [pos + i for i in range(len(data) - pos - 1)
              if data[pos + i] == 0xFF and data[pos + i + 1] in (0xF8, 0xF9)]
    seed.boundaries += frames[:40]
    seed.fields += [(f"frame{i}.header", at, 4, "big") for i, at in enumerate(frames[:3])]


def _ogg(seed: Seed) -> None:
    data, pos, page = seed.data, 0, 0
    while data[pos : pos + 4] == b"OggS" and pos + 27 <= len(data):
        n_seg = data[pos + 26]
        body = pos + 27 + n_seg
        seed.boundaries += [pos, pos + 27, body]
        if page == 0 and data[body : body + 7] == b"\x01vorbis":
            seed.fields += [("vorbis.channels", body + 11, 1, "little"),
                            ("vorbis.rate", body + 12, 4, "little"),
                            ("vorbis.blocksizes", body + 28, 1, "little")]
        elif page == 0 and data[body : body + 8] == b"OpusHead":
            seed.fields += [("opus.channels", body + 9, 1, "little"),
                            ("opus.preskip", body + 10, 2, "little"),
                            ("opus.rate", body + 12, 4, "little"),
                            ("opus.mapping", body + 18, 1, "little")]
        seed.fields.append((f"page{page}.segments", pos + 26, 1, "little"))
        pos, page = body + sum(data[pos + 27 : body]), page + 1
    seed.metadata_at = 0  # a page of its own (not parsed by decoders) goes first


def _mp3(seed: Seed) -> None:
    data, pos, count = seed.data, 0, 0
    if data[:3] == b"ID3":
        pos = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
        seed.boundaries += [10, pos]
    rates = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0:
        version, bitrate_index = (data[pos + 1] >> 3) & 3, data[pos + 2] >> 4
        rate_index, padding = (data[pos + 2] >> 2) & 3, (data[pos + 2] >> 1) & 1
        if rate_index == 3 or bitrate_index in (0, 15):
            break
        kbps = (_MP3_V1 if version == 3 else _MP3_V2)[bitrate_index]
        length = (144 if version == 3 else 72) * kbps * 1000 // rates[version][rate_index]
        seed.boundaries += [pos, pos + 4]
        if count < 4:
            seed.fields.append((f"frame{count}.header", pos, 4, "big"))
        pos, count = pos + length + padding, count + 1
    xing = max(seed.data.find(b"Xing"), seed.data.find(b"Info"))
    if xing > 0:
        seed.fields += [("xing.frames", xing + 8, 4, "big"), ("xing.bytes", xing + 12, 4, "big")]


_MP3_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP4_PARENTS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts"}


def _mp4(seed: Seed) -> None:
    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size, kind = _u(seed.data, pos, 4, "big"), seed.data[pos + 4 : pos + 8]
            seed.boundaries += [pos, pos + 8]
            seed.fields.append((f"{kind.decode('latin-1')}.size", pos, 4, "big"))
            if kind == b"mdhd":
                seed.fields += [("mdhd.timescale", pos + 20, 4, "big"),
                                ("mdhd.duration", pos + 24, 4, "big")]
            elif kind == b"stsd":  # the mp4a sample entry follows the 16-byte header
                seed.fields += [("mp4a.channels", pos + 16 + 24, 2, "big"),
                                ("mp4a.rate", pos + 16 + 32, 4, "big")]
            elif kind in (b"stsz", b"stco", b"stsc", b"stts"):
                seed.fields.append((f"{kind.decode()}.count", pos + 12 + 4 * (kind == b"stsz"),
                                    4, "big"))
            if size < 8:
                return
            if kind in _MP4_PARENTS:
                walk(pos + 8, pos + size)
            pos += size

    walk(0, len(seed.data))
    seed.metadata_at = -1  # a `free` atom appended at the end is legal everywhere


_PARSERS = {"riff": _riff, "aiff": _aiff, "caf": _caf, "au": _au, "w64": _w64, "flac": _flac,
            "ogg": _ogg, "mp3": _mp3, "mp4": _mp4}


def fix_checksums(seed: Seed, data: bytearray) -> None:
    """Ogg pages carry a CRC: recomputed so a changed field reaches the decoder's parser."""
    if _family(seed.container) == "ogg" and data[:4] == b"OggS":
        _pin_ogg_serial(data)


def metadata_block(seed: Seed, size: int, rng: np.random.Generator) -> bytes:
    """A grammatical metadata block of about `size` bytes for this container (ID3 for mp3,
    LIST for RIFF, PADDING/APPLICATION for FLAC, ANNO for AIFF, free atoms, ...)."""
    text = bytes(rng.integers(32, 127, size, dtype=np.uint8))
    family = _family(seed.container)
    if family == "riff":
        return b"LIST" + (4 + len(text)).to_bytes(4, "little") + b"INFO" + text
    if family == "aiff":
        return b"ANNO" + len(text).to_bytes(4, "big") + text
    if family == "caf":
        return b"free" + len(text).to_bytes(8, "big") + text
    if family == "flac":  # a PADDING block (its last-block bit clear), at most 16 MiB
        return b"\x01" + min(len(text), (1 << 24) - 1).to_bytes(3, "big") + text[: (1 << 24) - 1]
    if family == "mp4":
        return (8 + len(text)).to_bytes(4, "big") + b"free" + text
    if family == "mp3":  # an ID3v2.3 tag of one TXXX frame; sizes are syncsafe
        frame = b"TXXX" + (len(text) + 1).to_bytes(4, "big") + b"\0\0" + b"\0" + text
        n = len(frame)
        syncsafe = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
        return b"ID3\x03\x00\x00" + syncsafe + frame
    return text  # ogg, au, w64: raw bytes where the grammar has no room (a hostile prefix)

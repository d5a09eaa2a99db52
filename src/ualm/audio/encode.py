"""Write samples in one of the synthetic FORMATS, byte-stable for a given input.

libsndfile writes the formats it knows; PyAV writes AAC (m4a). The writer pins what the
encoders would otherwise randomise or timestamp (Ogg stream serials, float-WAV PEAK times)
and resamples to 48 kHz when a codec cannot take the given rate.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ualm.audio.flac import to_pcm16

FORMATS = ("wav16", "wav24", "wav_f32", "wav8", "flac", "ogg", "opus", "mp3", "m4a")
EXTENSIONS = {"wav16": "wav", "wav24": "wav", "wav_f32": "wav", "wav8": "wav", "flac": "flac",
              "ogg": "ogg", "opus": "opus", "mp3": "mp3", "m4a": "m4a"}  # fmt: skip
SOUNDFILE_FORMATS = {
    "wav16": ("WAV", "PCM_16"),
    "wav24": ("WAV", "PCM_24"),
    "wav_f32": ("WAV", "FLOAT"),
    "wav8": ("WAV", "PCM_U8"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_CODEC_RATES = {
    "opus": (8000, 12000, 16000, 24000, 48000),
    "mp3": _MPEG_RATES,
    "m4a": (*_MPEG_RATES, 64000, 88200, 96000),
}
_OGG_SERIAL = b"ualm"  # libsndfile draws a random Ogg stream serial; pin it for stable bytes


def write_audio(
    path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, fmt: str
) -> Path:
    """Writes samples in one of FORMATS, resampling to a rate the codec supports if needed."""
    if fmt not in EXTENSIONS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples)
    rates = _CODEC_RATES.get(fmt)
    if rates is not None and sample_rate not in rates:
        samples = soxr.resample(_as_float(samples), sample_rate, 48000, "HQ")
        sample_rate = 48000
    if fmt == "m4a":
        path.write_bytes(_encode_m4a(_as_float(samples), sample_rate))
        return path
    container, subtype = SOUNDFILE_FORMATS[fmt]
    if subtype == "PCM_16" and samples.dtype != np.int16:
        samples = to_pcm16(samples)  # so a wav16 clip and its flac copy hold equal PCM
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=container, subtype=subtype)
    data = bytearray(buf.getvalue())
    if container == "OGG":
        _pin_ogg_serial(data)
    elif subtype == "FLOAT":
        zero_peak_timestamp(data)
    path.write_bytes(data)
    return path


def _as_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM (e.g. int16) -> float32 in [-1, 1); floats pass through as float32."""
    if samples.dtype.kind == "i":
        return (samples / -float(np.iinfo(samples.dtype).min)).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def _encode_m4a(samples: np.ndarray, sample_rate: int) -> bytes:
    """AAC in an mp4 (ipod) container through PyAV: libsndfile cannot write AAC."""
    import av

    planar = np.ascontiguousarray(samples.reshape(len(samples), -1).T)
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=sample_rate, layout=layout)
        for at in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, at : at + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = sample_rate, at
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def zero_peak_timestamp(wav: bytearray) -> None:
    """libsndfile stamps float WAVs' PEAK chunk with the wall clock; zero it for stable bytes."""
    pos = 12
    while pos + 16 <= len(wav) and wav[pos : pos + 4] != b"data":
        size = int.from_bytes(wav[pos + 4 : pos + 8], "little")
        if wav[pos : pos + 4] == b"PEAK":
            wav[pos + 12 : pos + 16] = bytes(4)  # after the chunk header and version
            return
        pos += 8 + size + size % 2


def _pin_ogg_serial(buf: bytearray) -> None:
    """Rewrites every Ogg page's stream serial to a constant and fixes its CRC."""
    pos = 0
    while buf[pos : pos + 4] == b"OggS" and pos + 27 <= len(buf):
        n_seg = buf[pos + 26]
        end = pos + 27 + n_seg + sum(buf[pos + 27 : pos + 27 + n_seg])
        buf[pos + 14 : pos + 18] = _OGG_SERIAL
        buf[pos + 22 : pos + 26] = bytes(4)
        buf[pos + 22 : pos + 26] = _ogg_crc(bytes(buf[pos:end])).to_bytes(4, "little")
        pos = end


def _make_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc

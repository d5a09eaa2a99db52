"""Audio I/O: sniff, decode, resample and window any audio file in bounded memory.

The synthetic data factory lives in ``ualm.audio.synthetic`` and is not re-exported here.
"""

from ualm.audio.decode import AudioInfo, iter_decoded, probe
from ualm.audio.errors import AudioRejected
from ualm.audio.flac import decode_flac, encode_flac, to_pcm16
from ualm.audio.windows import iter_windows

__all__ = [
    "AudioInfo",
    "AudioRejected",
    "decode_flac",
    "encode_flac",
    "iter_decoded",
    "iter_windows",
    "probe",
    "to_pcm16",
]

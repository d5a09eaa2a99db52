"""Codecs behind one interface (`AudioCodec`): EnCodec 24 kHz, the default, and X-codec, DAC
and Mimi through transformers' model classes (`load_codec("random:xcodec")`, or a local folder).

>>> codec = load_codec("random", bandwidth=6.0)            # doctest: +SKIP
>>> codes = codec.encode([clip_a, clip_b])                  # doctest: +SKIP
>>> codes[0].shape                                          # doctest: +SKIP
(8, 750)

Two backends load weights: the `encodec` package (a .th checkpoint such as
encodec_24khz-d7cc33bc.th, and the seeded "random" codec) and transformers' EncodecModel (a
Hugging Face folder such as a local copy of facebook/encodec_24khz). Both encode through one
batched streaming encoder (`engine.py`), so the same weights give the same codes and the same
`codec_id` whichever backend loaded them; each decodes with its own model. X-codec, DAC and
Mimi (`kinds.py`, `hf_codec.py`, `hf_loading.py`) encode padded batches through the model
class's own `encode`.
"""

from ualm.tokenize.codecs.base import AudioCodec
from ualm.tokenize.codecs.codec import Codec
from ualm.tokenize.codecs.hf_codec import HFCodec
from ualm.tokenize.codecs.info import BANDWIDTHS, CodecInfo, codebooks_for
from ualm.tokenize.codecs.keymap import from_transformers, to_transformers, to_transformers_key
from ualm.tokenize.codecs.kinds import KINDS
from ualm.tokenize.codecs.loading import export_hf_folder, load_codec, save_encodec_checkpoint

__all__ = [
    "BANDWIDTHS",
    "KINDS",
    "AudioCodec",
    "Codec",
    "CodecInfo",
    "HFCodec",
    "codebooks_for",
    "export_hf_folder",
    "from_transformers",
    "load_codec",
    "save_encodec_checkpoint",
    "to_transformers",
    "to_transformers_key",
]

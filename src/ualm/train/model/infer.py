"""`ualm generate` and `ualm understand`: a trained checkpoint plus the corpus's codec, from a
caption to a WAV file and from an audio file to an answer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.token_sets import corpus_codec
from ualm.train.model.choices import choose, options_of
from ualm.train.model.generate import DEFAULT_GENERATION, GenerationConfig, answer, generate_codes
from ualm.train.model.module import load_trained


@dataclass(frozen=True)
class Generated:
    path: Path
    seconds: float
    frames: int
    random_codec: bool


def corpus_codec_model(corpus: str | Path, codec_id: str | None = None,
                       device: str | None = None) -> Any:
    """The codec that tokenized a corpus, checked against the checksum the corpus recorded."""
    from ualm.tokenize.stage import CodecSpec, worker_codec

    codec_id = corpus_codec(corpus, codec_id)
    record = CorpusLayout(corpus).meta()["tokens"][codec_id]
    codec = worker_codec(CodecSpec(record["source"], record["bandwidth"], record.get("seed", 0),
                                   device))
    if codec.info.checkpoint_sha256 != record["checkpoint_sha256"]:
        raise UalmError(f"the codec at {record['source']} is not the one that tokenized "
                        f"{corpus}", fix="restore the codec checkpoint the corpus was built with")
    return codec


def generate_wav(checkpoint: str | Path, corpus: str | Path, caption: str, out: str | Path,
                 config: GenerationConfig = DEFAULT_GENERATION, device: str = "cpu",
                 max_seconds: float | None = None) -> Generated:
    """`max_seconds`, when given, bounds the length at the corpus codec's frame rate (75
    frames a second for EnCodec, 50 for X-codec) instead of `config.max_frames`."""
    model = load_trained(checkpoint, device)
    codec = corpus_codec_model(corpus)
    if max_seconds is not None:
        frames = max(1, round(max_seconds * codec.info.frame_rate))
        config = dataclasses.replace(config, max_frames=frames)
    if model.k != codec.info.codebooks:
        raise UalmError(f"the model has {model.k} codebooks, the corpus's codec "
                        f"{codec.info.codebooks}", fix="use the corpus the model was trained on")
    codes = generate_codes(model, [caption], config)[0]
    audio = codec.decode(codes) if codes.shape[1] else np.zeros(0, np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, audio, codec.info.sample_rate, subtype="PCM_16")
    return Generated(out, len(audio) / codec.info.sample_rate, int(codes.shape[1]),
                     bool(codec.info.random_weights))


def _heard(checkpoint: str | Path, corpus: str | Path, audio: str | Path,
           device: str) -> tuple[Any, np.ndarray]:
    """(the trained model, the audio file's codes by the corpus's codec)."""
    from ualm.audio import AudioRejected, iter_decoded

    model = load_trained(checkpoint, device)
    codec = corpus_codec_model(corpus)
    try:
        clip = np.concatenate(list(iter_decoded(audio, target_rate=codec.info.sample_rate)))
    except (AudioRejected, ValueError, FileNotFoundError) as exc:
        raise UalmError(f"cannot decode {audio}: {exc}", fix="pass a readable audio file") from exc
    return model, codec.encode([clip])[0]


def understand_file(checkpoint: str | Path, corpus: str | Path, audio: str | Path,
                    question: str, device: str = "cpu", max_new_tokens: int = 128,
                    constrained: bool = False) -> str:
    """The model's answer to a question about an audio file: greedy free text, or with
    `constrained` and a question with lettered options, the most likely option's text."""
    model, codes = _heard(checkpoint, corpus, audio, device)
    if constrained and options_of(question):
        return str(choose(model, [question], [codes])[0])
    return answer(model, [question], [codes], max_new_tokens)[0]

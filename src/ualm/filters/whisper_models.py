"""Loading Whisper from local weights: an openai-whisper `.pt` checkpoint, run by the `whisper`
package's own model classes, or a Hugging Face folder, run by transformers. Both are wrapped in
the same two calls (encode, next-token logits) so one decoding loop serves both.

Nothing here downloads: a path that is missing, unreadable or of another model type is a
one-line UalmError that says how to provide weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.filters.whisper_convert import MULTILINGUAL_VOCAB, num_languages

FIX = ("pass a local openai-whisper .pt checkpoint, or a Hugging Face Whisper folder with "
       "config.json, model weights, preprocessor_config.json and tokenizer files "
       "(ualm never downloads weights)")


@dataclass(frozen=True)
class Vocab:
    """The special tokens the decoding loop needs, and how to turn text tokens into text."""

    sot: int
    eot: int
    transcribe: int
    no_timestamps: int
    blank: int
    languages: tuple[str, ...]
    """Language codes in the model's order; empty for English-only models."""
    language_ids: tuple[int, ...]
    non_speech: tuple[int, ...]
    """Symbol tokens ("♪", "[", "<<", ...) openai-whisper never lets a transcript choose."""
    decode: Callable[[list[int]], str]


_SYMBOLS = [*'"#()*+/:;<=>@[\\]^_`{|}~「」『』',
            *["<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("', "((", "))", "(((", ")))", "[[", "]]", "{{", "}}", "♪♪", "♪♪♪"]]
_MUSIC = "♩♪♫♬♭♮♯"


def non_speech_tokens(encode: Callable[[str], list[int]]) -> tuple[int, ...]:
    """openai-whisper's `Tokenizer.non_speech_tokens`, for any tokenizer of the same vocabulary:
    single-token symbols (bare or after a space), the first token of music signs, " -", " '"."""
    found = {encode(" -")[0], encode(" '")[0]}
    for symbol in [*_SYMBOLS, *_MUSIC]:
        for tokens in (encode(symbol), encode(" " + symbol)):
            if len(tokens) == 1 or symbol in _MUSIC:
                found.add(tokens[0])
    return tuple(sorted(found))


class OpenaiBackend:
    """An openai-whisper `Whisper` module."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.n_text_ctx = int(model.dims.n_text_ctx)

    def encode(self, mel: Any) -> Any:
        return self.model.encoder(mel)

    def logits(self, tokens: Any, audio: Any, cache: Any) -> tuple[Any, Any]:
        """Logits after the last of `tokens`, and the cache to pass with the next tokens only."""
        cache, hooks = self.model.install_kv_cache_hooks(cache)  # a copy, filled by the hooks
        try:
            out = self.model.decoder(tokens, audio, kv_cache=cache)
        finally:
            for hook in hooks:
                hook.remove()
        return out[:, -1].float(), cache


class HfBackend:
    """A transformers `WhisperForConditionalGeneration`."""

    def __init__(self, model: Any) -> None:
        import inspect

        self.model = model
        self.n_text_ctx = int(model.config.max_target_positions)
        # transformers renamed `past_key_values` to `cache` during 5.x
        self._cache_arg = ("cache" if "cache" in inspect.signature(model.forward).parameters
                           else "past_key_values")

    def encode(self, mel: Any) -> Any:
        return self.model.model.encoder(input_features=mel).last_hidden_state

    def logits(self, tokens: Any, audio: Any, cache: Any) -> tuple[Any, Any]:
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=audio),
                         decoder_input_ids=tokens, use_cache=True, **{self._cache_arg: cache})
        return out.logits[:, -1].float(), out[self._cache_arg]


Backend = OpenaiBackend | HfBackend


def load_backend(path: Path) -> tuple[Backend, Vocab, Any]:
    """(model wrapper on the CPU, vocabulary, WhisperFeatureExtractor) for a local path."""
    if not path.exists():
        raise UalmError(f"Whisper weights not found: {path}", fix=FIX)
    return _load_hf(path) if path.is_dir() else _load_openai(path)


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"{type(exc).__name__}: {lines[0][:200]}"


def _load_openai(path: Path) -> tuple[Backend, Vocab, Any]:
    import torch
    from transformers import WhisperFeatureExtractor

    try:
        from whisper.model import ModelDimensions, Whisper
        from whisper.tokenizer import get_tokenizer
    except ImportError:
        raise UalmError("reading a .pt Whisper checkpoint needs the openai-whisper package",
                        fix="pip install --no-deps openai-whisper; pip install more-itertools "
                            "numba tiktoken tqdm; or pass a Hugging Face Whisper folder"
                        ) from None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike mean an unreadable file
        raise UalmError(f"cannot read Whisper checkpoint {path} ({_short(exc)})", fix=FIX) from None
    if not isinstance(saved, dict) or not {"dims", "model_state_dict"} <= saved.keys():
        raise UalmError(f"{path} is not an openai-whisper checkpoint (it needs 'dims' and "
                        "'model_state_dict')", fix=FIX)
    try:
        model = Whisper(ModelDimensions(**saved["dims"]))
        model.load_state_dict(saved["model_state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise UalmError(f"weights in {path} do not fit Whisper ({_short(exc)})", fix=FIX) from None
    n_vocab = int(model.dims.n_vocab)
    tokenizer = get_tokenizer(n_vocab >= MULTILINGUAL_VOCAB, num_languages=num_languages(n_vocab))
    multilingual = n_vocab >= MULTILINGUAL_VOCAB
    vocab = Vocab(sot=tokenizer.sot, eot=tokenizer.eot, transcribe=tokenizer.transcribe,
                  no_timestamps=tokenizer.no_timestamps, blank=tokenizer.encode(" ")[0],
                  languages=tuple(tokenizer.all_language_codes) if multilingual else (),
                  language_ids=tuple(tokenizer.all_language_tokens) if multilingual else (),
                  non_speech=non_speech_tokens(tokenizer.encode), decode=tokenizer.decode)
    return OpenaiBackend(model), vocab, WhisperFeatureExtractor(feature_size=model.dims.n_mels)


def _load_hf(path: Path) -> tuple[Backend, Vocab, Any]:
    config = path / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise UalmError(f"{path} is not a Hugging Face model folder: cannot read config.json "
                        f"({_short(exc)})", fix=FIX) from None
    if model_type != "whisper":
        raise UalmError(f"{path} holds a {model_type!r} model, not Whisper", fix=FIX)
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    try:
        model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True)
        extractor = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError or safetensors errors
        raise UalmError(f"cannot load Whisper from {path} ({_short(exc)})", fix=FIX) from None
    return HfBackend(model), _hf_vocab(path, tokenizer, int(model.config.vocab_size)), extractor


def _hf_vocab(path: Path, tokenizer: Any, n_vocab: int) -> Vocab:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    known = tokenizer.get_vocab()
    multilingual = n_vocab >= MULTILINGUAL_VOCAB
    codes = tuple(LANGUAGES)[:num_languages(n_vocab)] if multilingual else ()
    names = ["<|startoftranscript|>", "<|endoftext|>", "<|transcribe|>", "<|notimestamps|>",
             *(f"<|{code}|>" for code in codes)]
    missing = [name for name in names if name not in known]
    if missing:
        raise UalmError(f"the tokenizer in {path} lacks Whisper's special tokens "
                        f"{', '.join(missing[:3])}", fix=FIX)
    ids = {name: known[name] for name in names}

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    return Vocab(sot=ids["<|startoftranscript|>"], eot=ids["<|endoftext|>"],
                 transcribe=ids["<|transcribe|>"], no_timestamps=ids["<|notimestamps|>"],
                 blank=encode(" ")[0], languages=codes,
                 language_ids=tuple(ids[f"<|{code}|>"] for code in codes),
                 non_speech=non_speech_tokens(encode),
                 decode=lambda tokens: tokenizer.decode(tokens, skip_special_tokens=True,
                                                        clean_up_tokenization_spaces=False))

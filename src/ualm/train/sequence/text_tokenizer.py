"""Text tokenizers: the backbone's own (a Hugging Face tokenizer from a local folder), or an
offline default that needs no download (UTF-8 bytes), for the demo, tests and tiny models.

Both count tokens the same way for the blend and the trainer: `len(tokenizer.encode(text))`.
Special tokens (`<|bos|>`, `<|audio|>`, ...) are not the text tokenizer's business: the model's
vocabulary reserves them ahead of the text vocabulary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ualm.errors import UalmError

BYTES = "bytes-v1"


class TextTokenizer(Protocol):
    name: str
    """Recorded in blend specs and checkpoints: token counts are only comparable under one."""
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0-255. Long sequences, but no vocabulary to ship or fetch."""

    name = BYTES
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A transformers tokenizer from a local folder (e.g. a Qwen2.5 checkpoint's)."""

    def __init__(self, folder: str | Path) -> None:
        from transformers import AutoTokenizer

        folder = Path(folder)
        if not folder.is_dir():
            raise UalmError(f"tokenizer folder {folder} does not exist",
                            fix="pass a local model folder (weights are never downloaded)")
        try:
            self._tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UalmError(f"cannot load a tokenizer from {folder}: {exc}",
                            fix="the folder needs tokenizer.json or the tokenizer's vocab files"
                            ) from exc
        self.vocab_size = len(self._tok)
        digest = hashlib.sha256()
        for file in sorted(folder.glob("tokenizer*")) + sorted(folder.glob("vocab*")):
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
        self.name = f"hf:{folder.name}:{digest.hexdigest()[:12]}"

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=True))


def load_text_tokenizer(source: str | Path | None = None) -> TextTokenizer:
    """None or "bytes": the offline default; otherwise a local tokenizer or model folder."""
    if source is None or str(source) in ("bytes", BYTES):
        return ByteTokenizer()
    return HFTokenizer(source)

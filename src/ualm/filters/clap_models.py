"""Loading a CLAP model folder from local disk: a one-line UalmError for anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ualm.errors import UalmError

FIX = ("pass a local Hugging Face folder of an unfused CLAP model (e.g. a copy of "
       "laion/clap-htsat-unfused): config.json, model weights, the feature extractor and "
       "tokenizer files (ualm never downloads weights)")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"{type(exc).__name__}: {lines[0][:200]}"


def load_parts(path: Path) -> tuple[Any, Any, Any]:
    """(ClapModel on the CPU, ClapFeatureExtractor, tokenizer) from a model folder."""
    if not path.exists():
        raise UalmError(f"CLAP weights not found: {path}", fix=FIX)
    try:
        config = json.loads((path / "config.json").read_text())
        model_type = config.get("model_type")
        fused = bool(config.get("audio_config", {}).get("enable_fusion", False))
    except (OSError, ValueError, AttributeError) as exc:
        raise UalmError(f"{path} is not a Hugging Face model folder: cannot read config.json "
                        f"({_short(exc)})", fix=FIX) from None
    if model_type != "clap":
        raise UalmError(f"{path} holds a {model_type!r} model, not CLAP", fix=FIX)
    if fused:  # its feature extractor picks random crops and flags: scores would not repeat
        raise UalmError(f"{path} holds a fused CLAP model, which ualm does not score "
                        "deterministically", fix=FIX)
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    try:
        model = ClapModel.from_pretrained(path, local_files_only=True)
        extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError or safetensors errors
        raise UalmError(f"cannot load CLAP from {path} ({_short(exc)})", fix=FIX) from None
    return model, extractor, tokenizer

"""Checkpoint files: `load_codec` reads a codec from "random[:KIND]", an encodec .th checkpoint
or a Hugging Face folder (EnCodec here; X-codec, DAC and Mimi through `hf_loading`), reporting
every user mistake as one UalmError before any work; and `save_encodec_checkpoint` /
`export_hf_folder` write EnCodec weights in either format, so both backends can load them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ualm.errors import UalmError
from ualm.tokenize.codecs import keymap
from ualm.tokenize.codecs.base import AudioCodec
from ualm.tokenize.codecs.codec import Codec, EncodecPackageCodec, TransformersCodec
from ualm.tokenize.codecs.hf_loading import kind_named, load_hf_codec, random_hf_codec
from ualm.tokenize.codecs.info import check_bandwidth, make_info
from ualm.tokenize.codecs.kinds import BY_MODEL_TYPE, Kind
from ualm.tokenize.codecs.random_init import random_state, save_state

WEIGHTS_FIX = ("download facebook/encodec_24khz into a folder, or the encodec .th checkpoint, "
               "and pass its path; `random` for tests")
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# transformers' EncodecConfig fields that make it EnCodec 24 kHz (absent fields default to these).
HF_CONFIG = {
    "model_type": "encodec", "sampling_rate": 24_000, "audio_channels": 1, "normalize": False,
    "chunk_length_s": None, "hidden_size": 128, "num_filters": 32, "num_residual_layers": 1,
    "upsampling_ratios": [8, 5, 4, 2], "norm_type": "weight_norm", "kernel_size": 7,
    "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_growth_rate": 2,
    "use_causal_conv": True, "pad_mode": "reflect", "compress": 2, "num_lstm_layers": 2,
    "trim_right_ratio": 1.0, "codebook_size": 1024, "use_conv_shortcut": True,
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
}


def load_codec(source: str, bandwidth: float = 6.0, device: str | None = None,
               batch_size: int | None = None, seed: int = 0) -> AudioCodec:
    """source: "random" or "random:KIND" (seeded; KIND one of encodec, xcodec, dac, mimi;
    "random" is EnCodec), a path to an encodec-package checkpoint (.th), or a path to a Hugging
    Face folder of transformers' EncodecModel, XcodecModel, DacModel or MimiModel (the kind is
    read from its config.json). bandwidth: kbps, one of EnCodec's; for the other kinds the most
    the codes may take (6 = all 8 of X-codec's codebooks). device None = CUDA when available,
    else CPU; batch_size None = adapt to memory."""
    source = str(source)
    kind = _hf_kind(source)
    if kind is not None:
        return _load_hf(kind, source, bandwidth, device, batch_size, seed)
    if source == "random:encodec":
        source = "random"
    bandwidth = check_bandwidth(bandwidth)
    torch_device = _device(device)
    _check_batch_size(batch_size)
    if source == "random":
        state = random_state(seed)
        digest = keymap.weights_sha256(state)
        info = make_info("transformers", bandwidth, digest, digest, random_weights=True)
        return TransformersCodec(info, state, torch_device, batch_size)
    path = Path(str(source)).expanduser()
    if not path.exists():
        if _looks_like_path(str(source)):
            raise UalmError(f"codec weights not found: {path}", fix=WEIGHTS_FIX)
        raise UalmError(f"unknown codec {source!r}: not `random` and not a file or folder",
                        fix=WEIGHTS_FIX)
    if path.is_dir():
        state, file_digest = _read_hf_folder(path)
        info = make_info("transformers", bandwidth, file_digest, keymap.weights_sha256(state))
        return TransformersCodec(info, state, torch_device, batch_size)
    loaded = keymap.unwrap(_torch_load(path))
    if isinstance(loaded, dict) and any(str(k).startswith("encoder.layers.") for k in loaded):
        loaded = keymap.from_transformers(loaded)  # a transformers state dict saved as a file
    state = keymap.check_architecture(loaded, str(path))
    info = make_info("encodec", bandwidth, _file_sha256(path), keymap.weights_sha256(state))
    return EncodecPackageCodec(info, state, torch_device, batch_size)


def _hf_kind(source: str) -> Kind | None:
    """The transformers kind `source` names (random:KIND, or a folder whose config.json says
    so); None for EnCodec."""
    if source.startswith("random:"):
        name = source.split(":", 1)[1]
        return None if name == "encodec" else kind_named(name)
    config = Path(source).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # the EnCodec reader reports an unreadable config
    return BY_MODEL_TYPE.get(model_type)


def _load_hf(kind: Kind, source: str, bandwidth: float, device: str | None,
             batch_size: int | None, seed: int) -> AudioCodec:
    try:
        bandwidth = float(bandwidth)
    except (TypeError, ValueError):
        bandwidth = -1.0
    if not bandwidth > 0:
        raise UalmError(f"bandwidth must be a positive number of kbps for {kind.name}",
                        fix="pass e.g. --bandwidth 6")
    torch_device = _device(device)
    _check_batch_size(batch_size)
    if source.startswith("random:"):
        return random_hf_codec(kind, bandwidth, seed, torch_device, batch_size)
    folder = Path(source).expanduser()
    digest = _file_sha256(*_hf_weight_files(folder))
    return load_hf_codec(kind, folder, digest, bandwidth, torch_device, batch_size)


def _check_batch_size(batch_size: object) -> None:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise UalmError(f"batch_size must be a positive integer, not {batch_size!r}",
                        fix="pass e.g. batch_size=8, or leave it unset to adapt to memory")


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UalmError(f"unknown device {device!r}", fix="use cpu, cuda or cuda:N") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise UalmError(f"device {device!r} asked for, but CUDA is not available",
                        fix="use device cpu, or leave it unset")
    if torch_device.type not in ("cpu", "cuda"):
        raise UalmError(f"device {device!r} is not supported", fix="use cpu or cuda")
    return torch_device


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or Path(source).suffix in (".th", ".pt", ".bin")


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports a bad file in many exception types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UalmError(f"cannot read codec checkpoint {path}: {reason}",
                        fix="pass an intact checkpoint saved with torch.save(state_dict)") from None


def _file_sha256(*paths: Path) -> str:
    """sha256 of one file; of several, of their names and sha256s in name order."""
    digests = []
    for path in sorted(paths):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digests.append((path.name, digest.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256(json.dumps(digests).encode()).hexdigest()


def _read_hf_folder(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(canonical state dict, checksum of the weight files) of an HF EncodecModel folder whose
    config is EnCodec 24 kHz's (so transformers' default EncodecConfig rebuilds it)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UalmError(f"{folder} is not a transformers EncodecModel folder: no config.json",
                        fix=WEIGHTS_FIX)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UalmError(f"cannot read {config_path}: {exc}", fix=WEIGHTS_FIX) from None
    if not isinstance(config, dict):
        raise UalmError(f"{config_path} is not a JSON object", fix=WEIGHTS_FIX)
    wrong = [f"{k}={config[k]!r} (EnCodec 24 kHz: {v!r})" for k, v in HF_CONFIG.items()
             if k in config and _normal(config[k]) != _normal(v)]
    if wrong:
        raise UalmError(f"{folder} is not EnCodec 24 kHz: {'; '.join(wrong)}", fix=WEIGHTS_FIX)
    files = _hf_weight_files(folder)
    state: dict[str, object] = {}
    for file in files:
        state.update(_read_weights(file))
    renamed = keymap.from_transformers(state)  # type: ignore[arg-type]
    checked = keymap.check_architecture(renamed, str(folder))
    return checked, _file_sha256(*files)


def _normal(value: object) -> object:
    return [float(v) for v in value] if isinstance(value, list | tuple) else value


def _hf_weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise UalmError(f"cannot read {index}", fix=WEIGHTS_FIX) from None
        return [folder / name for name in names]
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise UalmError(f"no weights in {folder}: expected {' or '.join(HF_WEIGHT_FILES)}",
                    fix=WEIGHTS_FIX)


def _read_weights(path: Path) -> dict[str, object]:
    if path.suffix != ".safetensors":
        state = keymap.unwrap(_torch_load(path))
        return dict(state) if isinstance(state, dict) else {}
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UalmError(f"cannot read {path}: {str(exc).splitlines()[0][:160]}",
                        fix="download the folder again: the weight file is damaged") from None


def canonical_state(source: object) -> dict[str, torch.Tensor]:
    """The canonical state dict of a Codec, an encodec-package or transformers EncodecModel, or
    a state dict under either naming."""
    if isinstance(source, Codec):
        state = source.state_dict()
    elif isinstance(source, torch.nn.Module):
        state = dict(source.state_dict())
    elif isinstance(source, Mapping):
        state = dict(source)
    else:
        raise TypeError(f"expected a Codec, an EncodecModel or a state dict, not {type(source)}")
    if any(k.startswith(("encoder.layers.", "quantizer.layers.")) for k in state):
        state = keymap.from_transformers(state)
    return keymap.check_architecture(state, type(source).__name__)


def save_encodec_checkpoint(codec_or_model: object, path: str | os.PathLike[str]) -> Path:
    """Writes the weights as an encodec-package checkpoint (a state dict for torch.load)."""
    path = Path(path)
    save_state(canonical_state(codec_or_model), path)
    return path


def export_hf_folder(codec: object, folder: str | os.PathLike[str]) -> Path:
    """Writes the weights as a transformers EncodecModel folder (config.json, model.safetensors),
    as `EncodecModel.from_pretrained(folder)` or `load_codec(folder)` read it."""
    from safetensors.torch import save_file
    from transformers import EncodecConfig

    state = keymap.to_transformers(canonical_state(codec))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    EncodecConfig().save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return folder

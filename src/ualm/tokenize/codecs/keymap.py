"""EnCodec 24 kHz weights in the encodec package's names ("canonical") and in transformers'.

The two state dicts hold the same 252 tensors under different names:

    encodec package                         transformers EncodecModel
    encoder.model.1.block.1.conv.conv.bias  encoder.layers.1.block.1.conv.bias
    ....conv.conv.weight_g                  ....conv.parametrizations.weight.original0
    ....conv.conv.weight_v                  ....conv.parametrizations.weight.original1
    decoder.model.3.convtr.convtr.bias      decoder.layers.3.conv.bias
    encoder.model.13.lstm.weight_ih_l0      encoder.layers.13.lstm.weight_ih_l0
    quantizer.vq.layers.0._codebook.embed   quantizer.layers.0.codebook.embed

Older transformers checkpoints (e.g. the hub's facebook/encodec_24khz) name weight norm's
tensors `weight_g`/`weight_v`; they are read as `original0`/`original1`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cache

import torch

from ualm.errors import UalmError

TRAINING_ONLY = ("inited", "cluster_size", "embed_avg")  # k-means/EMA state, unused to encode
_ARCH_FIX = "pass EnCodec 24 kHz weights (encodec_24khz-d7cc33bc.th or facebook/encodec_24khz)"


def to_transformers_key(key: str) -> str:
    """One canonical (encodec package) name -> transformers' name."""
    key = re.sub(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", r"quantizer.layers.\1.codebook.",
                 key)
    key = re.sub(r"^(encoder|decoder)\.model\.", r"\1.layers.", key)
    key = key.replace(".conv.conv.", ".conv.").replace(".convtr.convtr.", ".conv.")
    key = re.sub(r"\.weight_g$", ".parametrizations.weight.original0", key)
    return re.sub(r"\.weight_v$", ".parametrizations.weight.original1", key)


@cache
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every tensor of EnCodec 24 kHz (from a fresh model)."""
    from ualm.tokenize.codecs.fresh import fresh_shapes

    return fresh_shapes()


@cache
def _from_transformers() -> dict[str, str]:
    return {to_transformers_key(k): k for k in expected_shapes()}


def to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A canonical state dict renamed for transformers' EncodecModel."""
    return {to_transformers_key(k): v for k, v in state.items()}


def from_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers EncodecModel state dict renamed to canonical names. Names that are not
    EnCodec 24 kHz's are kept as they are, for `check_architecture` to report."""
    names = _from_transformers()
    out = {}
    for key, value in state.items():
        key = re.sub(r"\.weight_g$", ".parametrizations.weight.original0", key)
        key = re.sub(r"\.weight_v$", ".parametrizations.weight.original1", key)
        out[names.get(key, key)] = value
    return out


def unwrap(obj: object) -> object:
    """The state dict inside a checkpoint: as saved, or under a usual wrapper key, without a
    DistributedDataParallel `module.` prefix."""
    for wrapper in ("state_dict", "model_state_dict", "model", "best_state", "state"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if isinstance(obj, Mapping) and obj and all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module.") :]: v for k, v in obj.items()}
    return obj


def check_architecture(state: object, source: str) -> dict[str, torch.Tensor]:
    """The canonical state dict as float32, or a UalmError if it is not EnCodec 24 kHz's.

    Training-only buffers may be absent (they are filled in); every other tensor must be there
    with its exact shape, and nothing else may be.
    """
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in
                                                 state.values()):
        raise UalmError(f"{source} holds no state dict of tensors", fix=_ARCH_FIX)
    expected = expected_shapes()
    state = dict(state)
    for key in [k for k in expected if k.rsplit(".", 1)[-1] in TRAINING_ONLY and k not in state]:
        embed = state.get(key.rsplit(".", 1)[0] + ".embed")
        state[key] = _training_default(key, embed)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or extra or wrong:
        parts = [f"{len(names)} {what} (e.g. {names[0]})" for what, names in
                 (("tensors missing", missing), ("unexpected tensors", extra),
                  ("tensors of the wrong shape", wrong)) if names]
        raise UalmError(f"{source} is not an EnCodec 24 kHz checkpoint: {'; '.join(parts)}",
                        fix=_ARCH_FIX)
    return {k: state[k].detach().to("cpu", torch.float32).contiguous() for k in expected}


def _training_default(key: str, embed: torch.Tensor | None) -> torch.Tensor:
    if key.endswith("inited"):
        return torch.ones(1)
    if key.endswith("embed_avg") and embed is not None:
        return embed.clone()
    return torch.zeros(1024) if key.endswith("cluster_size") else torch.zeros(1024, 128)


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Checksum of the weights that encoding and decoding use (names, shapes, float32 bytes),
    so the same weights hash alike from a .th, a safetensors folder or either backend."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if key.rsplit(".", 1)[-1] in TRAINING_ONLY:
            continue
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()

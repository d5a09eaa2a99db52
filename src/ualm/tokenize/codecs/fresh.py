"""Freshly initialised EnCodec 24 kHz weights without the encodec package.

`encodec.EncodecModel.encodec_model_24khz(pretrained=False)` under `torch.manual_seed(s)` draws
its weights with PyTorch's default initialisers, module by module in construction order (the
encoder's convs and LSTM, then the decoder's), then applies weight normalisation (g = |v|); its
codebooks start as zeros. Building plain torch modules of the same types and shapes in the same
order draws the same numbers, so this gives the package's state dict bit for bit (a test checks
it against the package where it is installed) with nothing but torch and transformers, whose
`EncodecModel` supplies the architecture: the package's metadata asks for a torchaudio that no
CPU machine here can import, so `pip install ualm` does not bring it.
"""

from __future__ import annotations

import warnings
from functools import cache

import torch
from torch import nn

CODEBOOK_SIZE, DIMENSION = 1024, 128


@cache
def layout() -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """(canonical module name, kind, weight shape) of every conv and LSTM, in construction
    order (encoder, then decoder), and the codebooks (kind "codebook")."""
    from transformers import EncodecConfig, EncodecModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):  # shapes only: no memory, no random numbers drawn
            model = EncodecModel(EncodecConfig())
    out = []
    for part in ("encoder", "decoder"):
        for name, module in getattr(model, part).named_modules():
            kind = type(module).__name__
            where = f"{part}.model.{name.removeprefix('layers.')}"
            if kind == "EncodecConv1d":
                out.append((f"{where}.conv.conv", "conv", tuple(module.conv.weight.shape)))
            elif kind == "EncodecConvTranspose1d":
                out.append((f"{where}.convtr.convtr", "convtr", tuple(module.conv.weight.shape)))
            elif kind == "EncodecLSTM":
                lstm = module.lstm
                out.append((f"{where}.lstm", "lstm",
                            (lstm.input_size, lstm.hidden_size, lstm.num_layers)))
    codebooks = len(model.quantizer.layers)
    out += [(f"quantizer.vq.layers.{i}._codebook", "codebook", (CODEBOOK_SIZE, DIMENSION))
            for i in range(codebooks)]
    return tuple(out)


def fresh_state() -> dict[str, torch.Tensor]:
    """The state dict (canonical names) of a fresh model, drawn from torch's global generator
    (seed it first): the same tensors as the encodec package's fresh EnCodec 24 kHz."""
    state: dict[str, torch.Tensor] = {}
    quantizer: dict[str, torch.Tensor] = {}
    for name, kind, shape in layout():
        if kind == "codebook":
            quantizer.update({f"{name}.inited": torch.zeros(1),
                              f"{name}.cluster_size": torch.zeros(shape[0]),
                              f"{name}.embed": torch.zeros(shape),
                              f"{name}.embed_avg": torch.zeros(shape)})
            continue
        module = _module(kind, shape)
        state.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    # the package registers the quantizer between encoder and decoder
    encoder = {k: v for k, v in state.items() if k.startswith("encoder.")}
    decoder = {k: v for k, v in state.items() if k.startswith("decoder.")}
    return {**encoder, **quantizer, **decoder}


@cache
def fresh_shapes() -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape of every tensor of EnCodec 24 kHz, in the package's order (built
    on the meta device: no memory, and no draw from torch's generator)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in fresh_state().items()}


def _module(kind: str, shape: tuple[int, ...]) -> nn.Module:
    if kind == "lstm":
        size, hidden, layers = shape
        return nn.LSTM(size, hidden, layers)
    if kind == "conv":
        out_channels, in_channels, kernel = shape
        conv: nn.Module = nn.Conv1d(in_channels, out_channels, kernel)
    else:
        in_channels, out_channels, kernel = shape
        conv = nn.ConvTranspose1d(in_channels, out_channels, kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        return nn.utils.weight_norm(conv)  # the package's norm: weight_g, weight_v

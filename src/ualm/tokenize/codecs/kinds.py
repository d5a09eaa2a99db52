"""The codecs besides EnCodec, as transformers implements them: X-codec, DAC and Mimi.

A `Kind` knows one model class: its rates, which codebook counts it offers, how to encode a
padded batch and decode one clip, and the small configuration of the same class that the
seeded random codec builds (tests and demos; real weights come from a local folder).

    >>> KINDS["xcodec"].model_type, KINDS["mimi"].model_class          # doctest: +SKIP
    ('xcodec', 'MimiModel')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

HUBERT_SMALL = {"model_type": "hubert", "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 64, "conv_dim": [16] * 7,
                "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
"""HuBERT base's layout (7 convs, 320 samples per frame at 16 kHz), narrow and two layers deep."""


@dataclass(frozen=True)
class Kind:
    """One transformers codec class. `bucket_hops`: clips are zero-padded to a multiple of this
    many frames and a forward pass holds clips of one padded length, so a clip's codes depend on
    its own samples only (X-codec's HuBERT normalises over the whole input, so any padding moves
    its codes: there a bucket is one frame)."""

    name: str  # the `random:KIND` spelling, and the first word of the codec's name
    model_type: str  # config.json's model_type
    model_class: str
    config_class: str
    bucket_hops: int
    small: dict[str, Any] = field(default_factory=dict)  # the random codec's config

    def config(self, **overrides: Any) -> Any:
        import transformers

        return getattr(transformers, self.config_class)(**{**self.small, **overrides})

    def model_cls(self) -> Any:
        import transformers

        return getattr(transformers, self.model_class)

    def sample_rate(self, config: Any) -> int:
        return int(getattr(config, "sampling_rate", None) or config.sample_rate)

    def hop(self, config: Any) -> int:
        """Samples per frame."""
        return int(config.frame_size if self.name == "mimi" else config.hop_length)

    def codebook_size(self, config: Any) -> int:
        return int(config.codebook_size)

    def codebook_options(self, config: Any) -> list[int]:
        """Codebook counts the model encodes with, ascending."""
        if self.name == "xcodec":
            per = math.log2(config.codebook_size) * config.frame_rate / 1000
            return sorted({max(1, math.floor(b / per + 1e-9)) for b in config.target_bandwidths})
        if self.name == "dac":
            return list(range(1, config.n_codebooks + 1))
        return list(range(config.num_semantic_quantizers, config.num_quantizers + 1))

    def encode(self, model: Any, audio: torch.Tensor, codebooks: int) -> torch.Tensor:
        """audio [batch, 1, samples] -> codes [batch, codebooks, frames] (int64)."""
        if self.name == "xcodec":
            per = model.quantizer.get_bandwidth_per_quantizer()
            bandwidth = next(b for b in model.config.target_bandwidths
                             if max(1, math.floor(b / per + 1e-9)) == codebooks)
            return model.encode(audio, bandwidth=bandwidth, return_dict=False)
        if self.name == "dac":
            return model.encode(audio, n_quantizers=codebooks, return_dict=False)[2][:, :codebooks]
        return model.encode(audio, num_quantizers=codebooks).audio_codes

    def decode(self, model: Any, codes: torch.Tensor) -> torch.Tensor:
        """codes [codebooks, frames] -> audio [samples]."""
        if self.name == "xcodec":
            return model.decode(codes[None], return_dict=False)[0, 0]
        if self.name == "dac":
            return model.decode(audio_codes=codes[None], return_dict=False)[0][0]
        return model.decode(codes[None]).audio_values[0, 0]

    def latents(self, model: Any, audio: torch.Tensor) -> torch.Tensor:
        """What the quantizer receives: [batch, dim, frames]."""
        if self.name == "mimi":
            return model.encoder(audio).latents
        if self.name == "dac":
            return model.encoder(audio)
        seen: list[torch.Tensor] = []
        quantizer = model.quantizer
        original = quantizer.encode

        def capture(embeddings: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            seen.append(embeddings)
            return original(embeddings, *args, **kwargs)

        quantizer.encode = capture  # X-codec computes them inside encode() only
        try:
            self.encode(model, audio, self.codebook_options(model.config)[0])
        finally:
            del quantizer.encode
        return seen[0]

    def quantizer_stages(self, model: Any, latents: torch.Tensor
                         ) -> list[tuple[torch.Tensor, list[Any]]]:
        """(points [n, dim], codebook modules) of each residual quantizer whose codebooks start
        as zeros and are filled by k-means: X-codec's one, Mimi's semantic and acoustic ones
        (DAC's, looked up in per-quantizer projections, are fitted by `hf_loading._fit_dac`)."""
        flat = lambda x: x.permute(0, 2, 1).reshape(-1, x.shape[1])  # noqa: E731
        if self.name == "xcodec":
            return [(flat(latents), [q.codebook for q in model.quantizer.quantizers])]
        if self.name == "dac":
            return []
        out = []
        for rvq in (model.quantizer.semantic_residual_vector_quantizer,
                    model.quantizer.acoustic_residual_vector_quantizer):
            points = rvq.input_proj(latents) if rvq.input_proj is not None else latents
            out.append((flat(points), [layer.codebook for layer in rvq.layers]))
        return out

    def set_codebook(self, codebook: Any, embed: torch.Tensor, counts: torch.Tensor) -> None:
        """Writes k-means centroids into a codebook module, as training's k-means start does."""
        with torch.no_grad():
            if self.name == "mimi":
                codebook.embed_sum.copy_(embed)
                codebook.cluster_usage.fill_(1.0)  # embed = embed_sum / usage
                codebook._embed = None  # the model caches embed on first use
                return
            codebook.embed.copy_(embed)
            codebook.embed_avg.copy_(embed)
            codebook.cluster_size.copy_(counts.float())
            codebook.inited.fill_(1.0)


KINDS: dict[str, Kind] = {
    # UALM's generation codec: 16 kHz, 320 samples (50 frames) a second, 8 codebooks of 1024 at
    # 4 kbps. The random one keeps those and HuBERT's framing; its layers are narrow.
    "xcodec": Kind("xcodec", "xcodec", "XcodecModel", "XcodecConfig", bucket_hops=1, small={
        "acoustic_model_config": {"model_type": "dac", "encoder_hidden_size": 4,
                                  "decoder_hidden_size": 32},
        "semantic_model_config": HUBERT_SMALL}),
    # descript/dac_16khz: 16 kHz, 50 frames a second, 12 codebooks of 1024 (6 kbps).
    "dac": Kind("dac", "dac", "DacModel", "DacConfig", bucket_hops=50, small={
        "encoder_hidden_size": 4, "decoder_hidden_size": 32, "downsampling_ratios": [2, 4, 5, 8],
        "n_codebooks": 12, "sampling_rate": 16_000}),
    # kyutai/mimi: 24 kHz, 12.5 frames a second, codebooks of 2048 (32; Moshi uses 8, as the
    # random one has).
    "mimi": Kind("mimi", "mimi", "MimiModel", "MimiConfig", bucket_hops=13, small={
        "hidden_size": 32, "num_filters": 4, "num_hidden_layers": 2, "intermediate_size": 64,
        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16, "codebook_dim": 16,
        "vector_quantization_hidden_dimension": 16, "num_quantizers": 8, "upsample_groups": 32}),
}
BY_MODEL_TYPE = {kind.model_type: kind for kind in KINDS.values()}

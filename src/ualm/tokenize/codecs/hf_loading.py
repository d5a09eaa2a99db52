"""Loading X-codec, DAC and Mimi: a real checkpoint from a local Hugging Face folder (config.json
plus weights, read by the model class's `from_pretrained` with `local_files_only`), or the seeded
random codec of the same class.

A freshly built X-codec or Mimi codes every sound as 0, like EnCodec: their codebooks start as
zeros, waiting for training's k-means start. The random codec therefore fills each residual
codebook with k-means centroids of what it quantizes on fixed synthetic audio (codebook n on the
residuals codebooks 1..n-1 leave), as `random_init` does for EnCodec. DAC draws its codebooks at
random, which spreads codes over fewer entries; it is fitted the same way in its own projected,
normalised space (`_fit_dac`). A test checks every kind.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ualm.audio.synthetic import synth_clip
from ualm.errors import UalmError
from ualm.tokenize.codecs import keymap
from ualm.tokenize.codecs.hf_codec import HFCodec, hf_info
from ualm.tokenize.codecs.kinds import KINDS, Kind
from ualm.tokenize.codecs.random_init import (
    cache_dir,
    cached_state,
    held_out_residual,
    kmeans,
    one_thread,
)

INIT = {
    "version": 1,
    "clips": 16,  # synthetic clips of the k-means sample, seeds audio_seed + 0..15
    "clip_seconds": 12.0,  # X-codec, DAC: 9,600 frames for 1024 centroids; Mimi: 2,400 for 2048
    "audio_seed": 7_100_000,  # apart from EnCodec's sample and from the seeds tests use
    "lloyd_iterations": 8,
}
"""Everything the random weights depend on besides the kind's config and the seed."""


def kind_named(name: str) -> Kind:
    if name not in KINDS:
        raise UalmError(f"unknown codec kind {name!r}",
                        fix=f"use random:KIND with KIND one of: encodec, {', '.join(KINDS)}")
    return KINDS[name]


def random_hf_codec(kind: Kind, bandwidth: float, seed: int, device: torch.device,
                    batch_size: int | None) -> HFCodec:
    """The seeded random codec of `kind` (built once, then read from the cache)."""
    model = _new_model(kind, seed)
    model.load_state_dict(random_state(kind, seed))
    digest = keymap.weights_sha256(model.state_dict())
    codebooks = codebooks_for(kind, model.config, bandwidth)
    info = hf_info(kind, model.config, codebooks, digest, digest, random_weights=True)
    return HFCodec(kind, model, info, device, batch_size)


def load_hf_codec(kind: Kind, folder: Path, checkpoint_sha256: str, bandwidth: float,
                  device: torch.device, batch_size: int | None) -> HFCodec:
    """A real checkpoint from a local folder, through the model class's own loader."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = kind.model_cls().from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UalmError(f"cannot load {kind.model_class} from {folder}: {reason}",
                        fix=f"pass a complete local copy of a {kind.name} checkpoint folder "
                            "(config.json and its weights)") from None
    codebooks = codebooks_for(kind, model.config, bandwidth)
    info = hf_info(kind, model.config, codebooks, checkpoint_sha256,
                   keymap.weights_sha256(model.state_dict()), random_weights=False)
    return HFCodec(kind, model, info, device, batch_size)


def codebooks_for(kind: Kind, config: Any, bandwidth: float) -> int:
    """The most codebooks the model offers within `bandwidth` kbps (all of them at 6 kbps, the
    default, for X-codec's 8 and DAC 16 kHz's 12)."""
    per = np.log2(kind.codebook_size(config)) * kind.sample_rate(config) / kind.hop(config) / 1e3
    options = kind.codebook_options(config)
    fitting = [n for n in options if n * per <= float(bandwidth) + 1e-9]
    if not fitting:
        offered = ", ".join(f"{n * per:g}" for n in options[:6]) + (
            ", ..." if len(options) > 6 else "")
        raise UalmError(f"bandwidth {bandwidth:g} kbps is below what {kind.name} offers",
                        fix=f"pass --bandwidth of at least {options[0] * per:g} "
                            f"(its steps: {offered} kbps)")
    return max(fitting)


def random_state(kind: Kind, seed: int) -> dict[str, torch.Tensor]:
    """The seeded random weights of `kind`, from the cache if there (written atomically)."""
    key = json.dumps({"init": INIT, "config": kind.small, "class": kind.model_class},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = cache_dir() / f"{kind.name}-random-seed{seed}-{digest}.pt"
    return cached_state(path, lambda: one_thread(lambda: _build(kind, seed)))


def _new_model(kind: Kind, seed: int) -> Any:
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        return kind.model_cls()(kind.config()).eval()


def _build(kind: Kind, seed: int) -> dict[str, torch.Tensor]:
    model = _new_model(kind, seed)
    rate = kind.sample_rate(model.config)
    clips = [synth_clip(float(INIT["clip_seconds"]), rate, seed=int(INIT["audio_seed"]) + i)
             for i in range(int(INIT["clips"]))]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latents = kind.latents(model, torch.from_numpy(np.stack(clips))[:, None])
        if kind.name == "dac":
            _fit_dac(model, latents, generator)
        for points, codebooks in kind.quantizer_stages(model, latents):
            residual = points.float().contiguous()
            for codebook in codebooks:
                embed = kmeans(residual, kind.codebook_size(model.config),
                               int(INIT["lloyd_iterations"]), generator)
                residual, counts = held_out_residual(residual, embed)
                kind.set_codebook(codebook, embed, counts)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit_dac(model: Any, latents: torch.Tensor, generator: torch.Generator) -> None:
    """DAC looks codes up by cosine in each quantizer's own projected space: codebook n gets
    k-means centroids of the normalised projections of the residual codebooks 1..n-1 leave.
    (Drawn at random, its codebooks spread codes too, but over fewer entries.)"""
    residual = latents
    size = model.config.codebook_size
    for quantizer in model.quantizer.quantizers:
        projected = quantizer.in_proj(residual)
        flat = projected.permute(0, 2, 1).reshape(-1, projected.shape[1])
        points = torch.nn.functional.normalize(flat)
        embed = kmeans(points.contiguous(), size, int(INIT["lloyd_iterations"]), generator)
        quantizer.codebook.weight.copy_(embed)
        quantized, _ = quantizer.decode_latents(projected)
        residual = residual - quantizer.out_proj(quantized)

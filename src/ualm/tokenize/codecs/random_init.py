"""The "random" codec: seeded EnCodec 24 kHz weights whose codebooks are initialised the way
EnCodec's training starts, by k-means on encoder outputs.

A freshly built EnCodec has all-zero codebooks (training fills them by k-means on its first
batches), so it codes every sound as 0. Here each of the 32 residual codebooks gets k-means
centroids: codebook 1 of the encoder outputs of a fixed sample of synthetic audio, codebook n of
the residuals left after codebooks 1..n-1. The sample comes from `synth_clip`, so the weights
depend on the seed and these parameters only, never on a corpus. The result is cached on disk.

Three refinements keep a random encoder's codes meaningful, and stable under float rounding:
the convs get weight normalisation's data-dependent initialisation, no two codewords are left
nearly equal, and each codebook is fitted to the residuals unseen audio would leave
(leave-one-out), not to the sample's own shrinking ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ualm.audio.synthetic import synth_clip
from ualm.tokenize.codecs import keymap
from ualm.tokenize.codecs.engine import CHUNK, StreamingEncoder, encode_streams
from ualm.tokenize.codecs.fresh import fresh_state
from ualm.tokenize.codecs.info import CODEBOOK_SIZE, SAMPLE_RATE

INIT = {
    "version": 3,
    "stats_clips": 8,  # synthetic clips (seeds audio_seed - 1, - 2, ...) that set conv scales
    "stats_seconds": 1.0,
    "clips": 16,  # synthetic clips of the k-means sample, seeds audio_seed + 0..15
    "clip_seconds": 8.0,  # 600 frames each: 9600 in all, about 9 per centroid
    "audio_seed": 7_000_000,  # far from the small seeds that tests and demos use
    "lloyd_iterations": 8,  # codebooks 1-8 (up to 6 kbps)
    "deep_lloyd_iterations": 2,  # codebooks 9-32: residuals of residuals, cheaper to fit
    "min_separation": 1e-3,  # centroid spacing, relative to the spread of the points
    "engine_chunk": CHUNK,  # the streaming encoder's step, whose rounding the sample sees
}
"""Everything the weights depend on besides the seed (and the machine's float rounding, which
can differ between CPUs); its hash names the cache file."""


T = TypeVar("T")


def cache_dir() -> Path:
    """$UALM_CACHE/codecs, or ~/.cache/ualm/codecs."""
    root = os.environ.get("UALM_CACHE") or Path.home() / ".cache" / "ualm"
    return Path(root) / "codecs"


def init_hash() -> str:
    return hashlib.sha256(json.dumps(INIT, sort_keys=True).encode()).hexdigest()[:12]


def random_state(seed: int) -> dict[str, torch.Tensor]:
    """The seeded, k-means-initialised state dict (canonical names), from the cache if there."""
    path = cache_dir() / f"encodec_24khz-random-seed{seed}-{init_hash()}.pt"
    return cached_state(path, lambda: build_random_state(seed))


def cached_state(path: Path, build: Callable[[], dict[str, torch.Tensor]]
                 ) -> dict[str, torch.Tensor]:
    """The state dict cached at `path`, or `build()`'s, then cached there (a damaged cache file
    is rebuilt, never trusted)."""
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)
    state = build()
    save_state(state, path)
    return state


def save_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """torch.save, atomically: a concurrent loader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def one_thread(build: Callable[[], T]) -> T:
    """`build()` on one torch thread: sums split over threads round differently, and a process
    with another thread count (a Dask worker runs with one) would build other weights, so
    another codec id."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build()
    finally:
        torch.set_num_threads(threads)


def build_random_state(seed: int) -> dict[str, torch.Tensor]:
    """Builds the weights under torch.manual_seed(seed), then fills the 32 codebooks, on one
    thread (`one_thread`)."""
    return one_thread(lambda: _build_random_state(seed))


def _build_random_state(seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = fresh_state()
    audio_seed, stats_seconds = int(INIT["audio_seed"]), float(INIT["stats_seconds"])
    state = normalised(state, [synth_clip(stats_seconds, SAMPLE_RATE, seed=audio_seed - 1 - i)
                               for i in range(int(INIT["stats_clips"]))])
    clips = [synth_clip(float(INIT["clip_seconds"]), SAMPLE_RATE, seed=int(INIT["audio_seed"]) + i)
             for i in range(int(INIT["clips"]))]
    engine = StreamingEncoder(state, 0, torch.device("cpu"))
    emb = encode_streams(engine, clips, len(clips), torch.device("cpu"), quantize=False)
    residual = torch.from_numpy(np.concatenate(emb, axis=1).T.copy())  # [frames, 128]
    generator = torch.Generator().manual_seed(seed)
    layers = sum(1 for k in state if k.endswith("._codebook.embed"))
    for layer in range(layers):
        iterations = INIT["lloyd_iterations" if layer < 8 else "deep_lloyd_iterations"]
        embed = kmeans(residual, CODEBOOK_SIZE, int(iterations), generator)
        residual, counts = held_out_residual(residual, embed)
        prefix = f"quantizer.vq.layers.{layer}._codebook."
        state[prefix + "embed"] = embed
        state[prefix + "embed_avg"] = embed.clone()
        state[prefix + "cluster_size"] = counts.float()
        state[prefix + "inited"] = torch.ones(1)
    return state


def normalised(state: dict[str, torch.Tensor], clips: list[np.ndarray]
               ) -> dict[str, torch.Tensor]:
    """`state` after weight normalisation's data-dependent initialisation (Salimans & Kingma,
    2016): each conv of the encoder, in forward order, gets g and b such that its output over
    `clips` has zero mean and unit variance per channel. Freshly initialised, the encoder
    drowns the signal in its biases (the output varies 50 times less than it is offset), so its
    codes would hinge on float rounding: a different conv layout or batch size would change 1
    frame in 1000. Runs transformers' EncodecModel (the same arithmetic as the encodec
    package's, bit for bit on the CPU: a test compares them)."""
    from transformers import EncodecConfig, EncodecModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EncodecModel(EncodecConfig())
    model.load_state_dict(keymap.to_transformers(state), strict=True)

    def normalise(module: torch.nn.Module, _: object, output: torch.Tensor) -> torch.Tensor:
        conv = module.conv  # type: ignore[union-attr]
        mean, std = output.mean(dim=(0, 2)), output.std(dim=(0, 2)).clamp(min=1e-6)
        conv.parametrizations.weight.original0.div_(std.view(-1, 1, 1))
        conv.bias.sub_(mean).div_(std)
        return (output - mean[:, None]) / std[:, None]

    convs = [m for m in model.encoder.modules() if type(m).__name__ == "EncodecConv1d"]
    hooks = [conv.register_forward_hook(normalise) for conv in convs]
    try:
        with torch.no_grad():
            model.encoder(torch.from_numpy(np.stack(clips))[:, None])
    finally:
        for hook in hooks:
            hook.remove()
    return {k: v.detach().clone() for k, v in keymap.from_transformers(model.state_dict()).items()}


def held_out_residual(x: torch.Tensor, centroids: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's residual as if it had not helped fit the codebook (leave-one-out): against
    its cluster's mean without it, (n / (n - 1)) (x - mean), or for a cluster of one, against the
    next-nearest centroid. In-sample residuals would shrink layer by layer (a cluster of one
    leaves exactly zero) and starve the deeper codebooks; unseen audio's residuals do not.
    Also returns each centroid's point count."""
    distance = torch.addmm(centroids.pow(2).sum(1), x, centroids.t(), alpha=-2)
    first, second = distance.topk(2, dim=1, largest=False).indices.unbind(1)
    counts = torch.bincount(first, minlength=len(centroids))
    size = counts[first].unsqueeze(1).to(x.dtype)
    residual = torch.where(size > 1, (x - centroids[first]) * size / (size - 1).clamp(min=1),
                           x - centroids[second])
    return residual, counts


def nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid per row (|c|^2 - 2 x.c; |x|^2 does not change the argmin)."""
    return torch.addmm(centroids.pow(2).sum(1), x, centroids.t(), alpha=-2).argmin(1)


def kmeans(x: torch.Tensor, k: int, iterations: int, generator: torch.Generator
           ) -> torch.Tensor:
    """Lloyd's k-means from k sample points, as EnCodec's `kmeans`, except that a centroid that
    loses all its points, or lies within `min_separation` of another, moves to the point worst
    served so far: no two codewords end up (nearly) equal, which would make float rounding
    pick between them. Returns the centroids [k, dim]."""
    spread = float((x - x.mean(0)).pow(2).sum(1).mean().sqrt())
    tol = float(INIT["min_separation"]) * spread
    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    x64 = x.double()  # float64 sums: the means hardly depend on summation order
    for _ in range(iterations):
        assign = nearest(x, centroids)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, assign, x64)
        means = (sums / counts.clamp(min=1).unsqueeze(1)).float()
        centroids = _separate(x, torch.where((counts > 0).unsqueeze(1), means, centroids),
                              counts > 0, tol, generator)
    return centroids


def _separate(x: torch.Tensor, centroids: torch.Tensor, alive: torch.Tensor, tol: float,
              generator: torch.Generator) -> torch.Tensor:
    """Re-seeds dead centroids and the later of any two closer than `tol`, greedily, with the
    points farthest from the kept centroids (each at least `tol` from all others); where the
    points run out, with far-away random vectors that no input will reach."""
    gram = centroids @ centroids.t()
    norms = gram.diagonal()
    close = (norms[:, None] + norms[None, :] - 2 * gram).clamp(min=0).sqrt() < tol
    crowded = torch.triu(close, diagonal=1).any(0)
    bad = (crowded | ~alive).nonzero().flatten().tolist()
    if not bad:
        return centroids
    keep = torch.ones(len(centroids), dtype=torch.bool)
    keep[bad] = False
    kept = centroids[keep]
    far = (x - kept[nearest(x, kept)]).pow(2).sum(1).sqrt()
    chosen = x.new_empty(len(bad), x.shape[1])
    taken = 0
    for i in torch.argsort(far, descending=True, stable=True).tolist():
        if taken == len(bad) or far[i] < tol:
            break
        if taken and float((chosen[:taken] - x[i]).norm(dim=1).min()) < tol:
            continue
        chosen[taken] = x[i]
        taken += 1
    out = centroids.clone()
    out[bad[:taken]] = chosen[:taken]
    if taken < len(bad):
        lost = torch.randn(len(bad) - taken, x.shape[1], generator=generator)
        out[bad[taken:]] = x.mean(0) + 1e3 * (float(far.max()) + 1) * lost
    return out

"""What `ualm synth` does, as one validated dataclass (the CLI's flags mirror its fields)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ualm.errors import UalmError
from ualm.synth.traces import KINDS

ALL_KINDS = (*KINDS, "pairs")


@dataclass(frozen=True)
class SynthConfig:
    teacher: str = "rule"
    """`rule` (embedded, offline), `openai:MODEL[@BASE_URL]` or `local:MODEL_FOLDER`."""
    kinds: tuple[str, ...] = ALL_KINDS
    """Trace kinds to write, and `pairs` for preference pairs."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (the key itself is never stored)."""
    concurrency: int = 8
    """Requests in flight at once."""
    timeout: float = 60.0
    """Seconds before a request to a server is abandoned (and retried); a local model's
    generation is bounded by `reply_tokens` instead."""
    max_retries: int = 4
    """Retries of a request after a timeout, 429, 5xx or lost connection."""
    backoff: float = 1.0
    """First wait in seconds when the server sends no Retry-After; doubles per retry."""
    max_backoff: float = 60.0
    max_repairs: int = 2
    """Repair prompts after an invalid reply before it is rejected."""
    max_requests: int | None = None
    """Budget: requests sent (retries and repairs included); the rest are rejected."""
    max_tokens: int | None = None
    """Budget: prompt + completion tokens the server reports."""
    temperature: float = 0.7
    reply_tokens: int = 1024
    """max_tokens of each reply."""
    seed: int = 0
    clap_model: str | None = None
    """A local CLAP model folder for near-miss retrieval and pair ranking (default: a
    deterministic stand-in, see `ualm.synth.neighbors`)."""
    device: str | None = None
    codec_id: str | None = None
    dedup_threshold: float = 0.9
    """Traces whose rich captions' MinHash similarity reaches this are duplicates."""
    pair_candidates: int = 4
    """Clips ranked for a caption's pair: the caption's own clip and its nearest neighbours."""
    pair_margin: float = 0.05
    """How far below the chosen clip's score a rejected clip must be."""
    pairs_per_clip: int = 2
    """Pairs per caption: the chosen clip against each of its best rejected candidates."""
    max_samples: int = 1000
    """Traces (or pairs) per shard."""
    limit: int | None = None
    """Use only the first N clips (in key order)."""
    cache_dir: str | None = None
    """Reply cache (default: the corpus's _work/synth/cache)."""

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in ALL_KINDS]
        if unknown or not self.kinds:
            raise UalmError(f"unknown trace kinds: {', '.join(unknown) or '(none given)'}",
                            fix=f"choose from {', '.join(ALL_KINDS)}")
        for name in ("concurrency", "max_samples", "pair_candidates", "pairs_per_clip"):
            if getattr(self, name) < 1:
                raise UalmError(f"{name} must be at least 1")
        for name in ("max_retries", "max_repairs"):
            if getattr(self, name) < 0:
                raise UalmError(f"{name} must not be negative")
        if self.timeout <= 0 or self.backoff < 0:
            raise UalmError("timeout must be positive and backoff not negative")
        if not 0 < self.dedup_threshold <= 1:
            raise UalmError("dedup_threshold must be in (0, 1]")

    @property
    def params(self) -> dict[str, Any]:
        """The sampling parameters every trace records (and the cache keys on)."""
        return {"temperature": self.temperature, "max_tokens": self.reply_tokens,
                "seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

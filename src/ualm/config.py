"""Build configuration: documented dataclasses, validated at construction, loadable from YAML.

Example:
    >>> cfg = BuildConfig.from_dict({"audio": {"sample_rate": 16000}})
    >>> cfg.audio.sample_rate, cfg.segment.seconds
    (16000, 10.0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ualm.errors import UalmError

SCHEMA_VERSION = 1
BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)


def _fail(message: str) -> None:
    raise UalmError(message, fix="correct the value in your config file")


@dataclass(frozen=True)
class AudioConfig:
    """How every input is decoded before it is checked, cut and stored."""

    sample_rate: int = 24000
    """Rate of stored audio (24 kHz is what EnCodec 24 kHz expects)."""
    mono: bool = True
    """Downmix to mono by averaging the channels (the only layout supported for now)."""

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            _fail(f"audio.sample_rate must be within 8000..192000, got {self.sample_rate}")
        if not self.mono:
            _fail("audio.mono: only mono output is supported for now")


@dataclass(frozen=True)
class SegmentConfig:
    """How recordings are cut into training windows."""

    seconds: float | None = 10.0
    """Window length; null keeps each input whole (up to quality.max_input_seconds)."""
    min_tail_seconds: float = 1.0
    """A final window shorter than this is dropped (recorded as `segment/short_tail`)."""

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            _fail(f"segment.seconds must be positive or null, got {self.seconds}")
        if self.min_tail_seconds < 0:
            _fail(f"segment.min_tail_seconds must be >= 0, got {self.min_tail_seconds}")


@dataclass(frozen=True)
class QualityConfig:
    """Per-sample quality checks; each failure is a namespaced reason."""

    min_seconds: float = 1.0
    """Inputs shorter than this are rejected as `quality/too_short`."""
    max_input_seconds: float = 6 * 3600.0
    """Inputs longer than this are rejected as `quality/too_long` (checked on the header first)."""
    silence_dbfs: float = -60.0
    """A window whose RMS level is below this is `quality/silent`."""
    clip_level: float = 0.999
    """Absolute sample value at or above which a sample counts as clipped."""
    max_clipped_fraction: float = 0.01
    """A window with more clipped samples than this fraction is `quality/clipped`."""

    def __post_init__(self) -> None:
        if self.min_seconds < 0 or self.max_input_seconds <= self.min_seconds:
            _fail("quality: need 0 <= min_seconds < max_input_seconds")
        if not 0 < self.clip_level <= 1 or not 0 <= self.max_clipped_fraction <= 1:
            _fail("quality: clip_level must be in (0, 1] and max_clipped_fraction in [0, 1]")


@dataclass(frozen=True)
class ShardConfig:
    """How kept samples are packed into WebDataset tars."""

    max_samples: int = 1000
    """A shard holds at most this many samples."""
    max_bytes: int = 512 * 1024 * 1024
    """A shard rolls over before its payload would pass this many bytes."""

    def __post_init__(self) -> None:
        if self.max_samples < 1 or self.max_bytes < 1024:
            _fail("shards: max_samples must be >= 1 and max_bytes >= 1024")


@dataclass(frozen=True)
class WorkConfig:
    """How work is cut into deterministic units (part of the config hash: it shapes the outputs)."""

    unit_size: int = 16
    """Inputs per work unit (a unit is the retry and skip granularity)."""
    dedup_buckets: int = 8
    """Hash partitions of the exact-duplicate reduce step."""

    def __post_init__(self) -> None:
        if self.unit_size < 1 or self.dedup_buckets < 1:
            _fail("work: unit_size and dedup_buckets must be >= 1")


@dataclass(frozen=True)
class TokenizeConfig:
    """The codec stage that `ualm build` runs after the audio stage. Not part of the corpus's
    config hash: a new codec adds token shards and changes nothing else."""

    enabled: bool = True
    """Tokenize after building (`ualm tokenize` runs the stage on its own)."""
    codec: str = "random"
    """`random` (seeded, for tests and demos), an EnCodec `.th` checkpoint or a Hugging Face
    EncodecModel folder."""
    bandwidth: float = 6.0
    """kbps: 1.5, 3, 6, 12 or 24 (2, 4, 8, 16 or 32 codebooks at 75 frames/s)."""
    seed: int = 0
    """Seed of the random codec."""
    device: str | None = None
    """`cuda`, `cpu`, or null for CUDA when available."""
    batch_size: int | None = None
    """Clips per forward pass; null adapts to memory."""
    cache_dir: str | None = None
    """Token cache shared across corpora; null uses $UALM_CACHE or ~/.cache/ualm."""

    def __post_init__(self) -> None:
        if self.bandwidth not in BANDWIDTHS:
            _fail(f"tokenize.bandwidth must be one of {', '.join(f'{b:g}' for b in BANDWIDTHS)} "
                  f"kbps, got {self.bandwidth:g}")
        if self.batch_size is not None and self.batch_size < 1:
            _fail(f"tokenize.batch_size must be >= 1 or null, got {self.batch_size}")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the bytes of a corpus. Engines and paths are not part of it."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    work: WorkConfig = field(default_factory=WorkConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BuildConfig:
        """Builds a config from nested dicts; unknown keys are an error, not a silent default."""
        data = dict(data or {})
        parts: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            section = data.pop(f.name, None) or {}
            if not isinstance(section, dict):
                _fail(f"config section '{f.name}' must be a mapping")
            parts[f.name] = _build_section(f.default_factory, f.name, section)  # type: ignore[arg-type]
        if data:
            _fail(f"unknown config section(s): {', '.join(sorted(data))}")
        return cls(**parts)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BuildConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise UalmError(f"config file not found: {path}", fix="pass an existing YAML file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UalmError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from exc
        if data is not None and not isinstance(data, dict):
            raise UalmError(f"config file {path} must hold a mapping at the top level")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def audio_dict(self) -> dict[str, Any]:
        """The part of the config that decides the audio stage's bytes."""
        return {k: v for k, v in self.to_dict().items() if k != "tokenize"}

    def hash(self) -> str:
        """A short stable hash of the audio stage's config, recorded in every manifest row and
        shard (the codec stage records its own codec id instead)."""
        blob = json.dumps({"schema": SCHEMA_VERSION, **self.audio_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build_section(factory: type, name: str, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(factory)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        _fail(f"unknown key(s) in config section '{name}': {', '.join(unknown)}")
    typed: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(factory(), key)
        if value is not None and isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(f"config {name}.{key} must be a number, got {value!r}")
            value = type(default)(value) if isinstance(default, float) or value == int(value) else value
        typed[key] = value
    return factory(**typed)

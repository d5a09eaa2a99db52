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

from ualm.config.corpus import (
    BANDWIDTHS,
    CaptionDedupConfig,
    CrawlConfig,
    DecontamConfig,
    FilterConfig,
    NearDedupConfig,
    ShardConfig,
    TokenizeConfig,
    WorkConfig,
)
from ualm.config.samples import (
    LOW_QUALITY_WORDS,
    PLACEHOLDER_CAPTIONS,
    AudioConfig,
    CaptionConfig,
    ClapConfig,
    LimitsConfig,
    LoudnessConfig,
    QualityConfig,
    SegmentConfig,
    VadConfig,
    WhisperConfig,
)
from ualm.errors import UalmError
from ualm.sections import from_sections

__all__ = [
    "BANDWIDTHS", "LOW_QUALITY_WORDS", "PLACEHOLDER_CAPTIONS", "SCHEMA_VERSION", "AudioConfig",
    "BuildConfig", "CaptionConfig", "CaptionDedupConfig", "ClapConfig", "CrawlConfig",
    "DecontamConfig", "FilterConfig", "LimitsConfig", "LoudnessConfig", "NearDedupConfig",
    "QualityConfig", "SegmentConfig", "ShardConfig", "TokenizeConfig", "VadConfig",
    "WhisperConfig", "WorkConfig",
    "read_yaml_mapping",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the bytes of a corpus. Engines and paths are not part of it."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    loudness: LoudnessConfig = field(default_factory=LoudnessConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    whisper: WhisperConfig = field(default_factory=WhisperConfig)
    clap: ClapConfig = field(default_factory=ClapConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    caption_dedup: CaptionDedupConfig = field(default_factory=CaptionDedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    work: WorkConfig = field(default_factory=WorkConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str | None = None) -> BuildConfig:
        """Builds a config from nested dicts; unknown keys and values of the wrong type are
        errors (naming `source`, the file), not silent defaults."""
        return from_sections(cls, data, "config", "correct the value in your config file",
                             source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BuildConfig:
        return cls.from_dict(read_yaml_mapping(path), source=str(path))

    @classmethod
    def from_sources(cls, preset: str | None = None, path: str | Path | None = None,
                     overrides: dict[str, Any] | None = None) -> BuildConfig:
        """A packaged preset (see `ualm.recipes`), with a YAML file merged on top, and
        `overrides` (sections of values, e.g. from command-line flags) on top of both."""
        from ualm.recipes import load_preset, merged

        data = load_preset(preset) if preset else {}
        if path is not None:
            data = merged(data, read_yaml_mapping(path))
        return cls.from_dict(merged(data, overrides or {}),
                             source=str(path) if path is not None else preset)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def audio_dict(self) -> dict[str, Any]:
        """The part of the config that decides the audio stage's bytes."""
        out = {k: v for k, v in self.to_dict().items()  # limits: how long to try, not what
               if k not in ("tokenize", "crawl", "limits")}
        for section in ("whisper", "clap"):  # where a model runs does not change its output
            out[section] = {k: v for k, v in out[section].items()
                            if k not in ("device", "batch_size")}
        if not (self.filters.enabled or self.filters.options):  # a default leaves hashes as
            del out["filters"]                                  # they were before the section
        if not self.decontam.enabled:  # likewise: no evaluation set, the hash of before
            del out["decontam"]
        crawl = self.crawl.identity()  # only what decides bytes, and only when not default
        if crawl:
            out["crawl"] = crawl
        return out

    def hash(self) -> str:
        """A short stable hash of the audio stage's config, recorded in every manifest row and
        shard (the codec stage records its own codec id instead)."""
        blob = json.dumps({"schema": SCHEMA_VERSION, **self.audio_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, with one-line errors for the usual mistakes."""
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
    return data or {}

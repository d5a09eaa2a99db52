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
from ualm.sections import from_sections

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
    mode: str = "fixed"
    """`fixed`: windows of `seconds`; `vad`: speech segments found by Silero VAD, of
    `vad_min_seconds` to `vad_max_seconds` (Emilia's 3-30 s), for long speech recordings; the
    audio between segments is not kept, and an input with none is `vad/no_speech`."""
    vad_min_seconds: float = 3.0
    vad_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "vad"):
            _fail(f"segment.mode must be fixed or vad, got {self.mode!r}")
        if not 0 < self.vad_min_seconds < self.vad_max_seconds:
            _fail("segment: need 0 < vad_min_seconds < vad_max_seconds")
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


LOW_QUALITY_WORDS = ("noisy", "muffled", "distorted", "low quality", "low-quality", "poor quality",
                     "bad quality", "unclear", "inaudible", "garbled")
PLACEHOLDER_CAPTIONS = ("n/a", "na", "none", "null", "nan", "caption", "no caption", "todo", "tbd",
                        "unknown", "-", "...", "?")


@dataclass(frozen=True)
class CaptionConfig:
    """Caption checks (the ETTA / AF-Synthetic recipe). A failing caption is dropped and recorded
    in the rejects (level `caption`); an input whose every caption fails is rejected with the
    first caption's reason (`caption/empty`, `caption/placeholder`, `caption/too_short`,
    `caption/too_long`, `caption/low_quality_word`). Inputs without captions are not affected."""

    enabled: bool = False
    min_words: int = 2
    """Fewer words than this is `caption/too_short`."""
    max_words: int = 100
    """More words than this is `caption/too_long`."""
    low_quality_words: tuple[str, ...] = LOW_QUALITY_WORDS
    """Whole words or phrases (case-insensitive) that mark a caption of a poor recording."""
    placeholders: tuple[str, ...] = PLACEHOLDER_CAPTIONS
    """Captions that say nothing (compared case-insensitively, ignoring surrounding spaces)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "low_quality_words", tuple(self.low_quality_words))
        object.__setattr__(self, "placeholders", tuple(self.placeholders))
        if not 0 <= self.min_words <= self.max_words:
            _fail("captions: need 0 <= min_words <= max_words")


@dataclass(frozen=True)
class LoudnessConfig:
    """EBU R128 integrated loudness (`pyloudnorm`) of every kept window, as an annotation
    (`loudness_lufs` in the manifests and shard metadata), and optionally normalisation."""

    enabled: bool = False
    normalize_lufs: float | None = None
    """Scale every window to this loudness (e.g. -23); null stores the audio as decoded."""
    max_peak: float = 0.99
    """Normalisation never raises a window's peak above this (the gain is reduced instead)."""

    def __post_init__(self) -> None:
        if self.normalize_lufs is not None:  # -23 and -23.0 must hash alike
            object.__setattr__(self, "normalize_lufs", float(self.normalize_lufs))
        if self.normalize_lufs is not None and not -70 <= self.normalize_lufs <= 0:
            _fail(f"loudness.normalize_lufs must be within -70..0, got {self.normalize_lufs}")
        if not 0 < self.max_peak <= 1:
            _fail(f"loudness.max_peak must be in (0, 1], got {self.max_peak}")


@dataclass(frozen=True)
class VadConfig:
    """Speech detection with Silero VAD (its weights ship in the `silero-vad` package): each kept
    window gets `speech_ratio` (the fraction of it that is speech) and `speech_segments`."""

    enabled: bool = False
    threshold: float = 0.5
    """Silero's speech probability above which a 32 ms frame counts as speech."""
    min_speech_ratio: float | None = None
    """Windows with less speech than this are rejected `vad/no_speech` (speech corpora)."""
    max_speech_ratio: float | None = None
    """Windows with more speech than this are rejected `vad/speech` (sound-only corpora)."""

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            _fail(f"vad.threshold must be in (0, 1), got {self.threshold}")
        for name in ("min_speech_ratio", "max_speech_ratio"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
            if value is not None and not 0 <= value <= 1:
                _fail(f"vad.{name} must be within 0..1 or null, got {value}")


@dataclass(frozen=True)
class WhisperConfig:
    """Spoken language (with its probability) and a transcript for every kept window, from a
    Whisper model at a local path: an openai-whisper `.pt` checkpoint or a Hugging Face folder
    (weights are never downloaded). Off while `model` is null."""

    model: str | None = None
    keep_languages: tuple[str, ...] = ()
    """Language codes to keep ("en", "de", ...); empty keeps every language."""
    min_probability: float | None = None
    """Windows whose language guess is less sure than this are `whisper/low_confidence`."""
    transcribe: bool = True
    """Store a greedy transcript (`transcript`), e.g. for ASR understanding tasks."""
    device: str | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_languages", tuple(self.keep_languages))
        if self.min_probability is not None and not 0 <= self.min_probability <= 1:
            _fail("whisper.min_probability must be within 0..1 or null")
        if self.batch_size < 1:
            _fail("whisper.batch_size must be >= 1")


@dataclass(frozen=True)
class ClapConfig:
    """Audio-text similarity with LAION-CLAP (transformers' ClapModel from a local folder): every
    caption is scored against its clip; the best `top_k` at or above `threshold` are kept (the
    ETTA recipe: 3 and 0.45), the rest are dropped (`clap/below_threshold`, `clap/not_top_k`);
    an input left with no caption is rejected. Each sample stores its audio embedding
    (`clap_embedding` in the samples manifest) for retrieval. Off while `model` is null."""

    model: str | None = None
    top_k: int | None = 3
    threshold: float = 0.45
    device: str | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            _fail("clap.top_k must be >= 1 or null")
        if not -1 <= self.threshold <= 1:
            _fail("clap.threshold is a cosine similarity: within -1..1")


@dataclass(frozen=True)
class NearDedupConfig:
    """Near-duplicate audio: the same recording re-encoded (MP3, Opus, another rate, stereo,
    louder) is kept once. Chromaprint fingerprints of each kept input are bucketed by LSH band
    keys in a keyed reduce (no step compares all pairs); candidates within a bucket are compared
    by bit error rate. Of a group of copies, the one with the best source quality survives
    (lossless first, then the higher native rate, then more channels), then the smallest id;
    it gains the others' captions. The others are duplicates (`dedup/near_duplicate`)."""

    enabled: bool = False
    max_seconds: float = 120.0
    """Fingerprint at most this much of each input (from its start)."""
    max_bit_error: float = 0.1
    """Copies differ in under 1 % of bits here, unrelated sounds in 20 % or more."""
    bands: int = 8
    """LSH bands (each gives two keys): more bands find copies with more bit errors."""
    buckets: int = 8
    """Hash partitions of the reduce."""

    def __post_init__(self) -> None:
        if self.max_seconds <= 0 or not 0 < self.max_bit_error < 0.5:
            _fail("near_dedup: need max_seconds > 0 and 0 < max_bit_error < 0.5")
        if self.bands < 1 or self.buckets < 1:
            _fail("near_dedup: bands and buckets must be >= 1")


@dataclass(frozen=True)
class CaptionDedupConfig:
    """Near-duplicate captions across clips (MinHash of word pairs, `datasketch`), found by LSH
    in a keyed reduce: each sample records its group (`caption_group`: the id of the group's
    first input) and the group's size; with `max_clips_per_group`, clips past the first that
    many of a group (in listing order) become `dedup/near_duplicate_caption` duplicates."""

    enabled: bool = False
    threshold: float = 0.8
    """Estimated Jaccard similarity of two inputs' caption word pairs at which they group."""
    max_clips_per_group: int | None = None
    """Keep at most this many clips per caption group; null only annotates."""
    bands: int = 16
    """LSH bands over 64 MinHash values (4 rows each): pairs at 0.8 meet with p > 0.99."""
    buckets: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            _fail("caption_dedup.threshold must be in (0, 1]")
        if self.max_clips_per_group is not None and self.max_clips_per_group < 1:
            _fail("caption_dedup.max_clips_per_group must be >= 1 or null")
        if not 1 <= self.bands <= 64 or self.buckets < 1:
            _fail("caption_dedup: bands must be within 1..64 and buckets >= 1")


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
class CrawlConfig:
    """How URL inputs are fetched and how Hugging Face / WebDataset sources are read.

    Only the fields that decide which bytes a corpus holds (`max_bytes`, `max_redirects`,
    `robots`, `opt_out_column`, `audio_column`, `columns`) count towards the config hash, and
    only when changed from their defaults; concurrency, rates, timeouts, retries, the User-Agent,
    the cache and `allow_private_network` say how to fetch, not what, and leave the hash alone.
    """

    concurrency: int = 32
    """Requests in flight at once in one ingest unit, over all hosts."""
    per_host_concurrency: int = 4
    """Requests in flight at once to one host (scheme, host and port)."""
    per_host_rate: float = 8.0
    """Requests started per second to one host; 0 means no limit."""
    connect_timeout: float = 10.0
    """Seconds to open a connection (DNS included)."""
    read_timeout: float = 30.0
    """Seconds without a byte from the server before the attempt times out."""
    total_timeout: float = 600.0
    """Seconds for one whole attempt (connect, headers and body)."""
    retries: int = 3
    """Retries after a timeout, a dropped connection, a cut-short body, 429 or 5xx."""
    backoff_seconds: float = 0.5
    """First retry delay; it doubles each retry, with full jitter."""
    max_backoff_seconds: float = 30.0
    """Cap of one retry delay."""
    max_retry_after: float = 120.0
    """A `Retry-After` longer than this gives up at once (`crawl/http_429` or `crawl/http_5xx`)."""
    max_bytes: int = 2 * 1024**3
    """Largest file fetched (or read from a tar), enforced while streaming: `crawl/too_large`."""
    max_redirects: int = 5
    """Redirects followed per URL; one more is `crawl/too_many_redirects`."""
    user_agent: str = "ualm-crawler/0.1 (audio corpus builder)"
    """User-Agent sent with every request, and the name robots.txt rules are matched against."""
    robots: bool = True
    """Honour robots.txt (an unreachable robots.txt, 5xx or timeout, disallows the host)."""
    opt_out_column: str | None = "opt_out"
    """A manifest or dataset column that, when true, opts a row out (`crawl/opt_out`)."""
    allow_private_network: bool = False
    """Permit loopback and private addresses (intranets, tests); link-local and cloud metadata
    addresses stay refused (`crawl/private_address`)."""
    cache_dir: str | None = None
    """Keep fetched files here, keyed by URL, revalidated with their ETag / Last-Modified;
    null keeps fetched bytes only for the life of the ingest unit."""
    audio_column: str = "audio"
    """Parquet column holding the `datasets` Audio struct `{bytes, path}`."""
    columns: dict[str, str] = field(default_factory=dict)
    """Renames of dataset / tar-metadata columns to manifest fields, e.g. `{text: caption}`."""

    def __post_init__(self) -> None:
        if min(self.concurrency, self.per_host_concurrency) < 1:
            _fail("crawl: concurrency and per_host_concurrency must be >= 1")
        if self.per_host_rate < 0 or self.retries < 0 or self.max_redirects < 0:
            _fail("crawl: per_host_rate, retries and max_redirects must be >= 0")
        timeouts = (self.connect_timeout, self.read_timeout, self.total_timeout,
                    self.backoff_seconds, self.max_backoff_seconds, self.max_retry_after)
        if min(timeouts) <= 0:
            _fail("crawl: timeouts, backoff_seconds and max_retry_after must be > 0")
        if self.max_bytes < 1:
            _fail(f"crawl.max_bytes must be >= 1, got {self.max_bytes}")
        if not self.user_agent.strip() or not self.audio_column:
            _fail("crawl: user_agent and audio_column must be non-empty")
        if not isinstance(self.columns, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.columns.items()):
            _fail("crawl.columns must map column names to field names (strings)")

    def identity(self) -> dict[str, Any]:
        """The fields that decide output bytes and differ from their defaults (for the hash)."""
        default = CrawlConfig()
        names = ("max_bytes", "max_redirects", "robots", "opt_out_column", "audio_column",
                 "columns")
        return {n: getattr(self, n) for n in names if getattr(self, n) != getattr(default, n)}


@dataclass(frozen=True)
class FilterConfig:
    """Window filters switched on by name: declared in `ualm.filters.chain`, or plug-ins that
    other packages install under the `ualm.filters` entry point group. They run after the
    quality checks, in order; the first reason wins."""

    enabled: tuple[str, ...] = ()
    """Filter names, e.g. [dc_offset]; an unknown name stops the build before any work."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per filter, the options its check takes, e.g. {dc_offset: {max_offset: 0.1}}."""


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
    shards: ShardConfig = field(default_factory=ShardConfig)
    work: WorkConfig = field(default_factory=WorkConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)

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
    def from_sources(cls, preset: str | None = None, path: str | Path | None = None
                     ) -> BuildConfig:
        """A packaged preset (see `ualm.recipes`), with a YAML file merged on top."""
        from ualm.recipes import load_preset, merged

        data = load_preset(preset) if preset else {}
        if path is not None:
            data = merged(data, read_yaml_mapping(path))
        return cls.from_dict(data, source=str(path) if path is not None else preset)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def audio_dict(self) -> dict[str, Any]:
        """The part of the config that decides the audio stage's bytes."""
        out = {k: v for k, v in self.to_dict().items() if k not in ("tokenize", "crawl")}
        for section in ("whisper", "clap"):  # where a model runs does not change its output
            out[section] = {k: v for k, v in out[section].items()
                            if k not in ("device", "batch_size")}
        if not (self.filters.enabled or self.filters.options):  # a default leaves hashes as
            del out["filters"]                                  # they were before the section
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

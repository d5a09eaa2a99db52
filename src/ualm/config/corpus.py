"""Config sections that decide the corpus as a whole: dedup, decontamination, shards, work units, the codec,
crawling, and the window filters switched on by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ualm.config.checks import fail as _fail

BANDWIDTHS = (1.5, 3.0, 6.0, 12.0, 24.0)


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
class DecontamConfig:
    """Evaluation decontamination: kept clips whose audio copies a clip of an evaluation set
    (a folder or manifest of audio with captions, such as a copy of the AudioCaps and Clotho
    test splits) are rejected (`decontam/eval_audio`), and captions that copy an evaluation
    caption are dropped (`decontam/eval_caption`; an input left with none is rejected). Part
    of the config hash when any set is named: a corpus checked against other sets is another
    corpus. Runs after the dedup stages, before shards are written."""

    eval_sets: list[str] = field(default_factory=list)
    """Evaluation sets (folders or JSONL/CSV/parquet manifests); none switches the stage off."""
    max_bit_error: float = 0.15
    """Largest fraction of differing fingerprint bits at the best alignment for a copy (copies
    differ in under 10 %, similar but unrelated noises in 19 % or more:
    benchmarks/bench_decontam.py)."""
    min_overlap: float = 0.5
    """A copy overlaps at least this fraction of the shorter of the two clips."""
    min_items: int = 16
    """...and at least this many fingerprint items (16 ms of audio each: 0.25 s)."""
    max_seconds: float = 600.0
    """Fingerprint at most this much of each input and each evaluation clip."""
    ngram: int = 3
    """Word n-grams compared between captions."""
    caption_threshold: float = 0.8
    """A caption copies an evaluation caption when it holds this fraction of its n-grams."""
    min_caption_words: int = 4
    """Evaluation captions shorter than this are not matched (too generic to be a copy)."""

    def __post_init__(self) -> None:
        if not 0 < self.max_bit_error < 0.5 or not 0 < self.min_overlap <= 1:
            _fail("decontam: need 0 < max_bit_error < 0.5 and 0 < min_overlap <= 1")
        if self.min_items < 1 or self.max_seconds <= 0 or self.ngram < 1:
            _fail("decontam: min_items, max_seconds and ngram must be positive")
        if not 0 < self.caption_threshold <= 1 or self.min_caption_words < 1:
            _fail("decontam: need 0 < caption_threshold <= 1 and min_caption_words >= 1")
        if any(not isinstance(p, str) or not p for p in self.eval_sets):
            _fail("decontam.eval_sets must be a list of paths")

    @property
    def enabled(self) -> bool:
        return bool(self.eval_sets)


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

    unit_size: int | None = None
    """Inputs per work unit (a unit is the retry and skip granularity). null: chosen from the
    input count, 16 up to 1,024 inputs, then about 64 units, at most 1,024 inputs a unit
    (`ualm.inputs.units.auto_unit_size`); the corpus records the size it chose."""
    dedup_buckets: int = 8
    """Hash partitions of the exact-duplicate reduce step."""

    def __post_init__(self) -> None:
        if (self.unit_size is not None and self.unit_size < 1) or self.dedup_buckets < 1:
            _fail("work: unit_size and dedup_buckets must be >= 1")


@dataclass(frozen=True)
class TokenizeConfig:
    """The codec stage that `ualm build` runs after the audio stage. Not part of the corpus's
    config hash: a new codec adds token shards and changes nothing else."""

    enabled: bool = True
    """Tokenize after building (`ualm tokenize` runs the stage on its own)."""
    codec: str | None = None
    """An EnCodec `.th` checkpoint, or a Hugging Face folder of an EncodecModel, XcodecModel,
    DacModel or MimiModel (the kind is read from config.json); or `random:KIND` (seeded random
    weights, for tests and demos: the audio decodes to noise; KIND one of encodec, xcodec, dac,
    mimi; plain `random` is EnCodec). Null: no codec, so `ualm build` writes the audio shards
    and manifests without tokens (never tokens from weights no model can use)."""
    bandwidth: float = 6.0
    """kbps. EnCodec: 1.5, 3, 6, 12 or 24 (2, 4, 8, 16 or 32 codebooks at 75 frames/s). Other
    codecs: the most their codes may take (6 gives X-codec's 8 codebooks at 50 frames/s)."""
    seed: int = 0
    """Seed of the random codec."""
    device: str | None = None
    """`cuda`, `cpu`, or null for CUDA when available."""
    batch_size: int | None = None
    """Clips per forward pass; null adapts to memory."""
    cache_dir: str | None = None
    """Token cache shared across corpora; null uses $UALM_CACHE or ~/.cache/ualm."""

    def __post_init__(self) -> None:
        codec = self.codec or ""
        encodec = codec in ("random", "random:encodec") or codec.endswith(".th")
        if not self.bandwidth > 0:
            _fail(f"tokenize.bandwidth must be a positive number of kbps, got {self.bandwidth:g}")
        if encodec and self.bandwidth not in BANDWIDTHS:
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

"""Config sections that decide what happens to each sample: the audio format, windows, quality
checks, caption checks, loudness, VAD, Whisper and CLAP."""

from __future__ import annotations

from dataclasses import dataclass

from ualm.config.checks import fail as _fail


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
class LimitsConfig:
    """What one input may cost. Not part of the config hash (like the crawler's timeouts, they
    say how long to try, not what to make): a rerun keeps units already finished."""

    isolate: bool = True
    """Decode each input in a decode process of the worker's, where the limits below hold and a
    crash in a codec library (a segmentation fault) is the input's `decode/crashed`; false
    decodes in the worker itself, without limits."""
    decode_seconds: float = 600.0
    """An input whose decoding keeps the worker waiting longer than this is `decode/timeout`."""
    decode_memory_mb: int = 1024
    """An input whose decoding needs more memory (address space) than this is
    `decode/too_large` (a 1 s block of 64 channels at 768 kHz takes about 200 MB)."""

    def __post_init__(self) -> None:
        if not self.decode_seconds > 0 or self.decode_memory_mb < 1:
            _fail("limits: decode_seconds must be > 0 and decode_memory_mb >= 1")


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
    an input left with no caption is rejected. Each kept caption keeps its score (`clap_scores`
    in the samples manifest and the shard JSON, aligned with `captions`; the card shows their
    distribution), and each sample its audio embedding (`clap_embedding`, manifest only) for
    retrieval. Off while `model` is null."""

    model: str | None = None
    top_k: int | None = 3
    threshold: float = 0.45
    device: str | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            _fail("clap.top_k must be >= 1 or null")
        if not -1 <= self.threshold <= 1:
            _fail("clap.threshold is a cosine similarity: within -1..1")

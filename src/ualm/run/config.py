"""The config of `ualm run`: one YAML file for the whole pipeline, section by section, each a
documented dataclass validated at construction. Only the config changes between the demo and a
cluster run (see examples/demo.yaml and examples/cluster.yaml).

>>> cfg = PipelineConfig.from_dict({"run": {"out": "r"}, "train": {"config": "tiny"}})
>>> cfg.run.out, cfg.engine.name, cfg.train.config
('r', 'dask', 'tiny')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ualm.config import BuildConfig, TokenizeConfig, read_yaml_mapping
from ualm.errors import UalmError
from ualm.run.overrides import FIX, apply_override, check_embedded
from ualm.sections import build_section, from_sections
from ualm.train import STAGES
from ualm.train.blend.weights import DEFAULT_TARGETS, BlendOptions

__all__ = ["FIX", "PipelineConfig", "apply_override", "check_embedded"]


@dataclass(frozen=True)
class RunSection:
    out: str = "ualm-run"
    """The run folder (relative to the current directory): corpora, blend, training run,
    outputs, report and the stages' completion records (`_run/`)."""


@dataclass(frozen=True)
class EventsSection:
    """The package's synthetic event world (`ualm.audio.events`): labelled clips, questions and
    chat rows, with a held-out split. Written into the run folder; no download."""

    per_class: int = 4
    understanding_per_class: int | None = None
    heldout_per_class: int = 1
    seconds: float = 1.2
    text_rows: int = 8
    events: tuple[str, ...] | None = None
    """Event names (a subset of ualm.audio.events.EVENTS); null: all of them."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.events is not None:
            object.__setattr__(self, "events", tuple(self.events))
        if self.per_class < 1 or self.heldout_per_class < 0 or self.seconds <= 0:
            raise UalmError("sources.events: need per_class >= 1, heldout_per_class >= 0 and "
                            "seconds > 0", fix=FIX)


@dataclass(frozen=True)
class SourcesSection:
    events: EventsSection | None = None
    """The synthetic event world; null (or absent) for none."""
    inputs: tuple[str, ...] = ()
    """What `ualm build --input` takes: folders, JSONL/CSV/parquet manifests, urls.txt,
    hf://datasets/..., WebDataset tars."""
    heldout: tuple[str, ...] = ()
    """Inputs of the held-out corpus (validation loss, the understanding question)."""
    allow_roots: tuple[str, ...] = ()
    """More folders that manifest paths may point into."""

    def __post_init__(self) -> None:
        for name in ("inputs", "heldout", "allow_roots"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise UalmError(f"sources.{name} must be a list of paths", fix=FIX)
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.events, dict):
            object.__setattr__(self, "events", build_section(
                EventsSection, "sources.events", self.events, "run config", FIX))
        if self.events is None and not self.inputs:
            raise UalmError("sources: no inputs and no event world",
                            fix="list sources.inputs, or add `sources.events: {}`")


@dataclass(frozen=True)
class EngineSection:
    """Where build and tokenize run; the bytes they write are the same on every engine."""

    name: str = "dask"
    """local, dask or beam."""
    scheduler: str | None = None
    """An existing Dask scheduler (tcp://host:8786); null starts a local cluster."""
    workers: int | None = None
    """Local Dask workers or DirectRunner processes; null: one per core."""
    runner: str | None = None
    """Beam runner: DirectRunner, PortableRunner, FlinkRunner, SparkRunner, DataflowRunner."""
    options: tuple[str, ...] = ()
    """Beam pipeline options, passed unchanged (`--flink_master=host:8081`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if self.name not in ("local", "dask", "beam"):
            raise UalmError(f"engine.name must be local, dask or beam, got {self.name!r}", fix=FIX)


@dataclass(frozen=True)
class BuildSection:
    preset: str | None = None
    """A packaged recipe: sound-captions, speech."""
    config: dict[str, Any] = field(default_factory=dict)
    """ualm.config.BuildConfig sections merged over the preset (as in examples/build.yaml),
    without `tokenize` (the top-level tokenize section)."""

    def build_config(self) -> BuildConfig:
        from ualm.recipes import load_preset, merged

        if "tokenize" in self.config:
            raise UalmError("build.config.tokenize: codec settings live in the top-level "
                            "`tokenize` section of a run config", fix="move them there")
        data = merged(load_preset(self.preset) if self.preset else {}, self.config)
        return BuildConfig.from_dict({**data, "tokenize": {"enabled": False}},
                                     source="(the run config's build.config)")


@dataclass(frozen=True)
class EntrySection:
    """A stage implemented elsewhere (`module:function`), run only when enabled and present."""

    enabled: bool = False
    entry: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the entry point."""


@dataclass(frozen=True)
class SynthSection(EntrySection):
    """Reasoning traces and preference pairs from a teacher (`ualm synth`), written into the
    corpus: called as `entry(corpus, **options)`, options as `ualm.synth.config.SynthConfig`."""

    entry: str = "ualm.synth.run:synthesize"
    options: dict[str, Any] = field(default_factory=lambda: {
        "teacher": "rule", "kinds": ["enrichment", "dialogue", "reflection", "pairs"]})


@dataclass(frozen=True)
class PublishSection(EntrySection):
    """Publishing (`ualm publish`): called as `entry(corpus, to, **options)` for each corpus."""

    entry: str = "ualm.publish:publish"
    to: str | None = None
    """hf://datasets/ORG/NAME, s3://bucket/prefix, gs://..., or a local folder."""


@dataclass(frozen=True)
class BlendSection(BlendOptions):
    """`ualm blend`: the real `ualm.train.blend.weights.BlendOptions` (targets, temperature,
    max_epochs, min_share, budget, allow_infeasible), checked when the config loads, and a
    run's own keys."""

    targets: Mapping[str, float] | None = None  # type: ignore[assignment]
    """Share of tokens per task; null: UALM's 27.7/33.1/39.2 %."""
    allow_infeasible: bool = True
    """Write the closest feasible blend when a task has too little data (small corpora)."""
    enabled: bool = True
    """Off: the trainer draws every source equally often."""
    tokenizer: str = "bytes"

    def __post_init__(self) -> None:
        given = None if self.targets is None else dict(self.targets)
        object.__setattr__(self, "_given_targets", given)  # as written (not normalised)
        if self.targets is None:
            object.__setattr__(self, "targets", dict(DEFAULT_TARGETS))
        super().__post_init__()

    def settings(self) -> dict[str, Any]:
        """What the blend stage's record is keyed by: the keys as written in the file."""
        return {**dataclasses.asdict(self), "targets": self._given_targets}  # type: ignore


STAGE_KEYS = ("name", "config", "overrides")


@dataclass(frozen=True)
class TrainSection:
    config: str = "tiny"
    """The pretrain stage's preset (tiny, qwen2.5-1.5b) or training YAML file."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """TrainConfig sections merged over every stage's config, last (so `--set
    train.overrides.run.max_steps=5` reaches every stage): `{run: {threads: 4}}`."""
    eval_batches: int | None = None
    """Cap on held-out batches evaluated after training; null: one whole pass."""
    stages: list[Any] = field(default_factory=lambda: ["pretrain"])
    """The training stages in order, each started from the previous one's checkpoint (UALM's
    recipe: align, pretrain, sft, dpo). An item is a stage name, or `{name, config,
    overrides}` (the stage's own overrides, under `overrides`); a stage other than pretrain
    without a config takes the preset named after the pretrain one (`tiny` -> `tiny-sft`)."""
    init: str | None = None
    """A checkpoint the first stage starts from (its weights only)."""

    def __post_init__(self) -> None:
        names = [self.stage_name(item) for item in self.stages]
        if not names:
            raise UalmError("train.stages is empty", fix="list at least one stage, e.g. "
                            "[pretrain]")
        if len(set(names)) < len(names):
            raise UalmError(f"train.stages names a stage twice: {names}",
                            fix="each stage once, in the order they train")

    @staticmethod
    def stage_name(item: Any) -> str:
        """The stage an item of `stages` names (checking the item's shape)."""
        if isinstance(item, dict):
            unknown = sorted(set(item) - set(STAGE_KEYS))
            if unknown or "name" not in item:
                raise UalmError(f"train.stages item {item!r}: needs a name, and knows only "
                                f"{', '.join(STAGE_KEYS)}", fix=FIX)
            item = item["name"]
        if item not in STAGES:
            raise UalmError(f"train.stages: unknown stage {item!r}",
                            fix=f"stages are: {', '.join(STAGES)}")
        return str(item)


@dataclass(frozen=True)
class GenerateSection:
    caption: str = "a low tone followed by white noise"
    """Text → audio: the WAV written to outputs/generated.wav."""
    question: str | None = None
    """Audio → text; null takes the first held-out understanding clip's own question."""
    audio: str | None = None
    """The question's audio; null takes that clip."""
    max_seconds: float = 3.0
    guidance: float = 3.0
    top_k: int = 20
    temperature: float = 0.8
    max_new_tokens: int = 32
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class ReportSection:
    samples: int = 3
    """Audio players per corpus."""


@dataclass(frozen=True)
class PipelineConfig:
    run: RunSection = field(default_factory=RunSection)
    sources: SourcesSection = field(default_factory=lambda: SourcesSection(EventsSection()))
    engine: EngineSection = field(default_factory=EngineSection)
    build: BuildSection = field(default_factory=BuildSection)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    synth: SynthSection = field(default_factory=SynthSection)
    blend: BlendSection = field(default_factory=BlendSection)
    train: TrainSection = field(default_factory=TrainSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    report: ReportSection = field(default_factory=ReportSection)
    publish: PublishSection = field(default_factory=PublishSection)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str | None = None
                  ) -> PipelineConfig:
        """Unknown sections and keys are errors that name the known ones; a value of the wrong
        type names its key, `source` (the file) and the type it needs."""
        config = from_sections(cls, data, "run config", FIX, source=source)
        config.build.build_config()  # a bad build section fails now, not after the world
        check_embedded(config, source)
        return config

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = (),
             given: dict[str, Any] | None = None) -> PipelineConfig:
        """A YAML file, with `section.key=value` overrides (values parsed as YAML), and `given`
        sections of values (command-line flags) on top."""
        from ualm.recipes import merged

        data = read_yaml_mapping(path)
        for item in overrides:
            data = apply_override(data, item)
        return cls.from_dict(merged(data, given or {}), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

"""The stages of `ualm run`, in pipeline order, each registered by the module that implements
it. A stage is a function of a `Context` (the config, the run folder, earlier stages' outputs)
that returns the paths it produced; the pipeline decides whether it runs at all.

    >>> [s for s in ORDER][:3]
    ['build', 'tokenize', 'synth']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ualm.errors import UalmError
from ualm.run.config import PipelineConfig
from ualm.run.records import Record

ORDER = ("build", "tokenize", "synth", "blend", "train", "generate", "report", "publish")
IMPLEMENTATIONS = ("ualm.run.data", "ualm.run.external", "ualm.run.model", "ualm.run.deliver")


@dataclass
class Context:
    config: PipelineConfig
    run: Path
    hash: str
    """This stage's hash now."""
    outputs: dict[str, dict[str, Path]]
    """Earlier stages' outputs, by stage and name, as absolute paths."""
    previous: Record | None
    """This stage's last record (another hash, or forced by --from), None after a crash or on
    the first run: a stage may resume in the second case and must start over in the first."""
    stream: TextIO
    progress: bool = True

    def output(self, stage: str, name: str) -> Path | None:
        return self.outputs.get(stage, {}).get(name)

    def say(self, line: str) -> None:
        print(f"        {line}", file=self.stream, flush=True)


@dataclass(frozen=True)
class StageResult:
    outputs: dict[str, Path]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], StageResult]
    settings: Callable[[PipelineConfig], Any]
    """What the stage's result depends on (hashed with the upstream stage's hash)."""
    off: Callable[[PipelineConfig], str | None] = lambda config: None
    """Why the stage does not run with this config (None: it runs)."""
    description: str = ""


_STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name not in ORDER:
        raise ValueError(f"stage {stage.name!r} is not in ORDER")
    _STAGES[stage.name] = stage
    return stage


def stages() -> list[Stage]:
    """Every stage, in pipeline order."""
    for module in IMPLEMENTATIONS:
        importlib.import_module(module)
    missing = [n for n in ORDER if n not in _STAGES]
    if missing:
        raise RuntimeError(f"stages without an implementation: {missing}")
    return [_STAGES[n] for n in ORDER]


def check_stage(name: str | None, option: str) -> None:
    if name is not None and name not in ORDER:
        raise UalmError(f"unknown stage {name!r} for {option}",
                        fix=f"stages are, in order: {', '.join(ORDER)}")


def find_entry(entry: str) -> tuple[Callable[..., Any] | None, str]:
    """`module:function` → (the function, "") or (None, why it is not available)."""
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise UalmError(f"entry point {entry!r} is not `module:function`",
                        fix="write e.g. ualm.synth.run:synthesize")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, f"{module_name} cannot be imported ({exc})"
    function = getattr(module, attr, None)
    if not callable(function):
        return None, f"{module_name} has no `{attr}` yet"
    return function, ""

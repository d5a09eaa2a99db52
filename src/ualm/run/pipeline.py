"""`ualm run`: the stages in order, each skipped when its completion record says it is done with
the same settings, with a progress line per stage and a summary at the end.

A stage runs when it has no valid record for its current hash, when an earlier stage ran in
this invocation (its inputs are new), or when `--from` names it or an earlier stage. `--until`
stops after the named stage. Stages before `--from` must already be complete.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ualm.errors import UalmError
from ualm.run.config import PipelineConfig
from ualm.run.records import (
    Record,
    complete,
    read_record,
    record_path,
    relative,
    stage_hash,
    write_record,
)
from ualm.run.registry import ORDER, Context, check_stage, stages


@dataclass(frozen=True)
class Outcome:
    stage: str
    status: str
    """ran, skipped (complete), off (with why), not reached (after --until), would run."""
    seconds: float = 0.0
    note: str = ""


@dataclass
class PipelineResult:
    run: Path
    outcomes: list[Outcome] = field(default_factory=list)
    outputs: dict[str, dict[str, Path]] = field(default_factory=dict)

    def output(self, stage: str, name: str) -> Path | None:
        return self.outputs.get(stage, {}).get(name)


def run_pipeline(config: PipelineConfig, until: str | None = None, start: str | None = None,
                 stream: TextIO | None = None, progress: bool = True,
                 dry_run: bool = False) -> PipelineResult:
    """Runs (or resumes) the pipeline in `config.run.out`; see the module docstring. With
    `dry_run`, only says which stages would run, and creates nothing."""
    check_stage(until, "--until")
    check_stage(start, "--from")
    if until and start and ORDER.index(until) < ORDER.index(start):
        raise UalmError(f"--until {until} comes before --from {start}",
                        fix=f"stages run in this order: {', '.join(ORDER)}")
    stream = stream or sys.stderr
    run = Path(config.run.out)
    if not dry_run:
        run.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(run)
    upstream, dirty, total = "", False, len(ORDER)
    for number, stage in enumerate(stages(), 1):
        label = f"[run {number}/{total}] {stage.name:<9}"
        off = stage.off(config)
        # Off for any reason (disabled, not installed) means no output: later stages see the
        # same upstream either way, and rerun only when the stage starts producing something.
        digest = stage_hash(stage.name, {"off": True} if off else stage.settings(config), upstream)
        upstream = digest
        if until and ORDER.index(stage.name) > ORDER.index(until):
            result.outcomes.append(Outcome(stage.name, "not reached", note=f"--until {until}"))
            continue
        if off:
            _say(stream, f"{label} off: {off}")
            result.outcomes.append(Outcome(stage.name, "off", note=off))
            continue
        forced = start is not None and ORDER.index(stage.name) >= ORDER.index(start)
        done = complete(run, stage.name, digest)
        if start is not None and not forced and done is None:
            raise UalmError(f"--from {start}: the earlier stage {stage.name} is not complete "
                            "with these settings", fix="run without --from first")
        if done is not None and not forced and not dirty:
            result.outputs[stage.name] = _absolute(run, done)
            result.outcomes.append(Outcome(stage.name, "skipped", note="complete"))
            _say(stream, f"{label} skipped (complete)")
            continue
        if dry_run:
            result.outcomes.append(Outcome(stage.name, "would run", note=stage.description))
            _say(stream, f"{label} would run: {stage.description}")
            dirty = True
            continue
        _say(stream, f"{label} {stage.description} ...")
        previous = read_record(run, stage.name)
        # The old record goes first: a stage that dies half-way must not look complete.
        record_path(run, stage.name).unlink(missing_ok=True)
        ctx = Context(config, run, digest, result.outputs, previous, stream, progress)
        started = time.perf_counter()
        made = stage.run(ctx)
        seconds = time.perf_counter() - started
        record = Record(stage.name, digest, {k: relative(run, p) for k, p in made.outputs.items()},
                        made.summary, round(seconds, 3))
        write_record(run, record)
        result.outputs[stage.name] = _absolute(run, record)
        result.outcomes.append(Outcome(stage.name, "ran", seconds))
        _say(stream, f"{label} done in {seconds:.1f} s")
        dirty = True
    return result


def _absolute(run: Path, record: Record) -> dict[str, Path]:
    return {k: (run / p).resolve() for k, p in record.outputs.items()}


def _say(stream: TextIO, line: str) -> None:
    print(line, file=stream, flush=True)


def format_summary(result: PipelineResult) -> str:
    """Each stage's outcome, then where to look: the report, the WAV, the answer."""
    lines = [f"run folder {result.run}"]
    for o in result.outcomes:
        detail = f"{o.seconds:.1f} s" if o.status == "ran" else o.note
        lines.append(f"  {o.stage:<9} {o.status:<12} {detail}")
    where = (("report", "report", "html"), ("generated WAV", "generate", "wav"),
             ("answer", "generate", "answer"), ("checkpoint", "train", "checkpoint"),
             ("blend spec", "blend", "spec"), ("corpus", "build", "corpus"))
    for label, stage, name in where:
        path = result.output(stage, name)
        if path is not None:
            lines.append(f"{label + ':':<15}{path}")
    answer = result.output("generate", "answer")
    if answer is not None and answer.is_file():
        import json

        from ualm.train.model.choices import describe

        a = json.loads(answer.read_text())
        lines.append(f"{'asked:':<15}{a['question']!r} → {a['answer']!r}"
                     + (f" (expected {a['expected']!r}: {'right' if a.get('right') else 'wrong'})"
                        if a.get("expected") else ""))
        if a.get("heldout"):
            lines.append(f"{'held-out:':<15}{describe(a['heldout'])}")
    return "\n".join(lines)

"""Stages `synth` and `publish`, implemented by other packages (`ualm.synth`, `ualm.publish`)
and called through their configured entry points, so this module names no function of theirs:

    synth:   entry(corpus: Path, out: Path, **options) -> Path | None
             writes reasoning traces (a corpus folder the trainer reads) into `out` and returns
             it; blend and train then use it beside the corpus.
    publish: entry(corpus: Path, to: str, **options) -> Any
             pushes one corpus (called for the corpus and the trace corpus, if any).

Both are off unless enabled; an enabled stage whose entry point is missing is skipped with a
"not available" line, and runs on a later `ualm run` once it exists.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.run.config import EntrySection
from ualm.run.registry import Context, Stage, StageResult, find_entry, register

UNAVAILABLE = "not available"


def _off(section: EntrySection, name: str) -> str | None:
    if not section.enabled:
        return f"{name}.enabled is false"
    function, why = find_entry(section.entry)
    return None if function is not None else f"{UNAVAILABLE}: {why}"


def _call(section: EntrySection, *args: Any, **extra: Any) -> Any:
    function, why = find_entry(section.entry)
    if function is None:  # it was there when the pipeline started
        raise UalmError(f"entry point {section.entry} vanished: {why}", fix="reinstall ualm")
    return function(*args, **{**section.options, **extra})


def _synth(ctx: Context) -> StageResult:
    corpus = ctx.output("build", "corpus")
    if corpus is None:
        raise UalmError("synth needs the corpus of the build stage", fix="enable sources")
    out = ctx.run / "traces"
    made = _call(ctx.config.synth, corpus, out)
    traces = Path(made) if made else out
    if not (traces / "corpus.json").is_file():
        raise UalmError(f"{ctx.config.synth.entry} wrote no corpus at {traces}",
                        fix="check the synth options; the entry must return a corpus folder")
    ctx.say(f"traces: {traces}")
    return StageResult({"traces": traces})


register(Stage("synth", _synth, lambda c: dataclasses.asdict(c.synth),
               off=lambda c: _off(c.synth, "synth"),
               description="reasoning traces from a teacher"))


def _publish(ctx: Context) -> StageResult:
    to = ctx.config.publish.to
    if not to:
        raise UalmError("publish is enabled but publish.to is not set",
                        fix="set publish.to to hf://datasets/ORG/NAME, s3://..., or a folder")
    published = {}
    for stage, name in (("build", "corpus"), ("synth", "traces")):
        folder = ctx.output(stage, name)
        if folder is None:
            continue
        target = to if name == "corpus" else f"{to.rstrip('/')}-{name}"
        _call(ctx.config.publish, folder, target)
        published[name] = target
        ctx.say(f"published {folder} → {target}")
    # A stage must leave a path behind; the record of what went where is that path.
    receipt = ctx.run / "outputs" / "published.txt"
    receipt.parent.mkdir(parents=True, exist_ok=True)
    receipt.write_text("".join(f"{k}\t{v}\n" for k, v in published.items()))
    return StageResult({"receipt": receipt}, {"published": published})


register(Stage("publish", _publish, lambda c: dataclasses.asdict(c.publish),
               off=lambda c: _off(c.publish, "publish"),
               description="push the corpora to the Hub or an object store"))

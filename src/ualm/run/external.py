"""Stages `synth` and `publish`, implemented by other packages (`ualm.synth`, `ualm.publish`)
and called through their configured entry points, so this module names no function of theirs:

    synth:   entry(corpus: Path, **options) -> Any
             writes reasoning traces and preference pairs into the corpus (`traces/`,
             `pairs/`, their manifests and `synth/funnel.json`); blend and train find them there.
    publish: entry(corpus: Path, to: str, **options) -> Any
             pushes the corpus, traces included.

Both are off unless enabled; an enabled stage whose entry point is missing is skipped with a
"not available" line, and runs on a later `ualm run` once it exists.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.manifests import names
from ualm.manifests.layout import CorpusLayout
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
    _call(ctx.config.synth, corpus)
    layout = CorpusLayout(corpus)
    funnel = Path(layout.synth(names.SYNTH_FUNNEL))
    if not layout.exists(str(funnel)):
        raise UalmError(f"{ctx.config.synth.entry} wrote no trace funnel at {funnel}",
                        fix="check the synth options; the entry must write traces into the corpus")
    ctx.say(f"traces: {layout.shard_folder('traces')} (funnel: {funnel.with_suffix('.png')})")
    return StageResult({"funnel": funnel})


register(Stage("synth", _synth, lambda c: dataclasses.asdict(c.synth),
               off=lambda c: _off(c.synth, "synth"),
               description="reasoning traces from a teacher"))


def _publish(ctx: Context) -> StageResult:
    to = ctx.config.publish.to
    if not to:
        raise UalmError("publish is enabled but publish.to is not set",
                        fix="set publish.to to hf://datasets/ORG/NAME, s3://..., or a folder")
    folder = ctx.output("build", "corpus")
    if folder is None:
        raise UalmError("publish needs the corpus of the build stage", fix="enable sources")
    _call(ctx.config.publish, folder, to)
    published = {"corpus": to}
    ctx.say(f"published {folder} → {to}")
    # A stage must leave a path behind; the record of what went where is that path.
    receipt = ctx.run / "outputs" / "published.txt"
    receipt.parent.mkdir(parents=True, exist_ok=True)
    receipt.write_text("".join(f"{k}\t{v}\n" for k, v in published.items()))
    return StageResult({"receipt": receipt}, {"published": published})


register(Stage("publish", _publish, lambda c: dataclasses.asdict(c.publish),
               off=lambda c: _off(c.publish, "publish"),
               description="push the corpora to the Hub or an object store"))

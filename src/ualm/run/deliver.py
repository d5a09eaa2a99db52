"""Stage `report`: the corpus, the traces and the training run on one HTML page."""

from __future__ import annotations

import dataclasses

from ualm.run.registry import Context, Stage, StageResult, register
from ualm.train import STAGES


def _report(ctx: Context) -> StageResult:
    from ualm.report import write_report

    runs = [ctx.output("train", f"{name}_run") for name in STAGES]
    runs = [r for r in runs if r is not None] or [ctx.output("train", "run")]
    folders = [ctx.output("build", "corpus"), *runs]
    out = write_report([f for f in folders if f is not None], ctx.run / "report.html",
                       samples=ctx.config.report.samples)
    ctx.say(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return StageResult({"html": out})


register(Stage("report", _report, lambda c: dataclasses.asdict(c.report),
               description="one self-contained HTML page"))

"""`ualm blend fit`'s proxy runs (the RegMix recipe in `ualm.train.blend.fit`): K mixtures drawn
from a Dirichlet distribution, a small proxy model trained on each with the lean trainer and
scored on held-out corpora, and the regression fitted over them picking the written spec.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.train.blend.fit import (
    FitOptions,
    _named,
    _normalised,
    _predict,
    _r2,
    _ridge,
    plot_fit,
)
from ualm.train.blend.spec import BlendSpec
from ualm.train.blend.stats import CorpusStats
from ualm.train.blend.weights import Pool, _source_spec, pools


def fit_blend(corpora: Sequence[str], heldout: Sequence[str], stats: CorpusStats,
              options: FitOptions, workdir: str | Path) -> tuple[BlendSpec, dict[str, Any]]:
    """Runs the proxies (resuming any that finished), fits, and returns the spec and a report."""
    active = [p for p in pools(stats) if p.tokens > 0]
    if len(active) < 2:
        raise UalmError("a mixture needs at least two sources with tokens",
                        fix="pass corpora with several sources, or use `ualm blend`")
    if options.proxies < 2:
        raise UalmError("--proxies must be at least 2", fix="raise --proxies")
    rng = np.random.default_rng(options.seed)
    mixtures = rng.dirichlet([options.alpha] * len(active), size=options.proxies)
    workdir = Path(workdir)
    measured = [_proxy_losses(corpora, heldout, stats, active, mixture, options,
                              workdir / f"proxy-{k:03d}") for k, mixture in enumerate(mixtures)]
    tasks = sorted({task for losses in measured for task in losses})
    weights = dict(options.task_weights or {t: 1.0 for t in tasks})
    unknown = set(weights) - set(tasks)
    if unknown:
        raise UalmError(f"task weights name tasks the held-out corpora do not have: "
                        f"{', '.join(sorted(unknown))}", fix=f"tasks measured: {', '.join(tasks)}")
    fits = {task: _ridge(mixtures, np.array([m.get(task, np.nan) for m in measured]),
                         options.ridge) for task in tasks}
    candidates = rng.dirichlet([options.alpha] * len(active), size=options.candidates)
    objective = sum(weights.get(t, 0.0) * _predict(fits[t], candidates) for t in tasks)
    best = candidates[int(np.argmin(objective))]
    predicted = {t: float(_predict(fits[t], best[None])[0]) for t in tasks}
    budget = options.budget or sum(p.tokens for p in active)
    report = {
        "proxies": [{"mixture": _named(active, m), "heldout_loss": losses}
                    for m, losses in zip(mixtures, measured, strict=True)],
        "fit_r2": {t: round(_r2(fits[t], mixtures, [m.get(t) for m in measured]), 4)
                   for t in tasks},
        "task_weights": weights, "predicted_loss": predicted, "mixture": _named(active, best),
    }
    spec = BlendSpec(
        sources=tuple(_source_spec(p, float(w), budget) for p, w in zip(active, best,
                                                                           strict=True)),
        corpora=stats.corpora, targets={}, budget_tokens=budget, tokenizer=stats.tokenizer,
        notes=(f"fitted by `ualm blend fit` from {options.proxies} proxies of "
               f"{options.steps} steps ({options.config}); predicted held-out loss "
               + ", ".join(f"{t} {v:.4f}" for t, v in predicted.items()),
               "fit R^2 per task: " + ", ".join(f"{t} {v}" for t, v in
                                                report["fit_r2"].items())))
    spec = _normalised(spec)
    report["plot"] = str(plot_fit(fits, mixtures, measured, workdir / "fit.png"))
    (workdir / "fit.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return spec, report


def _proxy_losses(corpora: Sequence[str], heldout: Sequence[str], stats: CorpusStats,
                  active: list[Pool], mixture: np.ndarray, options: FitOptions,
                  out: Path) -> dict[str, float]:
    from ualm.train.config import TrainConfig
    from ualm.train.model.evaluate import evaluate
    from ualm.train.model.module import load_trained
    from ualm.train.trainer import train

    done = out / "heldout.json"
    if done.is_file():  # a finished proxy is not trained again
        return json.loads(done.read_text())
    config = TrainConfig.from_yaml(options.config)
    config = dataclasses.replace(config, run=dataclasses.replace(
        config.run, max_steps=options.steps, seed=options.seed, progress_bar=False,
        checkpoint_every=max(options.steps, 1)))
    spec = _normalised(BlendSpec(
        sources=tuple(_source_spec(p, float(w), 1) for p, w in zip(active, mixture, strict=True)),
        corpora=stats.corpora, tokenizer=stats.tokenizer))
    result = train(corpora, config, out, blend=spec)
    if result.checkpoint is None:
        raise UalmError(f"proxy run {out} left no checkpoint", fix="see its logs")
    model = load_trained(result.checkpoint)
    scores = evaluate(model, heldout, seq_len=config.data.seq_len,
                      batch_size=config.data.batch_size, codec_id=stats.codec_id)
    losses = {task: round(row["loss"], 6) for task, row in scores["tasks"].items()}
    done.write_text(json.dumps(losses, sort_keys=True))
    return losses

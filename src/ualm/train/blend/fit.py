"""`ualm blend fit`: the mixture that minimises predicted held-out loss, fitted from proxy runs
(the RegMix recipe: Liu et al., 2024).

1. K mixtures over the sources are drawn from a Dirichlet distribution (seeded).
2. A small proxy model is trained on each with the lean trainer for S steps, and its loss per
   task is measured on held-out corpora.
3. Per task, a ridge regression maps mixture weights to that loss.
4. Many more Dirichlet mixtures are scored by the regressions; the one with the lowest
   predicted loss (tasks weighted as asked) is written as a blend spec, with its predicted
   losses, the fit's quality and a plot of fitted against measured loss.

The same command runs on a laptop with tiny proxies (K=4, S=30) and on a GPU cluster with the
1.5B preset and larger K and S: only the options change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.train.blend.spec import BlendSpec
from ualm.train.blend.stats import CorpusStats
from ualm.train.blend.weights import Pool, _source_spec, pools


@dataclass(frozen=True)
class FitOptions:
    proxies: int = 6
    """Proxy runs (K): at least one more than the sources, for the regression to be determined."""
    steps: int = 50
    """Optimizer steps per proxy (S)."""
    config: str = "tiny"
    """Trainer config of the proxies: a preset name or a YAML file."""
    seed: int = 0
    alpha: float = 1.0
    """Dirichlet concentration of the sampled mixtures (1: uniform over the simplex)."""
    candidates: int = 20000
    """Mixtures scored by the fitted regressions."""
    ridge: float = 1e-3
    task_weights: Mapping[str, float] | None = None
    """Weight of each task's predicted loss in the objective (default: equal)."""
    budget: int | None = None
    """Tokens the written spec plans for (default: one pass over all sources)."""


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


def _normalised(spec: BlendSpec) -> BlendSpec:
    """Weights rounded for people, still summing to exactly 1 (the last absorbs the rest)."""
    weights = [round(s.weight, 6) for s in spec.sources]
    weights[-1] = round(1.0 - sum(weights[:-1]), 6)
    sources = tuple(dataclasses.replace(s, weight=w) for s, w in zip(spec.sources, weights,
                                                                      strict=True))
    return dataclasses.replace(spec, sources=sources)


def _design(mixtures: np.ndarray) -> np.ndarray:
    return np.hstack([mixtures, np.ones((len(mixtures), 1))])


def _ridge(mixtures: np.ndarray, losses: np.ndarray, ridge: float) -> np.ndarray:
    keep = np.isfinite(losses)
    x, y = _design(mixtures[keep]), losses[keep]
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def _predict(coefficients: np.ndarray, mixtures: np.ndarray) -> np.ndarray:
    return _design(mixtures) @ coefficients


def _r2(coefficients: np.ndarray, mixtures: np.ndarray, losses: Sequence[float | None]) -> float:
    y = np.array([np.nan if v is None else v for v in losses], dtype=float)
    keep = np.isfinite(y)
    residual = y[keep] - _predict(coefficients, mixtures[keep])
    spread = float(np.sum((y[keep] - y[keep].mean()) ** 2))
    return 1.0 - float(np.sum(residual ** 2)) / spread if spread > 0 else 1.0


def _named(active: list[Pool], mixture: np.ndarray) -> dict[str, float]:
    return {f"{p.task}:{p.name}": round(float(w), 6) for p, w in zip(active, mixture,
                                                                      strict=True)}


def plot_fit(fits: Mapping[str, np.ndarray], mixtures: np.ndarray,
             measured: Sequence[Mapping[str, float]], png: Path) -> Path:
    """Fitted against measured held-out loss, one colour per task, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    values: list[float] = []
    for task, coefficients in fits.items():
        y = np.array([m.get(task, np.nan) for m in measured], dtype=float)
        keep = np.isfinite(y)
        fitted = _predict(coefficients, mixtures[keep])
        axes.scatter(y[keep], fitted, label=task)
        values.extend([*y[keep], *fitted])
    if values:
        low, high = min(values), max(values)
        axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set_xlabel("measured held-out loss")
    axes.set_ylabel("fitted held-out loss")
    axes.set_title("blend fit: proxies")
    axes.legend()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return png

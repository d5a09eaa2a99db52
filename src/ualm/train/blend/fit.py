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

This module holds the options, the regression and the plot; `fit_blend`, which trains the
proxies, is above the trainer (`ualm.train.stages.proxies`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ualm.train.blend.spec import BlendSpec
from ualm.train.blend.weights import Pool


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

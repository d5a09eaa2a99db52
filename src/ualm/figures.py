"""The report's pictures, each drawn with matplotlib into PNG bytes (no files, so the page can
inline them). PNG metadata is left out so the same data gives the same bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

KEPT, LOST, PLAN, GOT = "#2a9d8f", "#e76f51", "#8ab17d", "#264653"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def funnel(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Hours by outcome: decoded, each loss (reason, duplicates), kept: `ualm inspect`'s rows."""
    plt = _pyplot()
    rows = list(rows)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.4))
    names = [r["outcome"] for r in rows]
    hours = [r["hours"] for r in rows]
    ax.barh(names, hours, color=[KEPT if n in ("kept", "decoded") else LOST for n in names])
    for y, row in enumerate(rows):
        count = f" · {row['count']:,} {row['level']}" if row.get("count") else ""
        ax.text(row["hours"], y, f" {row['hours']:.3g} h{count}", va="center", fontsize=9)
    ax.set_xlabel("hours")
    ax.set_title(title)
    ax.margins(x=0.25)
    return _png(fig)


def histogram(values: Sequence[float], xlabel: str, title: str, bins: int = 30) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(list(values), bins=bins, color=GOT)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)


def bars(counts: dict[str, float], xlabel: str, title: str) -> bytes:
    """Horizontal bars, largest first (at most 25; the rest summed as `other`)."""
    plt = _pyplot()
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > 25:
        items = [*items[:24], ("other", sum(v for _, v in items[24:]))]
    items = items[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(items) + 1.3))
    ax.barh([k for k, _ in items], [v for _, v in items], color=GOT)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def blend(rows: Sequence[dict[str, Any]]) -> bytes:
    """Per source, the planned token share beside the realised one."""
    plt = _pyplot()
    rows = list(rows)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["spec"] or 0 for r in rows], height=0.4, color=PLAN,
            label="spec")
    ax.barh([y - 0.2 for y in ys], [r["realised"] or 0 for r in rows], height=0.4, color=GOT,
            label="realised")
    ax.set_yticks(list(ys), [r["source"] for r in rows])
    ax.set_xlabel("share of training tokens")
    ax.set_title("Blend: spec against realised")
    ax.legend()
    return _png(fig)


def losses(series: dict[str, dict[str, list[tuple[int, float]]]]) -> bytes:
    """Loss against step; `series` is {'train': {'loss': [...], 'loss_text': ...}, 'val': ...}.
    Validation curves are dashed, in the colour of their training curve."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[str, str] = {}
    palette = iter(["#264653", "#e76f51", "#2a9d8f", "#e9c46a", "#8e44ad", "#7f8c8d"] * 4)
    for split, curves in series.items():
        for name, points in curves.items():
            if not points:
                continue
            colour = colours.setdefault(name, next(palette))
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, color=colour, linestyle="--" if split == "val" else "-",
                    marker="o" if len(points) == 1 else None,
                    linewidth=2 if name == "loss" else 1, label=f"{split} {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def preference(history: Sequence[dict[str, float]]) -> bytes:
    """A DPO run on its held-out pairs: the implicit reward's accuracy (left axis) and the
    reward margin, chosen minus rejected (right axis), against step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["accuracy"] for h in history], color="#264653", marker="o",
            label="accuracy")
    ax.axhline(0.5, color="#7f8c8d", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("implicit-reward accuracy")
    margin = ax.twinx()
    margin.plot(steps, [h["margin"] for h in history], color="#e76f51", marker="s",
                label="reward margin")
    margin.set_ylabel("reward margin (chosen - rejected)")
    ax.grid(alpha=0.3)
    lines = ax.get_lines()[:1] + margin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    return _png(fig)

"""`ualm inspect`: the accounting of a corpus, recomputed from its parquet manifests.

`inputs == kept + rejected + duplicates` is checked, not assumed: `inputs` comes from the listing
recorded at build time, the three outcomes from three different manifests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout

PARTS_AT_ONCE = 32


def manifest_parts(layout: CorpusLayout, kind: str, table_schema: Any,
                   columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    """The manifest parts of `kind` in name order, a batch at a time, as columns of Python
    values: a summary's memory does not grow with the corpus, and a store answers a batch's
    reads at once (one round of concurrent GETs, not one wait per part)."""
    files = layout.list(layout.manifest_folder(kind), suffix=".parquet")
    for start in range(0, len(files), PARTS_AT_ONCE):
        table = layout.read_table(files[start:start + PARTS_AT_ONCE], columns,
                                  schema=table_schema)
        yield {name: table.column(name).to_pylist() for name in columns}


def summarize(corpus: str | Path | CorpusLayout,
              expected_inputs: int | None = None) -> dict[str, Any]:
    """Counts, reasons and the funnel in hours, from the manifests of a corpus folder (or of a
    published corpus: an hf:// or s3:// URL). Streams the manifests part by part: memory is one
    part, a bit per input (which inputs kept a sample) and a name per shard."""
    layout = corpus if isinstance(corpus, CorpusLayout) else CorpusLayout(corpus)
    root = layout.location
    if expected_inputs is None:
        meta = layout.meta(fix="run `ualm build` on it first, or point at a corpus folder (or "
                               "at a URL that `ualm publish` finished)")
        expected_inputs = meta["inputs"]["rows"]
    kept = np.zeros(max(expected_inputs, 1), dtype=bool)
    seconds, samples = 0.0, Counter[str]()
    shards: dict[str, set[str]] = defaultdict(set)
    sources = Counter[str]()
    for part in manifest_parts(layout, "samples", schema.SAMPLES,
                               ["input_index", "modality", "seconds", "shard", "source"]):
        index = np.asarray(part["input_index"], dtype=np.int64)
        if index.size and index.max() >= kept.size:  # never for a corpus that adds up
            kept = np.concatenate([kept, np.zeros(int(index.max()) + 1 - kept.size, bool)])
        kept[index] = True
        for secs in part["seconds"]:
            seconds += secs
        for modality, shard in zip(part["modality"], part["shard"], strict=True):
            samples[modality] += 1
            shards[modality].add(shard)
        sources.update(part["source"])
    funnel: dict[str, dict[str, Any]] = {}
    reasons, dropped = Counter[str](), Counter[str]()
    by_level = {"input": reasons, "segment": dropped}
    for part in manifest_parts(layout, "rejects", schema.REJECTS, ["level", "reason", "seconds"]):
        for level, reason, secs in zip(part["level"], part["reason"], part["seconds"],
                                       strict=True):
            if (counts := by_level.get(level)) is not None:  # one read of each part, not two
                counts[reason] += 1
                _add(funnel, reason, secs, "input" if level == "input" else "window")
    kinds = Counter[str]()
    for part in manifest_parts(layout, "duplicates", schema.DUPLICATES, ["seconds", "kind"]):
        for secs, kind in zip(part["seconds"], part["kind"], strict=True):
            kinds[kind or "dedup/exact"] += 1
            _add(funnel, "duplicate", secs, "input")
    kept_inputs, rejected, duplicates = int(kept.sum()), sum(reasons.values()), kinds.total()
    return {
        "corpus": root,
        "inputs": expected_inputs,
        "kept": kept_inputs,
        "rejected": rejected,
        "duplicates": duplicates,
        "duplicate_kinds": dict(sorted(kinds.items())),
        "accounted": kept_inputs + rejected + duplicates == expected_inputs,
        "reasons": dict(sorted(reasons.items())),
        "dropped_windows": dict(sorted(dropped.items())),
        "samples": samples.total(),
        "audio_samples": samples["audio"],
        "text_samples": samples["text"],
        "hours": round(seconds / 3600, 6),
        "shards": len(shards["audio"]),
        "text_shards": len(shards["text"]),
        "sources": dict(sorted(sources.items())),
        "funnel_hours": _funnel(seconds, funnel),
    }


def _add(rows: dict[str, dict[str, Any]], name: str, secs: float | None, level: str) -> None:
    row = rows.setdefault(name, {"outcome": name, "level": level, "hours": 0.0, "count": 0})
    row["hours"] += (secs or 0.0) / 3600
    row["count"] += 1


def _funnel(kept_seconds: float, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Hours by outcome, largest losses first; rejected inputs whose length is unknown (they
    never decoded) count as 0 h but keep their input count."""
    losses = sorted(rows.values(), key=lambda r: (-r["hours"], r["outcome"]))
    total = kept_seconds / 3600 + sum(r["hours"] for r in losses)
    out = [{"outcome": "decoded", "level": "all", "hours": total, "count": None}, *losses,
           {"outcome": "kept", "level": "all", "hours": kept_seconds / 3600, "count": None}]
    for row in out:
        row["hours"] = round(row["hours"], 6)
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The same numbers as `--json`, laid out for a person."""
    lines = [
        f"corpus   {summary['corpus']}",
        f"inputs   {summary['inputs']:,} = kept {summary['kept']:,} + rejected "
        f"{summary['rejected']:,} + duplicates {summary['duplicates']:,}"
        + ("" if summary["accounted"] else "   (!) DOES NOT ADD UP"),
        f"samples  {summary['samples']:,} ({summary['audio_samples']:,} audio in "
        f"{summary['shards']} shards, {summary['text_samples']:,} text in "
        f"{summary['text_shards']} shards)",
        f"hours    {summary['hours']:.3f} kept",
        "",
        "funnel (hours)",
    ]
    for row in summary["funnel_hours"]:
        sign = {"decoded": " ", "kept": "="}.get(row["outcome"], "-")
        count = f"  {_count(row)}" if row["count"] else ""
        lines.append(f"  {sign} {row['outcome']:<28} {row['hours']:>10.3f} h{count}")
    if summary["reasons"]:
        lines += ["", "rejected inputs by reason"]
        lines += [f"  {reason:<30} {n:>8,}" for reason, n in summary["reasons"].items()]
    return "\n".join(lines)


def _count(row: dict[str, Any]) -> str:
    return f"{row['count']:,} {row['level']}{'' if row['count'] == 1 else 's'}"


def plot_funnel(summary: dict[str, Any], path: str | Path) -> Path:
    """The funnel in hours as a horizontal bar chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["funnel_hours"]
    rows = rows[::-1]
    names = [r["outcome"] for r in rows]
    hours = [r["hours"] for r in rows]
    colours = ["#2a9d8f" if n in ("kept", "decoded") else "#e76f51" for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ax.barh(names, hours, color=colours)
    for y, row in enumerate(rows):
        label = f" {row['hours']:.3g} h" + (f" · {_count(row)}" if row["count"] else "")
        ax.text(row["hours"], y, label, va="center", fontsize=9)
    ax.set_xlabel("hours")
    ax.set_title(f"Funnel: {summary['inputs']:,} inputs → {summary['samples']:,} samples")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

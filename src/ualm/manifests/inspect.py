"""`ualm inspect`: the accounting of a corpus, recomputed from its parquet manifests.

`inputs == kept + rejected + duplicates` is checked, not assumed: `inputs` comes from the listing
recorded at build time, the three outcomes from three different manifests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout


def _read(layout: CorpusLayout, kind: str, table_schema: Any,
          columns: list[str]) -> list[dict[str, Any]]:
    table = layout.folder_table(layout.manifest_folder(kind), columns, schema=table_schema)
    return [] if table is None else table.to_pylist()


def summarize(corpus: str | Path | CorpusLayout,
              expected_inputs: int | None = None) -> dict[str, Any]:
    """Counts, reasons and the funnel in hours, from the manifests of a corpus folder (or of a
    published corpus: an hf:// or s3:// URL)."""
    layout = corpus if isinstance(corpus, CorpusLayout) else CorpusLayout(corpus)
    root = layout.location
    if expected_inputs is None:
        meta = layout.meta(fix="run `ualm build` on it first, or point at a corpus folder (or "
                               "at a URL that `ualm publish` finished)")
        expected_inputs = meta["inputs"]["rows"]
    samples = _read(layout, "samples", schema.SAMPLES,
                    ["input_index", "modality", "seconds", "shard", "source"])
    rejects = _read(layout, "rejects", schema.REJECTS, ["level", "reason", "seconds"])
    duplicates = _read(layout, "duplicates", schema.DUPLICATES, ["seconds", "kind"])

    kept_inputs = len({s["input_index"] for s in samples})
    input_rejects = [r for r in rejects if r["level"] == "input"]
    window_drops = [r for r in rejects if r["level"] == "segment"]
    seconds = sum(s["seconds"] for s in samples)
    shards: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        shards[s["modality"]].add(s["shard"])
    funnel = _funnel(seconds, input_rejects, window_drops, duplicates)
    counted = kept_inputs + len(input_rejects) + len(duplicates)
    return {
        "corpus": root,
        "inputs": expected_inputs,
        "kept": kept_inputs,
        "rejected": len(input_rejects),
        "duplicates": len(duplicates),
        "duplicate_kinds": dict(sorted(Counter(d["kind"] or "dedup/exact"
                                               for d in duplicates).items())),
        "accounted": counted == expected_inputs,
        "reasons": dict(sorted(Counter(r["reason"] for r in input_rejects).items())),
        "dropped_windows": dict(sorted(Counter(r["reason"] for r in window_drops).items())),
        "samples": len(samples),
        "audio_samples": sum(1 for s in samples if s["modality"] == "audio"),
        "text_samples": sum(1 for s in samples if s["modality"] == "text"),
        "hours": round(seconds / 3600, 6),
        "shards": len(shards["audio"]),
        "text_shards": len(shards["text"]),
        "sources": dict(sorted(Counter(s["source"] for s in samples).items())),
        "funnel_hours": funnel,
    }


def _funnel(kept_seconds: float, input_rejects: list[dict], window_drops: list[dict],
            duplicates: list[dict]) -> list[dict[str, Any]]:
    """Hours by outcome, largest losses first; rejected inputs whose length is unknown (they
    never decoded) count as 0 h but keep their input count."""
    rows: dict[str, dict[str, Any]] = {}

    def add(name: str, secs: float | None, level: str) -> None:
        row = rows.setdefault(name, {"outcome": name, "level": level, "hours": 0.0, "count": 0})
        row["hours"] += (secs or 0.0) / 3600
        row["count"] += 1

    for r in input_rejects:
        add(r["reason"], r["seconds"], "input")
    for r in window_drops:
        add(r["reason"], r["seconds"], "window")
    for d in duplicates:
        add("duplicate", d["seconds"], "input")
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

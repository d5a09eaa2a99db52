"""Writing synthesis results into the corpus: trace and pair shards with their manifest parts,
MinHash dedup of traces, and the funnel (JSON and PNG).

    traces/traces-000000.tar          <key>.json + <key>.audio0.npy [+ <key>.audio1.npy]
    manifests/traces/part-000000.parquet   one row per trace, one part per shard
    pairs/pairs-000000.tar            <key>.json + <key>.chosen.npy + <key>.rejected.npy
    manifests/pairs/part-000000.parquet
    synth/funnel.json, synth/funnel.png, synth/rejects.parquet, synth/duplicates.parquet

A rerun rewrites these whole (same inputs, config and replies give the same bytes) and removes
shards and parts a larger earlier run left behind.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ualm.filters.caption_minhash import NUM_PERM, as_minhash, caption_signature, jaccard_distance
from ualm.manifests import names
from ualm.manifests.atomic import remove_temporaries
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.schema import table
from ualm.manifests.shards import plan_shards

TRACES = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("source", pa.string()),
    ("task", pa.string()), ("kind", pa.string()), ("teacher", pa.string()),
    ("template_sha256", pa.string()), ("source_keys", pa.list_(pa.string())),
    ("n_audio", pa.int32()), ("codec_id", pa.string()),
])
PAIRS = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("source", pa.string()),
    ("task", pa.string()), ("caption", pa.string()), ("chosen_key", pa.string()),
    ("rejected_key", pa.string()), ("chosen_score", pa.float64()),
    ("rejected_score", pa.float64()), ("margin", pa.float64()), ("scorer", pa.string()),
    ("codec_id", pa.string()),
])
REJECTS = pa.schema([
    ("key", pa.string()), ("kind", pa.string()), ("source_keys", pa.list_(pa.string())),
    ("reason", pa.string()), ("detail", pa.string()),
])
DUPLICATES = pa.schema([
    ("key", pa.string()), ("kind", pa.string()), ("duplicate_of", pa.string()),
    ("similarity", pa.float64()),
])
BANDS = 16


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()


def write_set(root: Path, name: str, samples: Sequence[dict[str, Any]],
              rows: Sequence[dict[str, Any]], schema: pa.Schema, max_samples: int) -> int:
    """Shards `<name>/<name>-%06d.tar` and parts `manifests/<name>/part-%06d.parquet`, samples
    in the given order; rows[i] describes samples[i] and gets its `shard`. Returns the shards
    written."""
    layout = CorpusLayout(root)
    ranges = plan_shards([0] * len(samples), max_samples, 1)
    for index, (start, stop) in enumerate(ranges):
        shard = layout.shard(name, index)
        with layout.shard_writer(shard) as writer:
            for sample in samples[start:stop]:
                writer.write(sample)
        part = [{**row, "shard": layout.relative(shard)} for row in rows[start:stop]]
        layout.write_table(layout.part(name, index), table(part, schema))
    _remove_stale(layout, layout.shard_folder(name), f"{name}-", ".tar", len(ranges))
    _remove_stale(layout, layout.manifest_folder(name), "part-", ".parquet", len(ranges))
    for folder in (layout.shard_folder(name), layout.manifest_folder(name)):
        remove_temporaries(folder, layout.work, layout.local)  # what a killed run left
    return len(ranges)


def _remove_stale(layout: CorpusLayout, folder: str, prefix: str, suffix: str,
                  count: int) -> None:
    for path in layout.list(folder, prefix, suffix):
        index = path.rsplit("/", 1)[-1][len(prefix):-len(suffix)]
        if index.isdigit() and int(index) >= count:
            layout.remove(path)


def near_duplicates(texts: Sequence[str], threshold: float) -> dict[int, tuple[int, float]]:
    """index -> (index of the earlier trace it repeats, estimated similarity), for texts whose
    MinHash similarity to an earlier kept text is at least `threshold`. Candidates come from
    `datasketch`'s LSH index (BANDS bands); the first kept match in input order wins, so the
    result is deterministic."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    signatures: dict[int, Any] = {}
    out: dict[int, tuple[int, float]] = {}
    for i, text in enumerate(texts):
        signature = caption_signature([text])
        if signature is None:
            continue
        minhash = as_minhash(signature)
        similar = ((j, 1.0 - jaccard_distance(signature, signatures[j]))
                   for j in sorted(lsh.query(minhash)))
        match = next(((j, s) for j, s in similar if s >= threshold), None)
        if match is not None:
            out[i] = match
            continue
        signatures[i] = signature
        lsh.insert(i, minhash)
    return out


def write_funnel(root: str | Path, funnel: dict[str, Any]) -> tuple[str, str]:
    """synth/funnel.json and a bar chart of it, synth/funnel.png (full names)."""
    layout = CorpusLayout(root)
    json_path = layout.synth(names.SYNTH_FUNNEL)
    png_path = layout.synth(names.SYNTH_FUNNEL_PLOT)
    layout.write_json(json_path, funnel)
    picture = io.BytesIO()
    plot_funnel(funnel, picture)
    layout.write_bytes(png_path, picture.getvalue())
    return json_path, png_path


def plot_funnel(funnel: dict[str, Any], path: Path | BinaryIO) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted(funnel["traces"])
    stages = ["requested", "valid", "repaired", "rejected", "deduplicated", "written"]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    width = 0.8 / max(len(kinds), 1)
    for k, kind in enumerate(kinds):
        counts = funnel["traces"][kind]
        values = [counts[s] if s != "rejected" else sum(counts["rejected"].values())
                  for s in stages]
        bars = ax.bar([i + k * width for i in range(len(stages))], values, width, label=kind)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(stages))], stages)
    ax.set_ylabel("traces")
    ax.set_title(f"trace funnel (teacher {funnel['teacher']})")
    ax.legend(fontsize=8)
    reasons = Counter()
    for counts in funnel["traces"].values():
        reasons.update(counts["rejected"])
    fig.text(0.01, 0.01, "rejected: " + (", ".join(f"{r} {n}" for r, n in sorted(
        reasons.items())) or "none"), fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)

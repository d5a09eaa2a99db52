"""What a report shows, read from corpus folders and training run folders, without drawing.

A corpus is a folder with `corpus.json`; a run is a folder with `logs/metrics.csv` or
`realised_blend.json` (what `ualm train` writes). Everything here is plain data, so the numbers a
report prints can be tested against the manifests directly.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.manifests import schema
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.storage import is_remote
from ualm.train.metrics import read_metrics

SAMPLE_COLUMNS = ["key", "modality", "seconds", "source", "license", "task", "language",
                  "loudness_lufs", "rms_dbfs", "spoken_language", "captions", "shard"]
SCORE_COLUMNS = ("clap_score", "clap_scores")
"""CLAP caption scores, when a build stores them (a float, or one per kept caption)."""


@dataclass
class CorpusFacts:
    """One corpus: its accounting (as `ualm inspect` computes it) and per-sample columns."""

    path: Path
    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    """Kept samples, in manifest order, with SAMPLE_COLUMNS (and CLAP columns when present)."""
    caption_rejects: dict[str, int]
    """Captions dropped from kept inputs, by reason (CLAP, caption checks)."""
    clap_embedded: int
    """Samples with a CLAP embedding: CLAP ran on them."""
    clap_scores: list[float]
    tokens: dict[str, Any]
    """corpus.json's token sets, by codec id."""
    config_hash: str

    @property
    def audio(self) -> list[dict[str, Any]]:
        return [s for s in self.samples if s["modality"] == "audio"]


@dataclass
class RunFacts:
    """One training run folder."""

    path: Path
    metrics: list[dict[str, float]]
    """logs/metrics.csv rows, numbers only (empty cells left out)."""
    realised: dict[str, Any] | None
    blend: dict[str, Any] | None
    """The blend spec the run trained with (blend.yaml in the run folder, or given)."""
    evaluation: dict[str, Any] | None
    """eval.json: held-out loss per task, when the run was evaluated (`ualm run` does)."""
    config: dict[str, Any] = field(default_factory=dict)
    preference: list[dict[str, float]] | None = None
    """dpo_heldout.json: a DPO run's held-out pairs measured by step."""


def is_corpus(path: str | Path) -> bool:
    return CorpusLayout(path).is_complete()


def is_run(path: Path) -> bool:
    return (path / "logs" / "metrics.csv").is_file() or (path / "realised_blend.json").is_file()


def gather_corpus(path: str | Path) -> CorpusFacts:
    path = path if is_remote(path) else Path(path)
    layout = CorpusLayout(path)
    summary = summarize(layout)
    files = layout.manifest_parts("samples")
    dataset = layout.dataset(files) if files else None
    names = set(dataset.schema.names) if dataset is not None else set()
    extra = [c for c in (*SCORE_COLUMNS, "clap_embedding") if c in names]
    samples: list[dict[str, Any]] = []
    if dataset is not None:
        wanted = [c for c in SAMPLE_COLUMNS if c in names] + extra
        samples = dataset.to_table(columns=wanted).to_pylist()
    clap_scores: list[float] = []
    for s in samples:
        for column in SCORE_COLUMNS:
            value = s.pop(column, None)
            values = value if isinstance(value, list) else [value]
            clap_scores += [float(v) for v in values if v is not None and math.isfinite(v)]
    embedded = sum(1 for s in samples if s.pop("clap_embedding", None) is not None)
    corpus = layout.meta()
    return CorpusFacts(path, summary, samples, _caption_rejects(layout), embedded, clap_scores,
                       corpus.get("tokens") or {}, corpus.get("config_hash", ""))


def _caption_rejects(layout: CorpusLayout) -> dict[str, int]:
    table = layout.folder_table(layout.manifest_folder("rejects"), ["level", "reason"],
                                schema=schema.REJECTS)
    if table is None:
        return {}
    rows = table.to_pylist()
    return dict(sorted(Counter(r["reason"] for r in rows if r["level"] == "caption").items()))


def gather_run(path: str | Path, blend: str | Path | None = None) -> RunFacts:
    import yaml

    path = Path(path)
    realised_file = path / "realised_blend.json"
    realised = json.loads(realised_file.read_text()) if realised_file.is_file() else None
    spec_file = Path(blend) if blend else path / "blend.yaml"
    spec = yaml.safe_load(spec_file.read_text()) if spec_file.is_file() else None
    if blend and spec is None:
        raise UalmError(f"blend spec {blend} not found", fix="pass the spec the run trained with")
    eval_file = path / "eval.json"
    evaluation = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    config_file = path / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    heldout_file = path / "dpo_heldout.json"
    preference = json.loads(heldout_file.read_text()) if heldout_file.is_file() else None
    return RunFacts(path, read_metrics(path / "logs" / "metrics.csv"), realised, spec,
                    evaluation, config or {}, preference)


def blend_rows(run: RunFacts) -> list[dict[str, Any]]:
    """Per source (`name/task`): the spec's token share next to the realised one. A source only
    in the spec was never drawn; one only realised was trained on without being planned."""
    planned = {f"{s['name']}/{s['task']}": float(s["weight"])
               for s in (run.blend or {}).get("sources", [])}
    realised = (run.realised or {}).get("sources", {})
    rows = []
    for label in sorted(set(planned) | set(realised)):
        got = realised.get(label, {})
        rows.append({"source": label, "spec": planned.get(label),
                     "realised": got.get("token_share"), "tokens": got.get("tokens", 0),
                     "samples": got.get("samples", 0)})
    return rows


def sources_and_licences(corpus: CorpusFacts) -> list[dict[str, Any]]:
    """Kept samples and hours per (source, licence); a missing licence reads `unspecified`."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for s in corpus.samples:
        key = (s["source"] or "unknown", s.get("license") or "unspecified")
        row = table.setdefault(key, {"source": key[0], "license": key[1], "samples": 0,
                                     "hours": 0.0})
        row["samples"] += 1
        row["hours"] += (s["seconds"] or 0.0) / 3600
    return [table[k] for k in sorted(table)]


def languages(corpus: CorpusFacts, column: str) -> dict[str, int]:
    """Samples per value of a language column; empty when no sample has one (not measured)."""
    counts = Counter(s.get(column) for s in corpus.samples if s.get(column))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

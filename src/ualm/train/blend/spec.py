"""The blend spec: which sources the trainer draws from, and in what proportions (by tokens).

A blend spec is a YAML file that people read and review, so it names everything it depends on:

    ualm_blend: 1                      # format version
    budget_tokens: 2000000             # tokens the weights were planned for
    tokenizer: bytes-v1                # text tokenizer the token counts used
    targets: {understanding: 0.277, generation: 0.331, text: 0.392}
    temperature: 1.0                   # within a task, weight ∝ tokens^(1/T)
    max_epochs: 4.0                    # no source repeats more often within the budget
    min_share: 0.0                     # optional floor on a source's share of its task
    notes:                             # how the budget was chosen; what bound, if anything
      - "budget 2,000,000 tokens (default): one pass at the targets' proportions; ..."
    corpora:
      - path: /data/corpora/sounds     # a corpus folder (or URL) with corpus.json
        corpus_hash: 3f2a...           # sha256 of its corpus.json when the blend was made
        codec_id: encodec_24khz-6kbps-...
    sources:
      - name: audiocaps                # the `source` column of the corpus's samples
        task: generation
        corpus: /data/corpora/sounds
        weight: 0.331                  # share of all training tokens; weights sum to 1
        tokens: 812345                 # tokens in one pass over the source
        samples: 4000
        hours: 11.1
        expected_epochs: 0.82          # weight x budget / tokens
        expected_tokens: 662000        # weight x budget

The trainer samples source `s` with probability proportional to weight_s / mean tokens per sample
of `s`, so that its *token* shares match the weights; and it logs the shares it realised.

`ualm blend` writes these files (the rule that computes the weights is in
`ualm.train.blend.weights`; token counts follow `ualm.train.blend.counting`). A source whose task
has target 0 is listed with weight 0, so the spec shows what was left out. When the targets were
infeasible and the spec was written anyway (`--allow-infeasible`), `notes` names every binding
constraint and the task shares actually planned, which then differ from `targets`.

Loading (`load_blend`) checks the format version, that every task is known, that weights are
non-negative and sum to 1, that no source is listed twice, that every source's corpus is under
`corpora`, and (check_corpora) that each local corpus exists and its corpus.json is unchanged.
A new field or a changed meaning is a new format version.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ualm.errors import UalmError

FORMAT_VERSION = 1
TASKS = ("understanding", "generation", "text", "reasoning")
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CorpusRef:
    path: str
    corpus_hash: str
    codec_id: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    name: str
    task: str
    corpus: str
    weight: float
    tokens: int
    samples: int
    hours: float = 0.0
    expected_epochs: float = 0.0
    expected_tokens: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """A source is identified by (corpus, source name, task)."""
        return (self.corpus, self.name, self.task)

    @property
    def tokens_per_sample(self) -> float:
        return self.tokens / max(self.samples, 1)


@dataclass(frozen=True)
class BlendSpec:
    sources: tuple[SourceSpec, ...]
    corpora: tuple[CorpusRef, ...] = ()
    targets: dict[str, float] = field(default_factory=dict)
    budget_tokens: int = 0
    tokenizer: str = "bytes-v1"
    temperature: float = 1.0
    max_epochs: float | None = None
    min_share: float = 0.0
    notes: tuple[str, ...] = ()
    """Human-readable remarks, e.g. which constraint bound when the targets were infeasible."""

    def task_shares(self) -> dict[str, float]:
        shares: dict[str, float] = {}
        for s in self.sources:
            shares[s.task] = shares.get(s.task, 0.0) + s.weight
        return shares

    def sampling_probabilities(self) -> list[float]:
        """Per source, the probability of drawing its next sample, so that token shares (not
        sample shares) follow the weights."""
        raw = [s.weight / max(s.tokens_per_sample, 1e-9) for s in self.sources]
        total = sum(raw)
        return [r / total for r in raw]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ualm_blend": FORMAT_VERSION,
            "budget_tokens": self.budget_tokens,
            "tokenizer": self.tokenizer,
            "targets": dict(self.targets),
            "temperature": self.temperature,
            "max_epochs": self.max_epochs,
            "min_share": self.min_share,
            "notes": list(self.notes),
            "corpora": [asdict(c) for c in self.corpora],
            "sources": [asdict(s) for s in self.sources],
        }

    def dump(self, path: str | Path) -> None:
        """Writes the spec atomically: a trainer never reads half a spec."""
        from ualm.manifests.layout import atomic_write_bytes

        text = (f"# ualm blend spec (format {FORMAT_VERSION}; see ualm.train.blend.spec)\n"
                + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        atomic_write_bytes(Path(path), text.encode())

    @classmethod
    def from_dict(cls, data: Any, where: str = "blend spec") -> BlendSpec:
        if not isinstance(data, dict):
            raise UalmError(f"{where} is not a mapping", fix="see ualm.train.blend.spec")
        version = data.get("ualm_blend")
        if version != FORMAT_VERSION:
            raise UalmError(f"{where} has format version {version!r}; this ualm reads "
                            f"{FORMAT_VERSION}", fix="recompute it with `ualm blend`")
        try:
            sources = tuple(SourceSpec(**s) for s in data.get("sources") or ())
            corpora = tuple(CorpusRef(**c) for c in data.get("corpora") or ())
        except TypeError as exc:
            raise UalmError(f"{where}: bad source or corpus entry ({exc})",
                            fix="see the format in ualm.train.blend.spec") from exc
        spec = cls(sources=sources, corpora=corpora, targets=dict(data.get("targets") or {}),
                   budget_tokens=int(data.get("budget_tokens") or 0),
                   tokenizer=str(data.get("tokenizer", "bytes-v1")),
                   temperature=float(data.get("temperature", 1.0)),
                   max_epochs=data.get("max_epochs"), min_share=float(data.get("min_share", 0.0)),
                   notes=tuple(data.get("notes") or ()))
        spec.validate(where)
        return spec

    def validate(self, where: str = "blend spec") -> None:
        """Checks what can be checked without the corpora: tasks, weights, duplicates."""
        if not self.sources:
            raise UalmError(f"{where} lists no sources", fix="compute one with `ualm blend`")
        seen: set[tuple[str, str, str]] = set()
        known = {c.path for c in self.corpora}
        for s in self.sources:
            if s.task not in TASKS:
                raise UalmError(f"{where}: source {s.name!r} has unknown task {s.task!r}",
                                fix=f"one of: {', '.join(TASKS)}")
            if not (s.weight >= 0 and math.isfinite(s.weight)):
                raise UalmError(f"{where}: source {s.name!r} has weight {s.weight!r}",
                                fix="weights are shares of tokens, between 0 and 1")
            if s.key in seen:
                raise UalmError(f"{where}: source {s.name!r} ({s.task}) is listed twice",
                                fix="merge the entries")
            if known and s.corpus not in known:
                raise UalmError(f"{where}: source {s.name!r} names corpus {s.corpus!r}, which "
                                f"is not under `corpora`", fix="add the corpus or fix the path")
            seen.add(s.key)
        total = sum(s.weight for s in self.sources)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise UalmError(f"{where}: weights sum to {total:.6f}, not 1",
                            fix="weights are shares of all training tokens")


def load_blend(path: str | Path, check_corpora: bool = True) -> BlendSpec:
    """Reads and validates a spec (a file, or the URL of one published with a corpus); with
    check_corpora, also that every corpus is there (local paths) and unchanged since the blend
    was computed."""
    from ualm.manifests import storage

    try:
        data = yaml.safe_load(storage.read_bytes(path))
    except FileNotFoundError as exc:
        raise UalmError(f"blend spec {path} not found", fix="compute one with `ualm blend`") from exc
    except yaml.YAMLError as exc:
        raise UalmError(f"blend spec {path} is not valid YAML: {exc}",
                        fix="fix the file or recompute it with `ualm blend`") from exc
    spec = BlendSpec.from_dict(data, where=f"blend spec {path}")
    if check_corpora:
        for corpus in spec.corpora:
            current = corpus_hash(corpus.path)
            if current != corpus.corpus_hash:
                raise UalmError(f"blend spec {path}: corpus {corpus.path} has changed since the "
                                f"blend was computed", fix="recompute the blend with `ualm blend`")
    return spec


def corpus_hash(corpus: str | Path) -> str:
    """sha256 of a corpus's corpus.json: it names the config, inputs, counts and token sets.
    A published corpus (hf://, s3://) keeps the bytes, so its hash is the one it was built with."""
    from ualm.manifests.layout import CorpusLayout

    layout = CorpusLayout(corpus)
    try:
        return hashlib.sha256(layout.read_bytes(layout.corpus_file)).hexdigest()
    except FileNotFoundError as exc:
        raise UalmError(f"{corpus} is not a ualm corpus (no corpus.json)",
                        fix="pass corpus folders that `ualm build` wrote") from exc

"""`ualm blend stats`: samples, hours and tokens per source x task x language of some corpora.

Tokens follow the trainer's rule (`ualm.train.blend.counting`): text tokens with the configured
text tokenizer plus audio frames x codebooks of the chosen token set; given the trainer's
sequence length, a sample longer than a sequence counts as the pieces the trainer cuts it into,
or 0 when it is unusable (too long to cut, or malformed), so shares planned on these counts are
the shares the trainer realises. Nothing is decoded: audio
samples are read from the parquet manifests (captions, task, conversation) joined shard by shard
with the token manifests (frames, codebooks); text samples from the text shards' JSON. Memory
holds one shard at a time, whatever the corpus size.

    >>> stats = corpus_stats(["corpora/sounds"])           # doctest: +SKIP
    >>> print(format_stats(stats))                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ualm.errors import UalmError
from ualm.manifests import names
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.shard_reader import load_json, load_npy
from ualm.manifests.storage import is_remote
from ualm.train.blend.counting import sample_task, trained_tokens
from ualm.train.blend.spec import TASKS, CorpusRef, corpus_hash
from ualm.train.sequence.split import Codes
from ualm.train.sequence.text_tokenizer import TextTokenizer, load_text_tokenizer

SAMPLE_COLUMNS = ["key", "source", "task", "language", "seconds", "captions", "extra"]


@dataclass(frozen=True)
class StatsRow:
    """Totals of one source x task x language of one corpus."""

    corpus: str
    source: str
    task: str
    language: str | None
    samples: int
    seconds: float
    text_tokens: int
    audio_tokens: int
    pieces: int = 0
    """Pieces the trainer lays out (a sample cut in three counts three; 0 when not counted)."""
    unusable: int = 0
    """Samples the trainer skips: too long to cut into pieces that fit, or malformed."""

    @property
    def tokens(self) -> int:
        return self.text_tokens + self.audio_tokens

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "source": self.source, "task": self.task,
                "language": self.language, "samples": self.samples,
                "hours": round(self.hours, 6), "tokens": self.tokens,
                "text_tokens": self.text_tokens, "audio_tokens": self.audio_tokens,
                "pieces": self.pieces, "unusable": self.unusable}


@dataclass(frozen=True)
class CorpusStats:
    corpora: tuple[CorpusRef, ...]
    rows: tuple[StatsRow, ...]
    tokenizer: str
    codec_id: str | None
    """The token set audio was counted with (None when no corpus holds audio)."""
    seq_len: int | None = None
    """The training sequence length samples were counted at (None: whole, uncut)."""

    def cut(self) -> tuple[int, int]:
        """(pieces beyond one per usable sample: what cutting added, unusable samples)."""
        used = sum(r.samples - r.unusable for r in self.rows)
        return sum(r.pieces for r in self.rows) - used, sum(r.unusable for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        tasks: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            total = tasks.setdefault(row.task, {"samples": 0, "hours": 0.0, "tokens": 0})
            total["samples"] += row.samples
            total["hours"] += row.hours
            total["tokens"] += row.tokens
        for total in tasks.values():
            total["hours"] = round(total["hours"], 6)
        return {"tokenizer": self.tokenizer, "codec_id": self.codec_id, "seq_len": self.seq_len,
                "corpora": [vars(c) for c in self.corpora],
                "rows": [r.to_dict() for r in self.rows], "tasks": tasks,
                "tokens": sum(r.tokens for r in self.rows)}


def corpus_stats(corpora: Sequence[str | Path], tokenizer: TextTokenizer | None = None,
                 codec_id: str | None = None, seq_len: int | None = None) -> CorpusStats:
    """Counts every sample of `corpora` (local corpus folders) under one text tokenizer and one
    token set (`codec_id`, or the only one the corpora hold), as the trainer uses it at
    `seq_len` (None: every sample whole)."""
    if not corpora:
        raise UalmError("no corpus given", fix="pass one or more corpus folders")
    tokenizer = tokenizer or load_text_tokenizer(None)
    layouts = [CorpusLayout(c if is_remote(c) else Path(c).resolve()) for c in corpora]
    roots = [layout.location for layout in layouts]
    if len(set(roots)) != len(roots):
        raise UalmError("a corpus is given twice", fix="pass each corpus folder once")
    hashes = [corpus_hash(layout.location) for layout in layouts]  # also: each is a corpus
    audio = {layout.location: _token_sets(layout) for layout in layouts if _has_audio(layout)}
    chosen = choose_codec(audio, codec_id)
    totals: dict[tuple[int, str, str, str | None], list[float]] = {}
    for index, layout in enumerate(layouts):
        for meta, seconds, codes in _samples(layout, chosen):
            task = sample_task(meta)
            text_tokens, audio_tokens, pieces = trained_tokens(
                {**meta, "task": task}, codes, tokenizer, _codebooks(codes), seq_len)
            key = (index, str(meta.get("source") or ""), task, meta.get("language"))
            total = totals.setdefault(key, [0, 0.0, 0, 0, 0, 0])
            total[0] += 1
            total[1] += seconds
            total[2] += text_tokens
            total[3] += audio_tokens
            total[4] += pieces
            total[5] += pieces == 0
    rows = tuple(
        StatsRow(roots[i], source, task, language, int(t[0]), t[1], int(t[2]), int(t[3]),
                 int(t[4]), int(t[5]))
        for (i, source, task, language), t in sorted(totals.items(), key=lambda kv: _order(kv[0]))
    )
    refs = tuple(CorpusRef(root, digest, chosen if root in audio else None)
                 for root, digest in zip(roots, hashes, strict=True))
    return CorpusStats(refs, rows, tokenizer.name, chosen, seq_len)


def _codebooks(codes: Codes) -> int:
    if isinstance(codes, np.ndarray):
        return int(codes.shape[0])
    return next((int(a.shape[0]) for a in (codes or {}).values()), 0)


def choose_codec(token_sets: Mapping[str, set[str]], requested: str | None) -> str | None:
    """The token set to count audio with, given each audio-holding corpus's sets: the one asked
    for, or the only one; all corpora must hold it (one model reads one codec)."""
    if not token_sets:
        return requested
    for root, ids in token_sets.items():
        if not ids:
            raise UalmError(f"corpus {root} has audio samples but no token set",
                            fix=f"run `ualm tokenize {root}`")
    if requested is not None:
        for root, ids in token_sets.items():
            if requested not in ids:
                raise UalmError(f"corpus {root} has no token set {requested!r}",
                                fix=f"choose one of: {', '.join(sorted(ids))}, or tokenize it "
                                    "with that codec")
        return requested
    for root, ids in token_sets.items():
        if len(ids) > 1:
            raise UalmError(f"corpus {root} holds several token sets",
                            fix=f"pass --codec-id, one of: {', '.join(sorted(ids))}")
    found = {root: next(iter(ids)) for root, ids in token_sets.items()}
    if len(set(found.values())) > 1:
        listing = ", ".join(f"{cid} in {root}" for root, cid in found.items())
        raise UalmError(f"the corpora were tokenized with different codecs ({listing})",
                        fix="tokenize them all with one codec (`ualm tokenize`) and pass "
                            "--codec-id")
    return next(iter(found.values()))


def _has_audio(layout: CorpusLayout) -> bool:
    return bool(_audio_parts(layout))


def _audio_parts(layout: CorpusLayout) -> list[str]:
    return layout.samples_parts("audio")


def _token_sets(layout: CorpusLayout) -> set[str]:
    return set(layout.meta().get("tokens") or {})


def _samples(layout: CorpusLayout, codec_id: str | None) -> Iterator[tuple[dict, float, Codes]]:
    """(metadata for counting, seconds, codes) of every sample, shard by shard: an audio
    sample's codes are a stand-in of their shape (the layout and the count need no more)."""
    for part in _audio_parts(layout):
        yield from _audio_shard(layout, part, str(codec_id))
    for shard in layout.shard_files("text"):
        with layout.open(shard) as handle, tarfile.open(fileobj=handle) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".json"):
                    yield json.loads(tar.extractfile(member).read()), 0.0, None
    yield from _traces(layout, codec_id)


def _traces(layout: CorpusLayout, codec_id: str | None) -> Iterator[tuple[dict, float, Codes]]:
    """Reasoning traces (`ualm synth`) of the token set: their text and all their audio
    arrays count as tokens; no seconds (their clips are counted as samples already)."""
    for shard in layout.shard_files("traces"):
        for _, parts in layout.iter_samples(shard):
            meta = load_json(parts["json"])
            if meta.get("codec_id") == codec_id:
                arrays = {e[:-4]: load_npy(v) for e, v in parts.items() if e.endswith(".npy")}
                yield meta, 0.0, arrays


def _audio_shard(layout: CorpusLayout, part: str,
                 codec_id: str) -> Iterator[tuple[dict, float, Codes]]:
    shard = names.shard_index(part)
    tokens_part = layout.tokens_part(codec_id, shard)
    if not layout.exists(tokens_part):
        raise UalmError(f"token set {codec_id} of {layout.root} lacks shard {shard}",
                        fix=f"rerun `ualm tokenize {layout.root}` with the same codec")
    sizes = {r["key"]: (r["codebooks"], r["frames"]) for r in layout.read_table(
        tokens_part, columns=["key", "frames", "codebooks"]).to_pylist()}
    for row in layout.read_table(part, columns=SAMPLE_COLUMNS).to_pylist():
        if row["key"] not in sizes:
            raise UalmError(f"sample {row['key']} of {layout.root} has no tokens in {codec_id}",
                            fix=f"rerun `ualm tokenize {layout.root}` with the same codec")
        extra = json.loads(row["extra"] or "{}")
        meta = {**row, "conversations": extra.get("conversations")}
        shape = sizes[row["key"]]  # read-only zeros of the codes' shape, no memory
        yield meta, float(row["seconds"] or 0.0), np.broadcast_to(np.int64(0), shape)


def _order(key: tuple[int, str, str, str | None]) -> tuple:
    index, source, task, language = key
    return (index, TASKS.index(task) if task in TASKS else len(TASKS), task, source,
            language or "")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> str:
    """Columns padded to their widest cell; `align` has one `l` or `r` per column."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                         for c, w, a in zip(row, widths, align, strict=True)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, cells)])


def corpus_label(stats: CorpusStats) -> dict[str, str]:
    """A short name per corpus for tables: its folder name, or the full path if two collide."""
    names = [Path(c.path).name for c in stats.corpora]
    return {c.path: (n if names.count(n) == 1 else c.path)
            for c, n in zip(stats.corpora, names, strict=True)}


def format_stats(stats: CorpusStats) -> str:
    several = len(stats.corpora) > 1
    labels = corpus_label(stats)
    headers = [*(["corpus"] if several else []), "source", "task", "language", "samples",
               "hours", "tokens"]
    body = []
    for r in stats.rows:
        body.append([*([labels[r.corpus]] if several else []), r.source or "-",
                     r.task, r.language or "-", f"{r.samples:,}", f"{r.hours:,.3f}",
                     f"{r.tokens:,}"])
    summary = stats.to_dict()
    lines = [format_table(headers, body, "l" * (len(headers) - 3) + "rrr"), ""]
    total = summary["tokens"]
    for task, t in summary["tasks"].items():
        share = t["tokens"] / total if total else 0.0
        lines.append(f"{task}: {t['samples']:,} samples, "
                     f"{t['hours']:,.3f} h, {t['tokens']:,} tokens ({share:.1%})")
    lines.append(f"tokens counted with text tokenizer {stats.tokenizer}"
                 + (f" and token set {stats.codec_id}" if stats.codec_id else ""))
    if stats.seq_len is not None:
        lines.append(cut_note(stats))
    return "\n".join(lines)


def cut_note(stats: CorpusStats) -> str:
    """One line: the sequence length samples were counted at, and what that cut or left out."""
    extra, unusable = stats.cut()
    return (f"counted as the trainer uses them at seq_len {stats.seq_len}: samples longer are "
            f"cut into pieces ({extra:,} pieces more than samples), {unusable:,} unusable "
            "(0 tokens: too long to cut, or malformed)")

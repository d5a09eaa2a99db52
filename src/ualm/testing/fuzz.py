"""A generated fuzz corpus: hostile inputs derived from valid files of every supported container
(`fuzz_formats`) plus hostile rows, tars and names (`fuzz_rows`), as a regression suite for
`ualm build`: whatever the bytes, every input must end kept, a duplicate or rejected with a
specific reason, and the job must never die for one input.

    >>> corpus = make_fuzz_corpus("fuzz", count=1000, seed=0)  # doctest: +SKIP
    >>> build_corpus(corpus.inputs, "out", allow_roots=corpus.allow_roots)  # doctest: +SKIP

Mutations of each seed: truncations at structural boundaries found by parsing it (chunk, block,
page, frame and atom headers, each +-1 byte), bit flips (in the header or anywhere), absurd
header fields (zero, all ones, the largest signed value: rates, channel counts, sizes, frame
counts), wrong magic (another container's, zeros, a RIFF form that is not WAVE) and huge
metadata blocks (LIST, ID3, FLAC padding, ANNO, free atoms of `metadata_mb`). The same
(count, seed) always writes the same bytes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ualm.testing.fuzz_formats import CONTAINERS, SUFFIX, Seed, fix_checksums, make_seed
from ualm.testing.fuzz_formats import metadata_block as _metadata_block
from ualm.testing.fuzz_rows import DEVICES, hostile_folder, hostile_rows, hostile_tar

__all__ = ["GENERIC_REASONS", "MUTATIONS", "FuzzCase", "FuzzCorpus", "make_fuzz_corpus"]

MUTATIONS = ("truncate", "bit_flip", "header_field", "wrong_magic", "huge_metadata")
GENERIC_REASONS = frozenset({"decode/unexpected_error", "engine/unit_failed"})
"""Reasons that say only that something went wrong: no fuzz input may end with one."""
_MAGICS = (b"fLaC", b"RIFF", b"OggS", b"ID3\x04", b"\xff\xfb\x90\x00", b"caff", b".snd",
           b"FORM", b"\x00\x00\x00\x00", b"\x1aE\xdf\xa3", b"MAC ")


@dataclass(frozen=True)
class FuzzCase:
    """One input, in the order the build lists them: its kind (a mutation or a hostile row's
    kind), the container it came from, and the outcomes it may end with (empty: any specific
    one)."""

    input_id: str
    kind: str
    container: str
    expect: tuple[str, ...] = ()
    path: str = ""
    """A mutated or seed file's path under the corpus's root (empty for other cases)."""


@dataclass
class FuzzCorpus:
    root: Path
    manifest: Path
    tars: list[Path]
    cases: list[FuzzCase] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        """What `ualm build --input` takes, in listing order: the manifest, the tars, then the
        folder."""
        return [str(self.manifest), *(str(t) for t in self.tars), str(self.root / "tree")]

    @property
    def allow_roots(self) -> tuple[str, ...]:
        """The device files the rows name, so that their rows reach the decoder's checks."""
        return DEVICES

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for case in self.cases:
            counts[case.kind] = counts.get(case.kind, 0) + 1
        return dict(sorted(counts.items()))


def make_fuzz_corpus(folder: str | os.PathLike[str], count: int = 1000, seed: int = 0,
                     metadata_mb: float = 2.0, caption_mb: float = 1.0) -> FuzzCorpus:
    """Writes `count` inputs (at least the fixed hostile set, ~70) under `folder` (emptied
    first): seeds and their mutations, hostile rows in `in/manifest.jsonl`, hostile tars in
    `in/tars/`; files out of the allowed root go to `outside/`."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    root = folder / "in"
    rng = random.Random(seed)
    seeds = [make_seed(c, i, root / "seeds") for i, c in enumerate(CONTAINERS)]
    extra_clips = iter(range(len(CONTAINERS), 10_000))

    def valid(name: str) -> str:
        made = make_seed("wav16", next(extra_clips), root / "clips")
        target = root / "clips" / f"{name}.wav"
        target.write_bytes(made.data)
        return target.relative_to(root).as_posix()

    lines: list[bytes] = []
    cases: list[FuzzCase] = []
    for s, number in zip(seeds, range(len(seeds)), strict=True):
        rel = f"seeds/seed-{number:03d}-{s.container}.{SUFFIX[s.container]}"
        lines.append(_row(f"seed-{s.container}", rel))
        cases.append(FuzzCase(f"seed-{s.container}", "seed", s.container, ("kept",), rel))
    for line, kind, expect in hostile_rows(root, folder / "outside", valid, caption_mb):
        lines.append(line)
        cases.append(FuzzCase(_id_of(line, len(lines)), kind, "-", expect))
    tars = [root / "tars" / "hostile-0.tar"]
    tars[0].parent.mkdir(parents=True, exist_ok=True)
    damaged = _truncate(seeds[0], rng)
    tar_cases = hostile_tar(tars[0], (root / valid("tar-audio")).read_bytes(), damaged,
                            caption_mb)
    folder_cases = hostile_folder(root / "tree", folder / "outside",
                                  (root / valid("tree-audio")).read_bytes())
    n_mutations = max(0, count - len(lines) - len(tar_cases) - len(folder_cases))
    for n in range(n_mutations):
        s = seeds[n % len(seeds)]
        kind = MUTATIONS[(n + n // len(seeds)) % len(MUTATIONS)]  # every pair in 70
        data = _MUTATE[kind](s, rng) if kind != "huge_metadata" else _huge(s, rng, metadata_mb)
        rel = f"mutants/{kind}/{n:05d}-{s.container}.{SUFFIX[s.container]}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        case_id = f"{kind}-{n:05d}-{s.container}"
        lines.append(_row(case_id, rel))
        cases.append(FuzzCase(case_id, kind, s.container, (), rel))
    manifest = root / "manifest.jsonl"
    manifest.write_bytes(b"".join(line + b"\n" for line in lines))
    for i, (kind, expect) in enumerate(tar_cases):
        cases.append(FuzzCase(f"tar:{i}", kind, "wav", expect))
    for i, (kind, expect) in enumerate(folder_cases):
        cases.append(FuzzCase(f"tree:{i}", kind, "wav", expect))
    return FuzzCorpus(root, manifest, tars, cases)


def _row(case_id: str, rel: str) -> bytes:
    return json.dumps({"id": case_id, "path": rel, "caption": "a fuzzed sound"}).encode()


def _id_of(line: bytes, number: int) -> str:
    """The id the build gives a row: its own, else `line:N` (a row it cannot read)."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return f"line:{number}"
    ok = isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]
    return row["id"] if ok else f"line:{number}"


def _truncate(seed: Seed, rng: random.Random) -> bytes:
    at = rng.choice(seed.boundaries) + rng.choice((-1, 0, 0, 1, 3))
    return seed.data[: max(1, at)]


def _bit_flip(seed: Seed, rng: random.Random) -> bytes:
    data = bytearray(seed.data)
    span = min(len(data), 256) if rng.random() < 0.5 else len(data)  # the header, or anywhere
    for _ in range(rng.choice((1, 2, 8, 64))):
        data[rng.randrange(span)] ^= 1 << rng.randrange(8)
    return bytes(data)


def _header_field(seed: Seed, rng: random.Random) -> bytes:
    data = bytearray(seed.data)
    _, at, width, order = rng.choice(seed.fields)
    top = (1 << (8 * width)) - 1
    value = rng.choice((0, top, top >> 1, 1, 0xFFFF & top, 0x7FFF_FFFF & top))
    data[at : at + width] = value.to_bytes(width, order)  # type: ignore[arg-type]
    fix_checksums(seed, data)
    return bytes(data)


def _wrong_magic(seed: Seed, rng: random.Random) -> bytes:
    data = bytearray(seed.data)
    if data[:4] == b"RIFF" and rng.random() < 0.3:
        data[8:12] = b"AVI "  # the right magic, the wrong form
        return bytes(data)
    magic = rng.choice([m for m in _MAGICS if m != bytes(data[:4])])
    data[: len(magic)] = magic
    return bytes(data)


def _huge(seed: Seed, rng: random.Random, megabytes: float) -> bytes:
    size = int(megabytes * (1 << 20) * rng.choice((0.5, 1.0)))
    block = _metadata_block(seed, size, rng_np(rng))
    at = len(seed.data) if seed.metadata_at < 0 else seed.metadata_at
    data = bytearray(seed.data[:at] + block + seed.data[at:])
    order = {b"RIFF": "little", b"FORM": "big"}.get(bytes(data[:4]))
    if order is not None and at > 0:  # the outer chunk grows by the block: still valid
        size = int.from_bytes(data[4:8], order) + len(block)  # type: ignore[arg-type]
        data[4:8] = min(size, 0xFFFFFFFF).to_bytes(4, order)  # type: ignore[arg-type]
    return bytes(data)


def rng_np(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.randrange(1 << 32))


_MUTATE = {"truncate": _truncate, "bit_flip": _bit_flip, "header_field": _header_field,
           "wrong_magic": _wrong_magic}

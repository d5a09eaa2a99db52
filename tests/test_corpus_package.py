"""The corpus package owns the corpus format: no module outside `ualm.manifests` spells a corpus
file's name, and a corpus reads the same through any fsspec filesystem as from its folder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ualm"
PACKAGE = SRC / "manifests"
NAMES = ("corpus.json", "manifests/", "_work/", "tokens/", "funnel.json", "plan.json",
         "runs.jsonl")
"""Pieces of corpus file names (see ualm.manifests.names); prose (a string with a space: a
message, a help text, a stage's label) may name a file, code may not."""
EXACT = ("_work", "manifests", "audio", "text", "traces", "pairs", "synth")
"""Folder names, flagged next to a path join (`/ "audio"`)."""
PREFIXES = ("audio-", "text-", "tokens-", "traces-", "pairs-")
"""File name prefixes, flagged where they stand alone (a glob's or a listing's)."""


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for statement in body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    found.add(id(statement.value))
    return found


def _offenders(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    formatted = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in EXACT:
                out.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: / {right.value!r}")
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        prose = id(node) in docs or " " in node.value
        if ((not prose and any(n in node.value for n in NAMES))
                or (node.value in PREFIXES and id(node) not in formatted)):
                out.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.value[:60]!r}")
    return out


def test_no_module_outside_the_corpus_package_spells_a_corpus_file_name() -> None:
    offenders = [line for path in sorted(SRC.rglob("*.py")) if PACKAGE not in path.parents
                 for line in _offenders(path)]
    assert not offenders, "corpus file names outside ualm.manifests:\n" + "\n".join(offenders)


def test_the_scan_sees_a_name_in_code_but_not_in_a_docstring(tmp_path: Path) -> None:
    module = SRC / "_probe_for_test.py"
    try:
        module.write_text('"""Writes corpus.json."""\nPATH = "manifests/samples"\n'
                          'FIX = "run it (no corpus.json)"\nSHARDS = root / "audio"\n')
        assert sorted(line.split(": ", 1)[1] for line in _offenders(module)) == [
            "'manifests/samples'", "/ 'audio'"]
    finally:
        module.unlink()


@pytest.fixture()
def memory_corpus(publish_corpus: Path) -> str:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    url = "memory://corpora/c"
    if fs.exists("/corpora/c"):
        fs.rm("/corpora/c", recursive=True)
    for path in sorted(publish_corpus.rglob("*")):
        if path.is_file() and "_work" not in path.relative_to(publish_corpus).parts:
            fs.pipe_file(f"/corpora/c/{path.relative_to(publish_corpus).as_posix()}",
                         path.read_bytes())
    yield url
    fs.rm("/corpora/c", recursive=True)


def test_a_corpus_reads_the_same_through_a_non_local_filesystem(publish_corpus: Path,
                                                                 memory_corpus: str) -> None:
    from ualm.manifests.card_sections import card_facts
    from ualm.manifests.inspect import summarize
    from ualm.manifests.layout import CorpusLayout
    from ualm.manifests.token_sets import corpus_codec

    here, there = CorpusLayout(publish_corpus), CorpusLayout(memory_corpus)
    assert not there.local and there.meta() == here.meta()
    assert {**summarize(memory_corpus), "corpus": None} == {**summarize(publish_corpus),
                                                            "corpus": None}
    assert card_facts(there) == card_facts(here)
    codec = corpus_codec(memory_corpus)
    assert there.shards("audio") == here.shards("audio") != []
    for shard in here.shards("audio"):
        mine = [(k, {e: bytes(v) for e, v in p.items()})
                for k, p in there.iter_samples(there.token_shard(codec, shard))]
        theirs = [(k, {e: bytes(v) for e, v in p.items()})
                  for k, p in here.iter_samples(here.token_shard(codec, shard))]
        assert mine == theirs and mine
    tokens = there.folder_table(there.tokens_manifests(codec))
    assert tokens.equals(here.folder_table(here.tokens_manifests(codec)))
    assert there.read_bytes(there.audio_shard(0)) == here.read_bytes(here.audio_shard(0))


def test_the_trainer_discovers_a_corpus_on_a_non_local_filesystem(memory_corpus: str) -> None:
    from ualm.manifests.shard_reader import iter_samples
    from ualm.train.data.sources import discover

    sources = discover([memory_corpus])
    assert sources and all(s.corpus == memory_corpus for s in sources)
    shard = sources[0].shards[0]
    assert shard.startswith(memory_corpus + "/tokens/") and list(iter_samples(shard))


def test_writes_to_a_non_local_filesystem_land_under_their_names() -> None:
    from ualm.manifests.layout import CorpusLayout, read_done, write_done

    layout = CorpusLayout("memory://written/c")
    with layout.shard_writer(layout.audio_shard(0)) as writer:
        writer.write({"__key__": "a", "json": b"{}"})
    layout.write_json(layout.plan_file, {"x": 1})
    write_done(layout, "shard", 0, [layout.audio_shard(0)], {"samples": 1},
               known_hashes={layout.audio_shard(0): writer.sha256})
    record = read_done(layout, "shard", 0)
    assert record is not None and list(record["files"]) == ["audio/audio-000000.tar"]
    assert [k for k, _ in layout.iter_samples(layout.audio_shard(0))] == ["a"]
    assert layout.read_json(layout.plan_file) == {"x": 1}
    layout.fs.rm(layout.root, recursive=True)

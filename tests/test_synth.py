"""`ualm synth` with the embedded rule teacher, end to end: trace and pair shards in the agreed
format, every requested trace accounted for, the same bytes on a rerun, the CLAP scorer, the CLI,
and the trainer streaming the traces with targets on exactly the assistant turns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ualm.cli import main
from ualm.manifests.shard_reader import iter_samples, load_json, load_npy
from ualm.synth.config import SynthConfig
from ualm.synth.neighbors import EventSimilarity
from ualm.synth.run import synth_corpus
from ualm.train.blend.counting import code_tokens, sample_text
from ualm.train.data.sources import discover, probabilities
from ualm.train.data.stream import PackedStream, StreamConfig
from ualm.train.sequence.chat import build_sample
from ualm.train.sequence.layout import ASSISTANT, AUDIO, AUDIO_END, BOS, EOS, IGNORE, USER
from ualm.train.sequence.text_tokenizer import ByteTokenizer

from .synth_helpers import copy_corpus, event_corpus, published

TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return event_corpus(tmp_path_factory.mktemp("synth-events"))


@pytest.fixture(scope="module")
def synthed(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_corpus(corpus, tmp_path_factory.mktemp("synthed") / "corpus")
    synth_corpus(root, SynthConfig(max_samples=20), progress=False)
    return root


def _token_bytes(root: Path) -> dict[str, bytes]:
    return {k: bytes(p["npy"]) for shard in sorted(root.glob("tokens/*/tokens-*.tar"))
            for k, p in iter_samples(shard)}


def test_rule_teacher_writes_the_agreed_shards(synthed: Path) -> None:
    funnel = json.loads((synthed / "synth" / "funnel.json").read_text())
    assert funnel["teacher"] == "rule-v1" and funnel["scorer"] == "events-v1"
    for kind, c in funnel["traces"].items():
        assert c["requested"] == 18, kind  # one per clip
        assert c["requested"] == c["valid"] + c["repaired"] + sum(c["rejected"].values())
        assert c["written"] == c["valid"] + c["repaired"] - c["deduplicated"] > 0
    rows = pq.read_table(synthed / "manifests" / "traces").to_pylist()
    assert len(rows) == sum(c["written"] for c in funnel["traces"].values())
    assert len({r["shard"] for r in rows}) >= 3  # 20 traces per shard
    tokens = _token_bytes(synthed)
    by_key = {}
    for shard in sorted((synthed / "traces").glob("traces-*.tar")):
        for key, parts in iter_samples(shard):
            by_key[key] = (shard.relative_to(synthed).as_posix(), parts)
    assert sorted(by_key) == sorted(r["key"] for r in rows)
    for row in rows:
        shard, parts = by_key[row["key"]]
        meta = load_json(parts["json"])
        assert row["shard"] == shard and row["task"] == meta["task"] == "reasoning"
        assert row["source"] == meta["source"] == f"synth-{row['kind']}"
        assert set(meta["rich_caption"]) == {"keywords", "layout", "description"}
        assert meta["teacher"] == row["teacher"] and len(meta["template_sha256"]) == 64
        audio = [p for m in meta["messages"] if isinstance(m["content"], list)
                 for p in m["content"] if p["type"] == "audio"]
        assert row["n_audio"] == len(audio) == (2 if row["kind"] == "reflection" else 1)
        for part in audio:  # an exact copy of the corpus's codes
            assert bytes(parts[f"{part['ref']}.npy"]) == tokens[part["key"]]
        assert meta["messages"][-1]["role"] == "assistant"
        if row["kind"] == "reflection":
            v1, target = audio
            assert v1["target"] is False and target["key"] == meta["source_keys"][0]
            assert v1["key"] == meta["source_keys"][1] != target["key"]
        if row["kind"] == "dialogue":
            roles = [m["role"] for m in meta["messages"]]
            assert roles[:3] == ["user", "assistant", "user"] and len(roles) >= 4


def test_near_miss_is_close_but_another_sound(synthed: Path) -> None:
    captions = {}
    for shard in sorted(synthed.glob("tokens/*/tokens-*.tar")):
        for key, parts in iter_samples(shard):
            captions[key] = load_json(parts["json"])["captions"][0]
    events = EventSimilarity.events
    for shard in sorted((synthed / "traces").glob("traces-*.tar")):
        for key, parts in iter_samples(shard):
            if key.startswith("reflection-"):
                target, v1 = load_json(parts["json"])["source_keys"]
                assert events(captions[v1]) != events(captions[target])
                assert set(events(captions[v1])) & set(events(captions[target]))


def test_pairs_rank_by_the_scorer_above_the_margin(synthed: Path) -> None:
    rows = pq.read_table(synthed / "manifests" / "pairs").to_pylist()
    funnel = json.loads((synthed / "synth" / "funnel.json").read_text())["pairs"]
    assert len(rows) == funnel["written"] > 0
    assert funnel["paired"] + sum(funnel["no_pair"].values()) == funnel["captions"] == 18
    assert funnel["paired"] <= funnel["written"] <= 2 * funnel["paired"]  # 2 pairs per clip
    assert funnel["rejected_clips"] == len({r["rejected_key"] for r in rows})
    tokens = _token_bytes(synthed)
    for shard in sorted((synthed / "pairs").glob("pairs-*.tar")):
        for _key, parts in iter_samples(shard):
            meta = load_json(parts["json"])
            assert meta["task"] == "preference" and meta["scorer"] == "events-v1"
            assert meta["chosen_score"] - meta["rejected_score"] >= 0.05
            assert bytes(parts["chosen.npy"]) == tokens[meta["chosen_key"]]
            assert bytes(parts["rejected.npy"]) == tokens[meta["rejected_key"]]
            scorer = EventSimilarity()
            assert meta["chosen_score"] == scorer.score(meta["caption"], meta["caption"]) == 1.0


def test_rerun_gives_the_same_bytes(synthed: Path, corpus: Path, tmp_path: Path) -> None:
    again = copy_corpus(corpus, tmp_path / "corpus")
    synth_corpus(again, SynthConfig(max_samples=20), progress=False)
    first, second = published(synthed), published(again)
    assert first.keys() == second.keys() and first == second
    assert (again / "synth" / "funnel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # fewer traces on a rerun: stale shards of the larger run are removed
    synth_corpus(again, SynthConfig(kinds=("enrichment",), max_samples=20), progress=False)
    assert len(list((again / "traces").glob("*.tar"))) == 1
    assert len(list((again / "manifests" / "traces").glob("*.parquet"))) == 1


def test_trainer_streams_traces_with_targets_on_assistant_turns(synthed: Path) -> None:
    sources = [s for s in discover([synthed]) if s.task == "reasoning"]
    assert sorted(s.name for s in sources) == ["synth-dialogue", "synth-enrichment",
                                              "synth-reflection"]
    stream = PackedStream(sources, probabilities(sources, None),
                          StreamConfig(2048, 4, 4, 0, 8, 0.05), TOK)
    batch = stream.next_batch()
    assert stream.skipped == {"too_long": 0, "bad": 0}
    assert stream.counts["synth-reflection/reasoning"][0] > 0
    checked = 0
    for row in range(4):
        s0, labels = batch["tokens"][row, 0], batch["text_labels"][row]
        real = batch["task_ids"][row] == 3
        assert set(batch["task_ids"][row][real]) == {3}
        actual = np.zeros(len(s0), bool)
        actual[1:] = labels[:-1] != IGNORE
        code_actual = np.zeros(len(s0), bool)
        code_actual[1:] = (batch["code_labels"][row][:, :-1] != IGNORE).any(axis=0)
        expected = _assistant_mask(s0, real)
        assert (actual == expected).all(), row
        assert not (code_actual & ~expected).any()  # codes are learnt in assistant audio only
        checked += int(real.sum())
    assert checked > 1000


def _assistant_mask(s0: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Targets by the chat rule, found from the tokens alone: everything in an assistant turn
    after its role token (up to and including <|eot|>) and the final <|eos|>, except the first
    of two audio segments in one turn (self-reflection's near-miss)."""
    mask = np.zeros(len(s0), bool)
    role, i = None, 0
    while i < len(s0) and real[i]:
        t = s0[i]
        if t == BOS:
            role = None
        elif t in (USER, ASSISTANT) and role is None:
            role = t
            if t == ASSISTANT:  # find this turn's audio segments
                j, segments = i, []
                while j < len(s0) and not (s0[j] == 3 and j > i):  # 3: <|eot|>
                    if s0[j] == AUDIO:
                        start = j
                        while s0[j] != AUDIO_END:
                            j += 1
                        segments.append((start, j))
                    j += 1
                mask[i + 1 : j + 1] = True
                if len(segments) == 2:
                    mask[segments[0][0] : segments[0][1] + 1] = False
                i, role = j + 1, None
                continue
        elif t == 3 and role == USER:  # <|eot|> closes a user turn
            role = None
        elif t == EOS:
            mask[i] = True
        i += 1
    return mask


def test_reasoning_tokens_count_text_parts_and_all_audio(synthed: Path) -> None:
    shard = sorted((synthed / "traces").glob("traces-*.tar"))[-1]
    _key, parts = next((k, p) for k, p in iter_samples(shard) if k.startswith("reflection-"))
    meta = load_json(parts["json"])
    codes = {ext[:-4]: load_npy(v) for ext, v in parts.items() if ext.endswith(".npy")}
    text = sample_text(meta)
    assert "Critique:" in text and "'type'" not in text and "audio0" not in text
    assert code_tokens(codes) == sum(a.shape[0] * a.shape[1] for a in codes.values()) > 0
    seq = build_sample(meta, codes, TOK, 8)
    assert len(seq) > code_tokens(codes) // 8  # both audio segments laid out
    with pytest.raises(ValueError, match="audio arrays"):
        build_sample(meta, None, TOK, 8)


def test_clap_scorer_ranks_pairs_and_near_misses(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from .model_factories import tiny_clap_folder

    clap = tiny_clap_folder(tmp_path / "clap")
    root = copy_corpus(corpus, tmp_path / "corpus")
    result = synth_corpus(root, SynthConfig(kinds=("reflection", "pairs"), clap_model=str(clap),
                                            pair_margin=0.0, limit=6), progress=False)
    assert result.funnel["scorer"] == "clap:model"
    assert result.funnel["traces"]["reflection"]["written"] > 0
    for key, parts in iter_samples(root / "pairs" / "pairs-000000.tar"):
        meta = load_json(parts["json"])
        assert meta["scorer"] == "clap:model"
        assert meta["chosen_score"] >= meta["rejected_score"], key


def test_cli_prints_the_funnel(corpus: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_corpus(corpus, tmp_path / "corpus")
    assert main(["synth", str(root), "--kinds", "dialogue", "--limit", "5", "--json",
                 "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["funnel"]["traces"]["dialogue"]["requested"] == 5
    assert out["run"]["requests_sent"] == 5 and out["funnel"]["pairs"] is None
    assert main(["synth", str(root), "--kinds", "nonsense"]) == 2
    assert "unknown trace kinds" in capsys.readouterr().err


def test_rule_teacher_rerun_comes_from_the_cache(corpus: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun with the same inputs and config asks the rule teacher nothing: every reply is a
    cache hit, the CLI says so, and the output bytes are the same."""
    root = copy_corpus(corpus, tmp_path / "corpus")
    argv = ["synth", str(root), "--kinds", "enrichment,dialogue", "--limit", "5", "--quiet"]
    assert main([*argv, "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    before = published(root)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert first["requests_sent"] == 10 and first["cache_hits"] == 0
    assert "0 requests sent, 10 from the cache" in printed
    assert published(root) == before


def test_blend_stats_count_the_traces(synthed: Path) -> None:
    from ualm.train.blend.stats import corpus_stats

    rows = {(r.source, r.task): r for r in corpus_stats([synthed], TOK).rows}
    for kind in ("enrichment", "dialogue", "reflection"):
        row = rows[(f"synth-{kind}", "reasoning")]
        assert row.samples == len([k for k in pq.read_table(
            synthed / "manifests" / "traces").column("kind").to_pylist() if k == kind])
        per_clip = 75 * 8 * (2 if kind == "reflection" else 1)  # 1 s clips, 8 codebooks
        assert row.audio_tokens == per_clip * row.samples and row.text_tokens > 0
        assert row.seconds == 0.0

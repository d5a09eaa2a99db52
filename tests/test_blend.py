"""Blend ratios: exact token statistics of real corpora, the weighting rule (temperature, caps,
floors, infeasible targets) on hand-made statistics, the CLI, and the spec's validation."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from ualm.cli import main
from ualm.errors import UalmError
from ualm.train.blend.counting import sample_task, sample_tokens
from ualm.train.blend.spec import BlendSpec, load_blend
from ualm.train.blend.stats import CorpusStats, StatsRow, choose_codec, corpus_stats
from ualm.train.blend.weights import BlendOptions, compute_blend, parse_targets, water_fill
from ualm.train.sequence.text_tokenizer import load_text_tokenizer

# Audio at 24 kHz: EnCodec makes ceil(seconds x 75) frames (1.2 s: 90, 1.6 s: 120, 2.0 s: 150)
# of 8 codebooks at 6 kbps. Text tokens are UTF-8 bytes.
AUDIO = [  # id, seconds, caption, source, language, extra fields
    ("g0", 1.2, "a dog barks", "gen-a", "en", {}),  # 720 + 11
    ("g1", 1.6, "rain on a roof", "gen-a", "en", {}),  # 960 + 14
    ("g2", 2.0, "a bell rings twice", "gen-a", "de", {}),  # 1200 + 18
    ("g3", 1.2, "un café bruyant", "gen-b", "fr", {}),  # 720 + 16 (é is two bytes)
    ("c0", 1.2, "a cat meows", "und-b", None, {"task": "understanding"}),  # 720 + 11
    ("n0", 1.2, None, "raw", None, {}),  # no caption: unconditional generation, 720
]
TURNS = [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "A bell."}]
UNDERSTANDING = [("u0", 1.2), ("u1", 1.6)]  # UALM rows: (720 + 21) + (960 + 21)
CHATS = [("2+2?", "4"), ("3+3?", "6"), ("10+10?", "20")]  # 6 + 6 + 9 bytes

EXPECTED = {  # (source, task, language): (samples, tokens)
    ("und-a", "understanding", None): (2, 1722),
    ("und-b", "understanding", None): (1, 731),
    ("gen-a", "generation", "de"): (1, 1218),
    ("gen-a", "generation", "en"): (2, 1705),
    ("gen-b", "generation", "fr"): (1, 736),
    ("chat-a", "text", None): (3, 21),
    ("raw", "generation", None): (1, 720),
}


def _build(root: Path, rows: list[dict], tokenize: bool) -> Path:
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    config = BuildConfig.from_dict({"tokenize": {"enabled": tokenize, "codec": "random",
                                                 "cache_dir": str(root / "cache")}})
    build_corpus([manifest], root / "corpus", config, engine="local", progress=False)
    return root / "corpus"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generation, understanding, text and task-less audio in one corpus, tokenized (random
    codec, 6 kbps)."""
    from ualm.audio.synthetic import synth_clip, write_audio

    root = tmp_path_factory.mktemp("mixed")
    rows: list[dict] = []
    for seed, (clip, seconds, caption, source, language, extra) in enumerate(AUDIO):
        write_audio(root / f"{clip}.wav", synth_clip(seconds, 24000, seed), 24000, "wav16")
        rows.append({"id": clip, "path": f"{clip}.wav", "caption": caption, "source": source,
                     "language": language, **extra})
    for seed, (clip, seconds) in enumerate(UNDERSTANDING, start=50):
        write_audio(root / f"{clip}.wav", synth_clip(seconds, 24000, seed), 24000, "wav16")
        rows.append({"id": clip, "sound": f"{clip}.wav", "conversations": TURNS,
                     "source": "und-a"})
    for i, (question, answer) in enumerate(CHATS):
        rows.append({"id": f"t{i}", "source": "chat-a", "messages": [
            {"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return _build(root, [{k: v for k, v in r.items() if v is not None} for r in rows], True)


@pytest.fixture(scope="module")
def chats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text-only corpus (no token set needed) with a reasoning source."""
    rows = [{"id": "r0", "source": "think", "task": "reasoning",
             "messages": [{"role": "user", "content": "Why?"},
                          {"role": "assistant", "content": "Because."}]},  # 4 + 1 + 8 = 13
            {"id": "b0", "source": "chat-b",
             "messages": [{"role": "user", "content": "Hello there"}]}]  # 11
    return _build(tmp_path_factory.mktemp("chats"), rows, False)


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# --- statistics of real corpora --------------------------------------------------------------

def test_stats_count_tokens_exactly_per_source_task_and_language(mixed: Path) -> None:
    stats = corpus_stats([mixed])
    got = {(r.source, r.task, r.language): (r.samples, r.tokens) for r in stats.rows}
    assert got == EXPECTED
    seconds = {(r.source, r.language): r.seconds for r in stats.rows}
    assert seconds[("gen-a", "en")] == pytest.approx(2.8)
    text = next(r for r in stats.rows if r.task == "text")
    assert (text.text_tokens, text.audio_tokens, text.seconds) == (21, 0, 0.0)
    assert stats.tokenizer == "bytes-v1" and stats.codec_id.startswith("encodec_24khz-6kbps")


def test_stats_cli_prints_a_table_and_json(mixed: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _cli(capsys, "blend", "stats", mixed)
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["source", "task", "language", "samples", "hours", "tokens"]
    assert "generation: 5 samples" in out and "4,379 tokens" in out
    code, _, err = _cli(capsys, "blend", "stats", mixed, "--tokenizer", mixed / "nothing")
    assert code == 2 and "tokenizer folder" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _cli(capsys, "blend", "stats", mixed, "--json")
    summary = json.loads(out)
    assert summary["tasks"]["understanding"]["tokens"] == 1722 + 731
    assert summary["tokens"] == sum(t for _, t in EXPECTED.values())
    assert {r["source"] for r in summary["rows"]} == {k[0] for k in EXPECTED}


def test_task_inference_and_counting_rule() -> None:
    tok = load_text_tokenizer(None)
    assert sample_task({"captions": ["x"]}) == "generation"
    assert sample_task({"captions": ["x"], "task": "understanding"}) == "understanding"
    assert sample_task({"conversations": TURNS}) == "understanding"
    assert sample_task({"messages": [{"role": "user", "content": "x"}]}) == "text"
    assert sample_task({"captions": []}) == "generation"  # unconditional
    # a task-less conversation counts as understanding: every turn, not the caption
    assert sample_tokens({"conversations": TURNS, "captions": ["ab"]}, tok, 10, 8) == 21 + 80


def test_several_token_sets_need_a_codec_id(mixed: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from ualm.config import TokenizeConfig
    from ualm.pipelines.tokens import tokenize_corpus

    copy = shutil.copytree(mixed, tmp_path / "two-codecs")
    low = tokenize_corpus(copy, TokenizeConfig(codec="random", bandwidth=1.5, cache_dir=str(tmp_path / "k")),
                          engine="local", progress=False)
    code, _, err = _cli(capsys, "blend", "stats", copy)
    assert code == 2 and "several token sets" in err and "--codec-id" in err
    stats = corpus_stats([copy], codec_id=low["codec_id"])  # 2 codebooks at 1.5 kbps
    got = {(r.source, r.language): r.tokens for r in stats.rows}
    assert got[("gen-a", "en")] == (90 + 120) * 2 + 11 + 14
    assert got[("chat-a", None)] == 21


def test_codec_choice_across_corpora() -> None:
    assert choose_codec({}, None) is None
    assert choose_codec({"a": {"x"}, "b": {"x"}}, None) == "x"
    assert choose_codec({"a": {"x", "y"}, "b": {"y"}}, "y") == "y"
    with pytest.raises(UalmError, match="different codecs"):
        choose_codec({"a": {"x"}, "b": {"y"}}, None)
    with pytest.raises(UalmError, match="no token set 'z'"):
        choose_codec({"a": {"x"}}, "z")
    with pytest.raises(UalmError, match=r"no token set.*fix: run `ualm tokenize a`"):
        choose_codec({"a": set()}, None)


def test_bad_corpora_are_clear_errors(mixed: Path, tmp_path: Path) -> None:
    with pytest.raises(UalmError, match="not a ualm corpus"):
        corpus_stats([tmp_path])
    with pytest.raises(UalmError, match="given twice"):
        corpus_stats([mixed, mixed])
    broken = shutil.copytree(mixed, tmp_path / "broken")
    parts = next((broken / "manifests" / "tokens").iterdir())
    for part in parts.glob("part-*.parquet"):
        part.unlink()
    with pytest.raises(UalmError, match=r"lacks shard 0.*rerun `ualm tokenize"):
        corpus_stats([broken])


# --- the weighting rule, on hand-made statistics ---------------------------------------------

def _stats(*pools: tuple[str, str, int]) -> CorpusStats:
    rows = tuple(StatsRow("/c", name, task, None, 10, 0.0, tokens, 0)
                 for name, task, tokens in pools)
    return CorpusStats((), rows, "bytes-v1", None)


def _weights(spec: BlendSpec) -> dict[str, float]:
    return {s.name: s.weight for s in spec.sources}


POOLS = [("u", "understanding", 1000), ("g1", "generation", 9000), ("g2", "generation", 1000),
         ("t", "text", 100_000)]


def test_default_blend_follows_the_targets_and_sizes() -> None:
    spec = compute_blend(_stats(*POOLS))
    w = _weights(spec)
    assert sum(w.values()) == pytest.approx(1, abs=1e-12)
    assert w["u"] == pytest.approx(0.277)
    assert (w["g1"], w["g2"]) == pytest.approx((0.331 * 0.9, 0.331 * 0.1))
    assert w["t"] == pytest.approx(0.392)
    # one pass at the targets' proportions: understanding (1000 tokens / 0.277) is seen once
    assert spec.budget_tokens == math.floor(1000 / 0.277) == 3610
    assert any("one pass" in n and "understanding" in n for n in spec.notes)
    by_name = {s.name: s for s in spec.sources}
    assert by_name["u"].expected_epochs == pytest.approx(1, abs=1e-3)
    assert by_name["g1"].expected_tokens == round(0.331 * 0.9 * 3610)
    assert spec.task_shares() == pytest.approx({"understanding": 0.277, "generation": 0.331,
                                                "text": 0.392})


def test_temperature_flattens_within_a_task() -> None:
    def generation(temperature: float) -> tuple[float, float]:
        w = _weights(compute_blend(_stats(*POOLS), BlendOptions(temperature=temperature)))
        return w["g1"] / 0.331, w["g2"] / 0.331

    assert generation(2.0) == pytest.approx((3 / 4, 1 / 4))  # sqrt(9000):sqrt(1000) = 3:1
    assert generation(0.5) == pytest.approx((81 / 82, 1 / 82))
    assert generation(1e6) == pytest.approx((0.5, 0.5), abs=1e-5)
    tiny = compute_blend(_stats(("a", "text", 10**12), ("b", "text", 1)),
                         BlendOptions(targets={"text": 1.0}, temperature=0.01))
    assert _weights(tiny) == pytest.approx({"a": 1.0, "b": 0.0})  # n^(1/T) = n^100: no overflow


def test_the_epoch_cap_moves_the_excess_to_the_other_sources() -> None:
    options = BlendOptions(targets={"generation": 0.5, "text": 0.5}, temperature=2.0,
                           max_epochs=2.0, budget=20_000)
    pools = [p for p in POOLS if p[1] != "understanding"]
    spec = compute_blend(_stats(*pools), options)
    # by temperature g2 would get 1/4 of 10,000 = 2.5 epochs; capped at 2 (2,000 tokens)
    by_name = {s.name: s for s in spec.sources}
    assert by_name["g2"].weight == pytest.approx(0.1)
    assert by_name["g2"].expected_epochs == pytest.approx(2.0)
    assert by_name["g1"].weight == pytest.approx(0.4)
    assert by_name["g2"].expected_tokens == 2000 and by_name["g1"].expected_tokens == 8000
    assert not spec.notes


def test_the_floor_lifts_small_sources() -> None:
    pools = [("big", "text", 8000), ("s1", "text", 1000), ("s2", "text", 1000)]
    spec = compute_blend(_stats(*pools), BlendOptions(targets={"text": 1.0}, min_share=0.2,
                                                      max_epochs=None))
    assert _weights(spec) == pytest.approx({"big": 0.6, "s1": 0.2, "s2": 0.2})
    with pytest.raises(UalmError, match="adds up to more than the whole task"):
        compute_blend(_stats(*pools), BlendOptions(targets={"text": 1.0}, min_share=0.4))


def test_infeasible_targets_say_what_binds(capsys: pytest.CaptureFixture) -> None:
    options = dict(targets={"understanding": 0.25, "generation": 0.25, "text": 0.5},
                   max_epochs=2.0, budget=10_000)
    with pytest.raises(UalmError) as failure:
        compute_blend(_stats(*POOLS), BlendOptions(**options))
    message = str(failure.value)
    assert "task understanding needs 2,500 tokens (0.25 of 10,000) but holds 1,000 " \
           "(2,000 in 2 epochs)" in message
    assert "lower --budget to 7,999 or less" in message  # 2 x 1000 / 0.25, minus rounding
    spec = compute_blend(_stats(*POOLS), BlendOptions(**options, allow_infeasible=True))
    shares = spec.task_shares()
    # understanding capped at 2,000 tokens; its 0.05 goes to generation and text as 1:2
    assert shares == pytest.approx({"understanding": 0.2, "generation": 0.25 + 0.05 / 3,
                                    "text": 0.5 + 0.1 / 3})
    assert spec.budget_tokens == 10_000
    assert any(n.startswith("infeasible: task understanding needs 2,500") for n in spec.notes)
    assert any(n.startswith("realised task shares") for n in spec.notes)


def test_a_floor_beyond_a_cap_binds_and_too_little_data_lowers_the_budget() -> None:
    pools = [("big", "text", 100_000), ("small", "text", 100)]
    options = dict(targets={"text": 1.0}, min_share=0.1, max_epochs=1.0, budget=10_000)
    with pytest.raises(UalmError, match=r"source small .* its floor of 0.1 of text needs 1,000"):
        compute_blend(_stats(*pools), BlendOptions(**options))
    spec = compute_blend(_stats(*pools), BlendOptions(**options, allow_infeasible=True))
    assert _weights(spec) == pytest.approx({"big": 0.99, "small": 0.01})
    everything = compute_blend(_stats(("a", "text", 100), ("b", "generation", 100)),
                               BlendOptions(targets={"text": 0.5, "generation": 0.5},
                                            max_epochs=2.0, budget=1000,
                                            allow_infeasible=True))
    assert everything.budget_tokens == 400
    assert all(s.expected_epochs == pytest.approx(2.0) for s in everything.sources)
    assert any("budget lowered from 1,000 to 400" in n for n in everything.notes)


def test_targets_must_match_the_tasks_of_the_data() -> None:
    gen_only = _stats(("g", "generation", 100))
    with pytest.raises(UalmError, match=r"target understanding=0.277 but the corpora hold no "
                                        r"understanding tokens.*understanding=0"):
        compute_blend(gen_only)
    spec = compute_blend(_stats(("g", "generation", 100), ("t", "text", 100)),
                         BlendOptions(targets={"generation": 1.0, "text": 0.0}))
    assert _weights(spec) == {"g": 1.0, "t": 0.0}
    assert any("weight 0 for 1 text source(s): its target is 0" in n for n in spec.notes)
    with pytest.raises(UalmError, match=r"hold reasoning data .* give reasoning no share"):
        compute_blend(_stats(("g", "generation", 100), ("r", "reasoning", 5)),
                      BlendOptions(targets={"generation": 1.0}))
    with pytest.raises(UalmError, match="task 'asr', which a blend cannot train"):
        compute_blend(_stats(("g", "generation", 100), ("a", "asr", 5)),
                      BlendOptions(targets={"generation": 1.0}))
    for bad, message in [({"sing": 1.0}, "unknown task 'sing'"),
                         ({"text": 0.5, "generation": 0.4}, "sum to 0.9, not 1"),
                         ({"text": -1.0, "generation": 2.0}, "not a share")]:
        with pytest.raises(UalmError, match=message):
            BlendOptions(targets=bad)
    assert parse_targets("text=0.5, generation=0.5") == {"text": 0.5, "generation": 0.5}
    with pytest.raises(UalmError, match="bad target 'text'"):
        parse_targets("text")


def test_water_fill_is_exact_and_deterministic() -> None:
    import random

    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(1, 7)
        prior = [rng.uniform(0.01, 1) for _ in range(n)]
        lower = [rng.choice([0.0, rng.uniform(0, 1 / n)]) for _ in range(n)]
        upper = [rng.choice([math.inf, lo + rng.uniform(0, 2 / n)]) for lo in lower]
        if sum(upper) < 1:
            continue
        shares = water_fill(prior, lower, upper)
        assert shares == water_fill(prior, lower, upper)
        assert sum(shares) == pytest.approx(1, abs=1e-12)
        free = [i for i in range(n) if lower[i] + 1e-12 < shares[i] < upper[i] - 1e-12]
        for i in range(n):
            assert lower[i] - 1e-12 <= shares[i] <= upper[i] + 1e-12
            if free:  # free shares are one multiple of the prior; clipped ones are past it
                ratio = shares[free[0]] / prior[free[0]]
                if i in free:
                    assert shares[i] / prior[i] == pytest.approx(ratio)
                elif shares[i] == pytest.approx(lower[i]):
                    assert ratio * prior[i] <= lower[i] + 1e-9
                else:
                    assert ratio * prior[i] >= upper[i] - 1e-9


# --- the CLI and the spec file ----------------------------------------------------------------

def test_blend_cli_writes_a_spec_that_round_trips(mixed: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "blend.yaml"
    code, printed, _ = _cli(capsys, "blend", mixed, "--out", out)
    assert code == 0 and f"wrote {out}" in printed
    assert printed.splitlines()[0].split() == ["source", "task", "language", "samples", "hours",
                                               "tokens", "weight", "epochs"]
    assert "de,en" in printed and "one pass" in printed
    spec = load_blend(out)
    assert spec == compute_blend(corpus_stats([mixed]))
    w = {s.name: s.weight for s in spec.sources}
    assert [s.name for s in spec.sources] == ["und-a", "und-b", "gen-a", "gen-b", "raw", "chat-a"]
    assert w["und-a"] == pytest.approx(0.277 * 1722 / 2453)
    assert w["gen-b"] == pytest.approx(0.331 * 736 / 4379)
    assert w["chat-a"] == pytest.approx(0.392)
    assert sum(w.values()) == pytest.approx(1, abs=1e-12)
    assert spec.budget_tokens == math.floor(21 / 0.392)  # text is the scarcest
    assert spec.corpora[0].codec_id == corpus_stats([mixed]).codec_id
    assert spec.targets == {"understanding": 0.277, "generation": 0.331, "text": 0.392}
    assert (spec.temperature, spec.max_epochs, spec.tokenizer) == (1.0, 4.0, "bytes-v1")
    assert sum(spec.sampling_probabilities()) == pytest.approx(1)
    assert out.read_text().startswith("# ualm blend spec (format 1")


def test_infeasible_cli_exits_2_without_writing(mixed: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "blend.yaml"
    code, _, err = _cli(capsys, "blend", mixed, "--out", out, "--budget", "1k")
    assert code == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1
    assert "task text needs 392 tokens (0.392 of 1,000) but holds 21 (84 in 4 epochs)" in err
    assert "lower --budget to 214 or less" in err
    code, printed, _ = _cli(capsys, "blend", mixed, "--out", out, "--budget", "1k",
                            "--allow-infeasible")
    assert code == 0
    spec = load_blend(out)
    shares = spec.task_shares()
    assert shares["text"] == pytest.approx(84 / 1000)
    excess = 0.392 - 0.084
    assert shares["understanding"] == pytest.approx(0.277 + excess * 0.277 / 0.608)
    assert any("infeasible: task text" in n for n in spec.notes)
    assert "note: infeasible: task text" in printed


def test_several_corpora_and_a_reasoning_task(mixed: Path, chats: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "blend.yaml"
    code, _, err = _cli(capsys, "blend", mixed, chats, "--out", out)
    assert code == 2 and "hold reasoning data (13 tokens)" in err
    code, printed, _ = _cli(capsys, "blend", mixed, chats, "--out", out, "--targets",
                            "understanding=0.3,generation=0.3,text=0.3,reasoning=0.1",
                            "--temperature", "2")
    assert code == 0 and printed.splitlines()[0].split()[0] == "corpus"
    spec = load_blend(out)
    assert [c.path for c in spec.corpora] == [str(mixed), str(chats)]
    assert spec.corpora[1].codec_id is None  # text only: no token set needed
    w = {(Path(s.corpus).parent.name[:5], s.name): s.weight for s in spec.sources}
    text = math.sqrt(21) + math.sqrt(11)
    assert w[("mixed", "chat-a")] == pytest.approx(0.3 * math.sqrt(21) / text)
    assert w[("chats", "chat-b")] == pytest.approx(0.3 * math.sqrt(11) / text)
    assert w[("chats", "think")] == pytest.approx(0.1)


def test_load_blend_validates(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = shutil.copytree(mixed, tmp_path / "corpus")
    good = tmp_path / "good.yaml"
    assert _cli(capsys, "blend", corpus, "--out", good)[0] == 0
    data = yaml.safe_load(good.read_text())

    def broken(name: str, change) -> Path:
        copy = json.loads(json.dumps(data))
        change(copy)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(copy))
        return path

    cases = [
        (broken("task", lambda d: d["sources"][0].update(task="asr")), "unknown task 'asr'"),
        (broken("sum", lambda d: d["sources"][0].update(weight=0.5)), "weights sum to"),
        (broken("version", lambda d: d.update(ualm_blend=2)), "format version 2"),
        (broken("twice", lambda d: d["sources"].append(d["sources"][0])), "listed twice"),
        (broken("unlisted", lambda d: d["sources"][0].update(corpus="/elsewhere")),
         "not under `corpora`"),
        (broken("missing", lambda d: [d["corpora"][0].update(path=str(tmp_path / "gone")),
                                      *(s.update(corpus=str(tmp_path / "gone"))
                                        for s in d["sources"])]), "not a ualm corpus"),
        (tmp_path / "absent.yaml", "not found"),
    ]
    for path, message in cases:
        with pytest.raises(UalmError, match=message):
            load_blend(path)
    assert load_blend(good).sources
    meta = json.loads((corpus / "corpus.json").read_text())
    (corpus / "corpus.json").write_text(json.dumps({**meta, "note": "rebuilt"}))
    with pytest.raises(UalmError, match="has changed since the blend was computed"):
        load_blend(good)
    assert load_blend(good, check_corpora=False).sources

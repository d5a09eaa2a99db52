"""Teachers that misbehave: a scripted OpenAI-compatible server on 127.0.0.1 (valid answers,
invalid JSON, refusals, 429 with Retry-After, a 500, replies slower than the timeout), the
request cache, the budget, the concurrency limit, API-key hygiene, and a randomly initialised
local transformers model whose garbage must end as rejects with reasons."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus
from ualm.testing.teacher_server import Action, FakeTeacherServer

from .synth_helpers import captioned_corpus, copy_corpus, published

SECRET = "sk-test-SECRET-0123456789"
CASES = ("valid", "badjson", "alwaysbad", "refusal", "structrefusal", "ratelimit", "error500",
         "slow")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth-scripted")
    return captioned_corpus(root, [f"case {c}" for c in CASES])


def _case(body: dict[str, Any]) -> str:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return user.splitlines()[0].rsplit("case ", 1)[1]


class Script:
    """Per case, what the n-th request of that case gets."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = defaultdict(int)

    def __call__(self, body: dict[str, Any], n: int) -> Action | None:
        case = _case(body)
        attempt = self.seen[case]
        self.seen[case] += 1
        if case == "badjson" and attempt == 0:
            return Action(text='{"prompt": "a sound", "rich_caption": {oops')
        if case == "alwaysbad":
            return Action(text=json.dumps({"prompt": "x", "rich_caption": {"keywords": []}}))
        if case == "refusal":
            return Action(text="I'm sorry, but I can't help with that request.")
        if case == "structrefusal":
            return Action(refusal="Not something I will do.")
        if case == "ratelimit" and attempt == 0:
            return Action(status=429, headers={"Retry-After": "0.4"})
        if case == "error500" and attempt == 0:
            return Action(status=500)
        if case == "slow":
            return Action(delay=1.5)
        return None


def _outcomes(root: Path) -> dict[str, str]:
    """Case -> valid / repaired / the reject reason (clip i is CASES[i])."""
    from ualm.manifests.shard_reader import iter_samples, load_json

    def case(key: str) -> str:
        return CASES[int(key.split("-clip", 1)[1][:2])]

    out = {case(r["key"]): r["reason"]
           for r in pq.read_table(root / "synth" / "rejects.parquet").to_pylist()}
    for shard in sorted((root / "traces").glob("*.tar")):
        for key, parts in iter_samples(shard):
            out[case(key)] = "repaired" if load_json(parts["json"])["repaired"] else "valid"
    return out


def test_scripted_server_every_failure_ends_with_a_reason(
        corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("UALM_TEST_KEY", SECRET)
    root = copy_corpus(corpus, tmp_path / "corpus")
    script = Script()
    with FakeTeacherServer(latency=0.01, script=script) as server:
        config = SynthConfig(teacher=f"openai:teacher-model@{server.base_url}",
                             kinds=("enrichment",), api_key_env="UALM_TEST_KEY",
                             concurrency=4, timeout=0.5, max_retries=1, backoff=0.05,
                             max_repairs=2)
        result = synth_corpus(root, config, progress=True)
        times = {}
        for body, at in zip(server.requests, server.times, strict=True):
            times.setdefault(_case(body), []).append(at)
    assert _outcomes(root) == {"valid": "valid", "badjson": "repaired", "alwaysbad": "synth/invalid_output",
                   "refusal": "synth/refusal", "structrefusal": "synth/refusal",
                   "ratelimit": "valid", "error500": "valid", "slow": "synth/timeout"}
    counts = result.funnel["traces"]["enrichment"]
    assert counts == {"requested": 8, "valid": 3, "repaired": 1, "deduplicated": 0,
                      "written": 4, "rejected": {"synth/invalid_output": 1,
                                                 "synth/refusal": 2, "synth/timeout": 1}}
    assert script.seen["alwaysbad"] == 3  # the reply and two repair prompts
    assert script.seen["slow"] == 2 and script.seen["refusal"] == 1
    assert times["ratelimit"][1] - times["ratelimit"][0] >= 0.4  # Retry-After honoured
    assert result.stats["retries"] == 3  # 429, 500, one timeout
    # the key reached the server, and nowhere else
    assert server.authorization == {f"Bearer {SECRET}"}
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and "synth: 8/8" in captured.err
    rows = pq.read_table(root / "manifests" / "traces").to_pylist()
    assert {r["teacher"] for r in rows} == {f"openai:teacher-model@{server.base_url}"}


def test_rerun_sends_no_request_and_gives_the_same_bytes(corpus: Path, tmp_path: Path) -> None:
    root = copy_corpus(corpus, tmp_path / "corpus")
    with FakeTeacherServer(latency=0.0) as server:
        config = SynthConfig(teacher=f"openai:m@{server.base_url}", concurrency=8,
                             kinds=("enrichment", "dialogue", "reflection"))
        first = synth_corpus(root, config, progress=False)
        before = published(root)
        sent = len(server.requests)
        second = synth_corpus(root, config, progress=False)
        assert len(server.requests) == sent == first.stats["requests_sent"] == 24
    assert second.stats["requests_sent"] == 0 and second.stats["cache_hits"] == 24
    assert published(root) == before
    assert all(c["written"] == 8 for c in first.funnel["traces"].values())


def test_budget_and_concurrency_limit(corpus: Path, tmp_path: Path) -> None:
    root = copy_corpus(corpus, tmp_path / "corpus")
    with FakeTeacherServer(latency=0.15) as server:
        config = SynthConfig(teacher=f"openai:m@{server.base_url}", kinds=("dialogue",),
                             concurrency=3, max_requests=5)
        result = synth_corpus(root, config, progress=False)
        assert len(server.requests) == 5 and server.max_in_flight == 3
    counts = result.funnel["traces"]["dialogue"]
    assert counts["valid"] == 5 and counts["rejected"] == {"synth/budget": 3}
    assert counts["requested"] == 8


def _tiny_causal_lm(folder: Path) -> Path:
    """A 1-layer GPT-2 with random weights and a byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["a low tone then white noise {\"prompt\": [] } keywords layout"] * 4,
                            vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer,
                                        eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=4096, n_embd=32,
                                       n_layer=1, n_head=2, eos_token_id=0, bos_token_id=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_random_local_model_ends_as_rejects_with_reasons(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    model = _tiny_causal_lm(tmp_path / "tiny-gpt2")
    root = copy_corpus(corpus, tmp_path / "corpus")
    config = SynthConfig(teacher=f"local:{model}", kinds=("enrichment", "reflection"),
                         reply_tokens=12, max_repairs=1, limit=3, temperature=0.0)
    result = synth_corpus(root, config, progress=False)
    assert result.funnel["teacher"].startswith("local:tiny-gpt2-")
    for kind in ("enrichment", "reflection"):
        c = result.funnel["traces"][kind]
        assert c["requested"] == 3 and c["written"] == 0
        assert sum(c["rejected"].values()) == 3
        assert set(c["rejected"]) <= {"synth/invalid_output", "synth/refusal"}
    rejects = pq.read_table(root / "synth" / "rejects.parquet").to_pylist()
    assert len(rejects) == 6 and all(r["detail"] for r in rejects)
    assert result.stats["requests_sent"] == 12  # each job: the reply and one repair
    assert not list((root / "traces").glob("*.tar"))


def test_a_teachers_favourite_phrasing_is_kept_once(corpus: Path, tmp_path: Path) -> None:
    """Every reply the same rich caption: the first trace is kept, the others recorded as its
    near-duplicates."""
    same = json.dumps({"prompt": "a low tone please", "rich_caption": {
        "keywords": ["a low tone"], "layout": [{"event": "a low tone", "start": 0, "end": 1}],
        "description": [{"event": "a low tone", "text": "a deep steady hum"}]}})
    root = copy_corpus(corpus, tmp_path / "corpus")
    with FakeTeacherServer(script=lambda body, n: Action(text=same)) as server:
        result = synth_corpus(root, SynthConfig(teacher=f"openai:m@{server.base_url}",
                                                kinds=("enrichment",)), progress=False)
    c = result.funnel["traces"]["enrichment"]
    assert (c["valid"], c["deduplicated"], c["written"]) == (8, 7, 1)
    dups = pq.read_table(root / "synth" / "duplicates.parquet").to_pylist()
    assert len(dups) == 7 and {d["duplicate_of"] for d in dups} == {
        "enrichment-clip00__seg_00000"}
    assert all(d["similarity"] == 1.0 for d in dups)

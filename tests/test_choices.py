"""Multiple-choice answers by option likelihood (`ualm.train.model.choices`), on a tiny random
model: the answer is always an offered option, the batched log-likelihoods are the
one-sequence-at-a-time ones, a model trained on an answer picks it, and accuracy and chance are
computed right."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from ualm.train.model import choices
from ualm.train.model.choices import choose, option_logps, options_of, score
from ualm.train.model.model import ModelConfig, UALMModel
from ualm.train.sequence.chat import build_sample, prompt_for_understanding, text_ids
from ualm.train.sequence.layout import EOT

TINY = ModelConfig(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64,
                   codebooks=4)
WORDS = ["a low tone", "white noise", "a click train", "a rising chirp", "pink noise",
         "a high tone"]


def _questions(n: int, seed: int) -> tuple[list[str], list[np.ndarray], list[list[str]]]:
    """n questions with 2 to 4 lettered options of different lengths, audio of 3 to 9 frames
    (rows of different lengths, so the batch pads), and the options of each."""
    rng = np.random.default_rng(seed)
    questions, codes, options = [], [], []
    for _ in range(n):
        offered = [WORDS[int(i)] for i in rng.permutation(len(WORDS))[: rng.integers(2, 5)]]
        questions.append("<sound>\nWhich sound comes first? " + " ".join(
            f"({'ABCD'[i]}) {o}" for i, o in enumerate(offered)))
        codes.append(rng.integers(0, 1024, (4, int(rng.integers(3, 10)))))
        options.append(offered)
    return questions, codes, options


def _model(seed: int = 0) -> UALMModel:
    torch.manual_seed(seed)
    return UALMModel(TINY).eval()


def test_doctests() -> None:
    result = doctest.testmod(choices)
    assert result.failed == 0 and result.attempted > 0


def test_the_answer_is_always_an_offered_option() -> None:
    for seed in range(3):
        questions, codes, offered = _questions(10, seed)
        assert [options_of(q) for q in questions] == offered
        picked = choose(_model(seed), questions, codes, batch=4)
        assert all(p in o for p, o in zip(picked, offered, strict=True))
    assert choose(_model(), ["What is it?"], [np.zeros((4, 3), dtype=np.int64)]) == [None]


def test_batched_likelihoods_are_each_sequence_alone() -> None:
    """The padded batch gives what a plain forward pass over one option's sequence gives:
    the sum of log p(option text, <|eot|>) after the prompt."""
    model = _model()
    questions, codes, offered = _questions(4, 7)
    batched = option_logps(model, questions, codes, offered)
    for question, clip, options, got in zip(questions, codes, offered, batched, strict=True):
        for option, value in zip(options, got, strict=True):
            prompt = prompt_for_understanding(question, clip, model.tokenizer, 4).arrays()
            reply = [*text_ids(model.tokenizer, option), EOT]
            tokens = np.concatenate([prompt["tokens"], np.full((5, len(reply)), 1024)], axis=1)
            tokens[0, -len(reply):] = reply
            with torch.no_grad():
                h, _ = model.hidden(torch.from_numpy(tokens)[None],
                                    torch.arange(tokens.shape[1])[None])
                logp = torch.log_softmax(model.text_logits(h[0]).float(), -1)
            start = prompt["tokens"].shape[1] - 1  # <|assistant|> predicts the first token
            want = sum(float(logp[start + j, t]) for j, t in enumerate(reply))
            assert value == pytest.approx(want, abs=1e-4)


def test_a_model_trained_on_the_answer_chooses_it() -> None:
    """A few steps on one clip's question and answer: its likelihood then beats the other
    options whatever their order (a choice by the least likely option fails this)."""
    model = _model(1)
    clip = np.random.default_rng(2).integers(0, 1024, (4, 5))
    question = ("<sound>\nWhich sound comes first? (A) a low tone (B) white noise "
                "(C) a click train (D) a rising chirp")
    arrays = build_sample({"conversations": [{"from": "human", "value": question},
                                             {"from": "gpt", "value": "a click train"}]},
                          clip, model.tokenizer, 4).arrays()
    batch = {k: torch.from_numpy(v)[None] for k, v in arrays.items()}
    batch["position_ids"] = torch.arange(arrays["tokens"].shape[1])[None]
    batch["task_ids"] = torch.zeros_like(batch["position_ids"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model(batch)["loss"].backward()
        optimizer.step()
    model.eval()
    shuffled = ("<sound>\nWhich sound comes first? (A) a rising chirp (B) a click train "
                "(C) white noise (D) a low tone")
    assert choose(model, [question, shuffled], [clip, clip]) == ["a click train"] * 2


def test_accuracy_chance_and_the_verdict() -> None:
    chosen = ["a", "b", None, "d", "e", "f", "g", "h"]
    expected = ["a", "b", "c", "x", "x", "x", "x", "x"]
    result = score(chosen, expected, [4] * 8)
    assert result["right"] == 2 and result["accuracy"] == 0.25 and result["chance"] == 0.25
    assert result["p_value"] == pytest.approx(1 - 0.75**8 - 8 * 0.25 * 0.75**7)
    assert not result["above_chance"] and "NOT above chance" in choices.describe(result)
    good = score(["a"] * 12, ["a"] * 11 + ["b"], [2] * 6 + [4] * 6)
    assert good["accuracy"] == pytest.approx(11 / 12) and good["chance"] == pytest.approx(0.375)
    assert good["above_chance"] and "(11/12), chance 0.38: above chance" in \
        choices.describe(good)
    assert score([], [], [])["questions"] == 0

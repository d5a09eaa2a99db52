"""Multiple-choice answers constrained to the options offered: the model's log-likelihood of
each option as its reply (the option's text, then <|eot|>) after the question and the audio,
and the most likely option is the answer. Free-running greedy text can name an option that was
not offered; this cannot. Accuracy is reported beside chance (one over the options) and the
one-sided binomial probability of doing at least as well by guessing.

>>> options_of("Which sound comes first? (A) a low tone (B) white noise")
['a low tone', 'white noise']
>>> score(["a", "b", "a", "a"], ["a", "b", "b", "a"], [4, 4, 4, 4])["accuracy"]
0.75
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ualm.train.model.model import UALMModel
from ualm.train.sequence.chat import prompt_for_understanding
from ualm.train.sequence.layout import EOT, IGNORE, empty_rows, place, with_labels

_OPTION = re.compile(r"\(([A-D])\) (.+?)(?= \([A-D]\) |$)")
SIGNIFICANCE = 0.05
"""Below this binomial tail probability, an accuracy counts as above chance."""


def lettered_options(question: str) -> dict[str, str]:
    """The question's options by letter (`(A) a low tone (B) ...`, as the event world asks)."""
    return dict(_OPTION.findall(question.strip()))


def options_of(question: str) -> list[str]:
    return list(lettered_options(question).values())


@torch.inference_mode()
def option_logps(model: UALMModel, questions: Sequence[str], codes: Sequence[np.ndarray],
                 options: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Per question, the summed log-probability of each option as the whole reply (its text
    tokens and the <|eot|> that ends it), one forward pass over every option of every question
    (right-padded: a causal model's padding after a row never changes that row)."""
    laid, owner = [], []
    for q, (question, clip, offered) in enumerate(zip(questions, codes, options, strict=True)):
        for option in offered:
            seq = prompt_for_understanding(question, clip, model.tokenizer, model.k)
            seq.words(model.tokenizer.encode(option), target=True)
            seq.text([EOT], target=True)
            laid.append(seq.laid())
            owner.append(q)
    if not laid:
        return [np.zeros(0) for _ in questions]
    rows = empty_rows(len(laid), max(len(s) for s in laid), model.k)
    for i, sample in enumerate(laid):
        place(rows, i, 0, sample)
    batch = with_labels(rows)
    device = next(model.parameters()).device
    tokens = torch.from_numpy(batch["tokens"]).to(device)
    labels = torch.from_numpy(batch["text_labels"]).to(device)
    positions = torch.arange(tokens.shape[2], device=device).expand(len(laid), -1)
    h, _ = model.hidden(tokens, positions)
    mask = labels != IGNORE
    taken = -F.cross_entropy(model.text_logits(h[mask]).float(), labels[mask], reduction="none")
    row_of = torch.arange(len(laid), device=device).view(-1, 1).expand(mask.shape)[mask]
    total = torch.zeros(len(laid), device=device).index_add(0, row_of, taken).cpu().numpy()
    out: list[list[float]] = [[] for _ in questions]
    for q, value in zip(owner, total.tolist(), strict=True):
        out[q].append(value)
    return [np.array(v, dtype=np.float64) for v in out]


def choose(model: UALMModel, questions: Sequence[str], codes: Sequence[np.ndarray],
           batch: int = 8) -> list[str | None]:
    """The most likely offered option per question (None for a question without options),
    `batch` questions per forward pass."""
    chosen: list[str | None] = []
    for at in range(0, len(questions), batch):
        part = list(questions[at : at + batch])
        offered = [options_of(q) for q in part]
        logps = option_logps(model, part, codes[at : at + batch], offered)
        chosen += [o[int(np.argmax(lp))] if o else None for o, lp in zip(offered, logps,
                                                                          strict=True)]
    return chosen


def binomial_tail(right: int, n: int, p: float) -> float:
    """P(at least `right` of `n` right) when each is right with probability p.

    >>> round(binomial_tail(2, 2, 0.5), 3)
    0.25
    """
    return float(sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(right, n + 1)))


def score(chosen: Sequence[str | None], expected: Sequence[str],
          offered: Sequence[int]) -> dict[str, Any]:
    """Accuracy of the chosen options, chance (the mean of 1 / options offered) and whether the
    accuracy is above it (binomial tail below SIGNIFICANCE)."""
    n = len(expected)
    right = sum(c is not None and c.strip() == e.strip()
                for c, e in zip(chosen, expected, strict=True))
    chance = float(np.mean([1 / k for k in offered])) if n else 0.0
    p = binomial_tail(right, n, chance) if n else 1.0
    return {"questions": n, "right": right, "accuracy": right / n if n else 0.0,
            "chance": chance, "p_value": p, "above_chance": n > 0 and p < SIGNIFICANCE}


def describe(result: dict[str, Any]) -> str:
    """One line: accuracy, chance, and the verdict."""
    if not result["questions"]:
        return "no multiple-choice questions to score"
    verdict = ("above chance" if result["above_chance"] else "NOT above chance")
    return (f"accuracy {result['accuracy']:.2f} ({result['right']}/{result['questions']}), "
            f"chance {result['chance']:.2f}: {verdict} (binomial p = {result['p_value']:.1g})")

"""The UALM model and its sequence layout: delay pattern, chat layout and targets, loss weights,
heads restricted to their blocks, a backbone loaded from a local folder, and inference."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from ualm.errors import UalmError
from ualm.train.model.generate import GenerationConfig, answer, generate_codes
from ualm.train.model.model import ModelConfig, UALMModel
from ualm.train.model.schedule import warmup_cosine
from ualm.train.sequence.chat import build_sample
from ualm.train.sequence.layout import (
    ASSISTANT,
    AUDIO,
    AUDIO_END,
    BOS,
    CODE_PAD,
    EOS,
    EOT,
    FRAME,
    IGNORE,
    N_SPECIAL,
    PAD,
    SPECIAL_TOKENS,
    Vocab,
    delay,
    undelay,
)
from ualm.train.sequence.text_tokenizer import ByteTokenizer

TINY = ModelConfig(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64, codebooks=4)
TOK = ByteTokenizer()


def _batch(arrays: list[dict[str, np.ndarray]], task: int) -> dict[str, torch.Tensor]:
    """Samples packed one after the other into one row."""
    cat = {k: np.concatenate([a[k] for a in arrays], axis=-1) for k in arrays[0]}
    batch = {k: torch.from_numpy(v)[None] for k, v in cat.items()}
    batch["position_ids"] = torch.from_numpy(
        np.concatenate([np.arange(a["tokens"].shape[1]) for a in arrays]))[None]
    batch["task_ids"] = torch.full_like(batch["position_ids"], task)
    return batch


def test_vocabulary_and_delay_pattern() -> None:
    assert len(SPECIAL_TOKENS) == N_SPECIAL == 256
    assert SPECIAL_TOKENS[:4] == ("<|pad|>", "<|bos|>", "<|eos|>", "<|eot|>")
    vocab = Vocab(text_size=1000, codebooks=8)
    assert vocab.code_offset(0) == 1256 and vocab.size == 1256 + 8 * 1025
    codes = np.arange(12).reshape(3, 4)
    steps = delay(codes)
    assert steps.shape == (3, 6)
    assert steps[1, 0] == CODE_PAD and steps[1, 1] == 4 and steps[2, 5] == 11
    assert (undelay(steps) == codes).all()


def test_generation_sample_layout_and_targets() -> None:
    codes = np.random.default_rng(0).integers(0, 1024, (4, 5))
    seq = build_sample({"captions": ["hi"], "task": "generation"}, codes, TOK, 4).arrays()
    tokens = seq["tokens"]
    prefix = [BOS, 5, N_SPECIAL + ord("h"), N_SPECIAL + ord("i"), EOT, ASSISTANT, AUDIO]
    assert tokens[0, :7].tolist() == prefix
    steps = tokens[:, 7 : 7 + 5 + 3]
    assert steps[0].tolist() == [FRAME] * 5 + [PAD] * 3
    assert (undelay(steps[1:]) == codes).all()
    assert tokens[0, -3:].tolist() == [AUDIO_END, EOT, EOS]
    # position p holds the label of p + 1; the caption is never a target
    assert (seq["text_labels"][:5] == IGNORE).all()
    assert seq["text_labels"][5] == AUDIO and seq["text_labels"][6] == FRAME
    assert (seq["code_labels"] != IGNORE).sum() == codes.size  # delay pads are not targets
    assert seq["text_weight"][6] == pytest.approx(1 / 4)  # frame markers weigh like a codebook
    assert seq["text_weight"][5] == 1.0
    dropped = build_sample({"captions": ["hi"], "task": "generation"}, codes, TOK, 4,
                           drop_condition=True).arrays()
    assert dropped["tokens"][0, :2].tolist() == [ASSISTANT, AUDIO]  # no BOS, no caption


def test_understanding_and_text_targets_are_the_answers_only() -> None:
    codes = np.zeros((4, 3), dtype=np.int16)
    meta = {"conversations": [{"from": "human", "value": "<sound>\nWhat?"},
                              {"from": "gpt", "value": "ok"}]}
    seq = build_sample(meta, codes, TOK, 4).arrays()
    labels = seq["text_labels"][seq["text_labels"] != IGNORE] - N_SPECIAL
    assert labels.tolist() == [ord("o"), ord("k"), EOT - N_SPECIAL, EOS - N_SPECIAL]
    assert (seq["code_labels"] == IGNORE).all()  # audio in, text out
    text = build_sample({"messages": [{"role": "user", "content": "a"},
                                      {"role": "assistant", "content": "b"}]}, None, TOK, 4)
    labels = text.arrays()["text_labels"]
    assert (labels[labels != IGNORE] - N_SPECIAL).tolist() == [ord("b"), EOT - N_SPECIAL,
                                                               EOS - N_SPECIAL]


def test_loss_weights_audio_streams_one_kth_and_learns() -> None:
    torch.manual_seed(0)
    model = UALMModel(TINY)
    codes = np.random.default_rng(1).integers(0, 1024, (4, 6))
    gen = build_sample({"captions": ["x"], "task": "generation"}, codes, TOK, 4).arrays()
    batch = _batch([gen, gen], task=1)
    out = model(batch)
    n_text = int((batch["text_labels"] != IGNORE).sum())
    n_codes = int((batch["code_labels"] != IGNORE).sum())
    assert float(out["task_weight"][1]) == pytest.approx(
        float(batch["text_weight"].sum()) + n_codes / 4)
    assert n_text > 0 and 4 < out["loss"].item() < 9  # about log(1025) at random init
    with torch.no_grad():  # the codebook heads see only their own 1025 rows
        h = torch.randn(3, 32)
        assert model.code_logits(h, 2).shape == (3, 1025)
        start = model.vocab.code_offset(2)
        expected = h @ model.lm.get_output_embeddings().weight[start : start + 1025].t()
        assert torch.allclose(model.code_logits(h, 2), expected)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = float(out["loss"])
    for _ in range(30):
        loss = model(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < first / 3  # it memorises the two identical samples


def test_packed_samples_do_not_see_each_other() -> None:
    torch.manual_seed(0)
    model = UALMModel(TINY).eval()
    codes = np.random.default_rng(2).integers(0, 1024, (4, 4))
    a = build_sample({"captions": ["aa"]}, codes, TOK, 4).arrays()
    b = build_sample({"captions": ["bbb"]}, codes[:, ::-1].copy(), TOK, 4).arrays()
    alone = model.hidden(_batch([b], 1)["tokens"], _batch([b], 1)["position_ids"])[0]
    packed = _batch([a, b], 1)
    together = model.hidden(packed["tokens"], packed["position_ids"])[0]
    assert torch.allclose(together[0, -alone.shape[1] :], alone[0], atol=1e-5)


def test_backbone_from_a_local_folder(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    words = ["[UNK]", "a", "high", "tone", "low", "noise", "white"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(vocab_size=10, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=1, tie_word_embeddings=False))
    lm.save_pretrained(tmp_path)
    model = UALMModel(ModelConfig(backbone=str(tmp_path), codebooks=2))
    v = model.tokenizer.vocab_size
    assert v in (7, 8)  # the 7 words, and the fast tokenizer may add its own special token
    assert model.tokenizer.name.startswith("hf:")
    assert all(0 <= i < v for i in model.tokenizer.encode("a high tone"))
    assert model.vocab.size == 256 + v + 2 * 1025
    emb = model.lm.get_input_embeddings().weight
    head = model.lm.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == model.vocab.size
    assert torch.equal(emb[256 : 256 + v], lm.get_input_embeddings().weight[:v])
    assert torch.equal(head[256 : 256 + v], lm.get_output_embeddings().weight[:v])
    assert not torch.equal(emb[:256], head[:256])  # untied, as the folder's model was
    with pytest.raises(UalmError, match="does not exist"):
        UALMModel(ModelConfig(backbone=str(tmp_path / "nope")))


def test_generation_and_understanding_inference() -> None:
    torch.manual_seed(0)
    model = UALMModel(TINY).eval()
    cfg = GenerationConfig(max_frames=12, seed=1)
    first = generate_codes(model, ["a high tone", "white noise"], cfg)
    again = generate_codes(model, ["a high tone", "white noise"], cfg)
    assert len(first) == 2
    for codes, same in zip(first, again, strict=True):
        assert codes.shape[0] == 4 and 0 <= codes.shape[1] <= 12
        assert codes.dtype == np.int16 and (codes < 1024).all() and (codes >= 0).all()
        assert np.array_equal(codes, same)  # seeded sampling
    audio = np.random.default_rng(0).integers(0, 1024, (4, 6))
    replies = answer(model, ["<sound>\nWhat?", "Which?"], [audio, audio], max_new_tokens=5)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100, 0.1) == pytest.approx(0.1)
    values = [warmup_cosine(s, 10, 100) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def _full_forward(model: UALMModel, caption: str, codes: np.ndarray,
                  drop: bool) -> tuple[torch.Tensor, int]:
    """Hidden states of the training layout of (caption, codes), and where <|audio|> is."""
    tokens = build_sample({"task": "generation", "captions": [caption]}, codes, TOK, model.k,
                          drop_condition=drop).arrays()["tokens"]
    with torch.no_grad():
        h, _ = model.hidden(torch.from_numpy(tokens)[None], torch.arange(tokens.shape[1])[None])
    return h[0], int(np.flatnonzero(tokens[0] == AUDIO)[0])


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_greedy_generation_is_a_fixed_point_of_the_full_forward(guidance: float) -> None:
    """Greedy free-running generation (KV cache, left padding, delay pattern, end of audio, the
    unconditional prefix of guidance) must produce exactly what the teacher-forced full forward
    of the training layout predicts at every step when fed its own output."""
    torch.manual_seed(1)
    model = UALMModel(TINY).eval()
    with torch.no_grad():  # PAD's row close to FRAME's, so the random model ends audio somewhere
        table = model.lm.get_input_embeddings().weight
        table[PAD] = table[FRAME] + 0.1 * torch.randn_like(table[FRAME])
    k, limit = model.k, 16
    captions = ["a high tone followed by white noise", "hum"]  # different lengths: left padding
    generated = generate_codes(model, captions, GenerationConfig(
        guidance=guidance, temperature=0.0, max_frames=limit))
    assert any(0 < g.shape[1] < limit for g in generated), [g.shape for g in generated]
    for caption, codes in zip(captions, generated, strict=True):
        t_len = codes.shape[1]
        h, start = _full_forward(model, caption, codes, drop=False)  # h[start] predicts step 0
        h_u, start_u = _full_forward(model, caption, codes, drop=True)
        for t in range(t_len + k - 1):
            text = model.text_logits(h[start + t])
            if t < t_len:
                assert text[FRAME] >= text[PAD], t
            elif t == t_len and t_len < limit:
                assert text[PAD] > text[FRAME], t
            for n in range(k):
                if 0 <= t - n < t_len:
                    logits = (guidance * model.code_logits(h[start + t], n)
                              + (1 - guidance) * model.code_logits(h_u[start_u + t], n))
                    assert codes[n, t - n] == int(logits[:CODE_PAD].argmax()), (caption, t, n)

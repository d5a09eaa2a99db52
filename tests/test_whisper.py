"""Whisper language identification with a tiny randomly initialised model, in both weight formats
(an openai-whisper `.pt` checkpoint and the Hugging Face folder converted from it)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
whisper = pytest.importorskip("whisper")

from whisper.tokenizer import get_tokenizer  # noqa: E402

from ualm.errors import UalmError  # noqa: E402
from ualm.filters.whisper import LanguageGuess, language_rejection, load_whisper  # noqa: E402
from ualm.filters.whisper_convert import convert_openai_checkpoint  # noqa: E402

from .model_factories import tiny_whisper_checkpoint  # noqa: E402

TOKENS = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    checkpoint, model = tiny_whisper_checkpoint(folder)
    return checkpoint, convert_openai_checkpoint(checkpoint, folder / "hf"), model


def clips() -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    t = np.arange(44100 * 2) / 44100
    return [(rng.normal(0, 0.1, 16000).astype(np.float32), 16000),
            ((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100),
            (np.zeros(8000, np.float32), 16000),
            (rng.normal(0, 0.5, 16000 * 33).astype(np.float32), 16000)]  # over 30 s: cut


def detect_each(scorer, items, **kwargs) -> list[LanguageGuess]:
    return [scorer.detect([clip], rate, max_tokens=TOKENS, **kwargs)[0] for clip, rate in items]


def test_both_formats_agree_with_each_other_and_with_openai_whisper(weights):
    checkpoint, folder, reference = weights
    openai, hf = load_whisper(checkpoint, "cpu"), load_whisper(folder, "cpu")
    assert openai.vocab.non_speech == hf.vocab.non_speech == get_tokenizer(True).non_speech_tokens
    items = clips()
    from_pt, from_hf = detect_each(openai, items), detect_each(hf, items)
    assert len({round(g.probability, 3) for g in from_pt}) > 1  # the model hears the audio
    for a, b in zip(from_pt, from_hf, strict=True):
        assert a.language == b.language and a.transcript == b.transcript and a.transcript
        assert a.probability == pytest.approx(b.probability, abs=1e-4)
    # openai-whisper's own detection and greedy decoding, on the same features
    mel = openai._features([c for c, r in items if r == 16000], 16000)
    options = whisper.DecodingOptions(fp16=False, sample_len=TOKENS, without_timestamps=True,
                                      suppress_tokens=[-1, *range(50258, 51865)])
    expected = whisper.decode(reference, mel, options)
    got = [g for g, (_, r) in zip(from_pt, items, strict=True) if r == 16000]
    for guess, result in zip(got, expected, strict=True):
        assert guess.language == result.language and guess.transcript == result.text
    _, probs = whisper.decoding.detect_language(reference, mel)
    for guess, row in zip(got, probs, strict=True):
        assert guess.probability == pytest.approx(row[guess.language], abs=1e-5)


@pytest.mark.parametrize("fmt", [0, 1], ids=["pt", "hf"])
def test_results_do_not_depend_on_the_batch(weights, fmt):
    scorer = load_whisper(weights[fmt], "cpu")
    items = [(c, 16000) for c, r in clips() if r == 16000]
    alone = detect_each(scorer, items)
    for order, size in (([0, 1, 2], 3), ([2, 0, 1], 2)):
        batched = scorer.detect([items[i][0] for i in order], 16000, batch_size=size,
                                max_tokens=TOKENS)
        for i, guess in zip(order, batched, strict=True):
            assert guess.language == alone[i].language
            assert guess.transcript == alone[i].transcript
            assert guess.probability == pytest.approx(alone[i].probability, abs=1e-5)


def test_loads_once_per_path_and_device(weights):
    assert load_whisper(weights[0], "cpu") is load_whisper(str(weights[0]), "cpu")
    guess = load_whisper(weights[0], "cpu").detect([np.zeros(1600, np.float32)], 16000,
                                                    transcribe=False)[0]
    assert guess.transcript == "" and 0 < guess.probability <= 1


def test_english_only_checkpoints_always_say_english(tmp_path):
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=1,
                           n_audio_layer=1, n_vocab=51864, n_text_ctx=16, n_text_state=32,
                           n_text_head=1, n_text_layer=1)
    model = Whisper(dims)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.02)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()},
               tmp_path / "tiny.en.pt")
    scorer = load_whisper(tmp_path / "tiny.en.pt", "cpu")
    guesses = scorer.detect([np.zeros(0, np.float32), np.ones(800, np.float32)], 16000,
                            max_tokens=3)
    assert [(g.language, g.probability) for g in guesses] == [("en", 1.0)] * 2
    assert all(g.transcript for g in guesses)


def test_language_decisions():
    sure = LanguageGuess("de", 0.9, "hallo")
    assert language_rejection(sure, ["de"], 0.5) is None
    assert language_rejection(sure, None, None) is None
    assert language_rejection(LanguageGuess("e", 0.9, ""), "en", None).reason == "whisper/language"
    rejection = language_rejection(sure, ["en", "fr"], 0.5)
    assert rejection.reason == "whisper/language" and "de" in rejection.detail
    assert "en, fr" in rejection.detail
    unsure = language_rejection(LanguageGuess("en", 0.3, ""), ["en"], 0.5)
    assert unsure.reason == "whisper/low_confidence" and "0.30 < 0.5" in unsure.detail


def test_errors_say_how_to_provide_weights(tmp_path, weights):
    def message(path) -> str:
        with pytest.raises(UalmError) as caught:
            load_whisper(path, "cpu")
        text = str(caught.value)
        assert "\n" not in text and "never downloads" in text
        return text

    assert "not found" in message(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    assert "cannot read Whisper checkpoint" in message(tmp_path / "corrupt.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    assert "not an openai-whisper checkpoint" in message(tmp_path / "other.pt")
    (tmp_path / "clap").mkdir()
    (tmp_path / "clap" / "config.json").write_text('{"model_type": "clap"}')
    assert "'clap' model, not Whisper" in message(tmp_path / "clap")
    (tmp_path / "empty").mkdir()
    assert "not a Hugging Face model folder" in message(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (broken / name).write_bytes((weights[1] / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    assert "cannot load Whisper" in message(broken)

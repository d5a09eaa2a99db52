"""CLAP audio-caption similarity with a tiny randomly initialised ClapModel and a small BPE
tokenizer built here, saved as a Hugging Face folder and loaded back through `load_clap`."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ualm.errors import UalmError  # noqa: E402
from ualm.filters.clap import load_clap, select_captions  # noqa: E402

from .model_factories import tiny_clap_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_clap_folder(tmp_path_factory.mktemp("clap"))


def clips() -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    t = np.arange(44100 * 3) / 44100
    return [(rng.normal(0, 0.1, 16000).astype(np.float32), 16000),
            ((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100),
            (rng.normal(0, 0.3, 48000 * 23).astype(np.float32), 48000)]  # three 10 s windows


def test_audio_embeddings_are_unit_deterministic_and_batch_independent(folder):
    scorer = load_clap(folder, "cpu")
    assert load_clap(str(folder), "cpu") is scorer
    items = clips()
    alone = np.concatenate([scorer.audio_embeddings([c], r) for c, r in items])
    assert alone.dtype == np.float32 and alone.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # the model hears the audio
    rng = np.random.default_rng(1)
    at_48k = [items[2][0], rng.normal(0, 0.2, 96000).astype(np.float32),
              np.sin(np.arange(144000) / 20).astype(np.float32)]
    each = np.concatenate([scorer.audio_embeddings([c], 48000) for c in at_48k])
    for order, size in (([2, 0, 1], 2), ([1, 2, 0], 3)):
        batched = scorer.audio_embeddings([at_48k[i] for i in order], 48000, batch_size=size)
        np.testing.assert_allclose(batched, each[order], atol=1e-5)
    long_clip = items[2][0]  # the long clip is the mean of windows at 0, 6.5 and 13 s
    windows = [long_clip[s:s + 480000] for s in (0, 312000, 624000)]
    by_window = scorer.audio_embeddings(windows, 48000, batch_size=3).mean(axis=0)
    np.testing.assert_allclose(alone[2], by_window / np.linalg.norm(by_window), atol=1e-5)


def test_text_embeddings_and_scores(folder):
    scorer = load_clap(folder, "cpu")
    texts = ["a dog barks", "rain falls on a metal roof while a car passes by", "music", "a dog"]
    alone = np.concatenate([scorer.text_embeddings([t]) for t in texts])
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(scorer.text_embeddings(texts[::-1], batch_size=3), alone[::-1],
                               atol=1e-5)
    items = clips()[:1]
    scores = scorer.scores([items[0][0]], [texts], items[0][1])
    audio = scorer.audio_embeddings([items[0][0]], items[0][1])[0]
    np.testing.assert_allclose(scores[0], alone @ audio, atol=1e-5)
    assert scorer.scores([items[0][0]], [[]], 16000) == [[]]
    with pytest.raises(ValueError, match="1 clips but 2 caption lists"):
        scorer.scores([items[0][0]], [texts, texts], 16000)


def test_select_captions_keeps_the_best_above_threshold():
    captions = ["a", "b", "c", "d", "e"]
    kept, dropped = select_captions(captions, [0.5, 0.9, 0.5, 0.2, 0.5], top_k=3, threshold=0.45)
    assert kept == ["b", "a", "c"]  # ties keep input order
    assert [(c, r.reason) for c, r in dropped] == [("d", "clap/below_threshold"),
                                                  ("e", "clap/not_top_k")]
    assert "0.200 < 0.45" in dropped[0][1].detail and "ranks 4 of 5" in dropped[1][1].detail
    assert select_captions(captions, [0.5] * 5, top_k=None)[0] == captions
    # below the threshold is dropped even inside the top k (and with no top k at all)
    for top_k in (3, None):
        kept, dropped = select_captions(["x", "y", "z"], [0.9, 0.3, 0.8], top_k=top_k,
                                        threshold=0.5)
        assert kept == ["x", "z"]
        assert [(c, r.reason) for c, r in dropped] == [("y", "clap/below_threshold")]
    assert select_captions(["x", "y"], [0.2, 0.1], top_k=3, threshold=0.5)[0] == []
    assert select_captions([], [], top_k=3) == ([], [])
    with pytest.raises(ValueError):
        select_captions(["a"], [0.1, 0.2])


def test_errors_say_how_to_provide_weights(tmp_path, folder):
    def message(path) -> str:
        with pytest.raises(UalmError) as caught:
            load_clap(path, "cpu")
        text = str(caught.value)
        assert "\n" not in text and "never downloads" in text
        return text

    assert "not found" in message(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "not a Hugging Face model folder" in message(tmp_path / "empty")
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "config.json").write_text('{"model_type": "whisper"}')
    assert "'whisper' model, not CLAP" in message(tmp_path / "whisper")
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "fused").mkdir()
    config["audio_config"]["enable_fusion"] = True
    (tmp_path / "fused" / "config.json").write_text(json.dumps(config))
    assert "fused CLAP" in message(tmp_path / "fused")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((folder / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    assert "cannot load CLAP" in message(broken)

"""X-codec, DAC and Mimi through transformers' classes: small seeded random models whose codes
spread (not EnCodec's all-zero trap), batched codes equal to per-clip codes, real-checkpoint
loading from a local folder, and a corpus tokenized with X-codec that `ualm generate` reads."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ualm.audio.synthetic import synth_clip
from ualm.errors import UalmError
from ualm.tokenize.codecs import KINDS, HFCodec, load_codec

# kind: (sample rate, frames/s, codebooks at the default 6 kbps, codebook size)
EXPECTED = {"xcodec": (16_000, 50.0, 8, 1024), "dac": (16_000, 50.0, 12, 1024),
            "mimi": (24_000, 12.5, 8, 2048)}


@pytest.fixture(scope="module", autouse=True)
def cache(codec_cache: Path) -> Path:
    return codec_cache


@pytest.fixture(scope="module")
def codecs(cache: Path) -> dict[str, HFCodec]:
    return {kind: load_codec(f"random:{kind}", device="cpu") for kind in KINDS}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_identity_rates_and_codebooks(codecs: dict[str, HFCodec], kind: str) -> None:
    info = codecs[kind].info
    rate, frame_rate, codebooks, size = EXPECTED[kind]
    assert (info.sample_rate, info.frame_rate, info.codebooks, info.codebook_size) == (
        rate, frame_rate, codebooks, size)
    assert info.codec_id.startswith(f"{kind}_{rate // 1000}khz-")
    assert info.random_weights and info.checkpoint_sha256 == info.weights_sha256
    assert type(codecs[kind]._model).__name__ == KINDS[kind].model_class


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_random_codes_spread_over_the_codebooks(codecs: dict[str, HFCodec], kind: str) -> None:
    """A noise+tone clip the k-means sample never saw: each codebook uses many entries (a
    fresh X-codec or Mimi, whose codebooks are zeros, uses one)."""
    codec = codecs[kind]
    rate = codec.info.sample_rate
    t = np.arange(4 * rate) / rate
    noise = np.random.default_rng(5).normal(0, 0.1, len(t))
    clip = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 4)) + noise).astype(np.float32)
    codes = codec.encode([clip, synth_clip(4.0, rate, seed=3)])
    for sample in codes:
        frames = sample.shape[1]
        distinct = [len(np.unique(row)) for row in sample]
        assert min(distinct) >= max(10, frames // 10), (kind, frames, distinct)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_batched_codes_equal_per_clip_codes(codecs: dict[str, HFCodec], kind: str) -> None:
    codec = codecs[kind]
    rate, hop = codec.info.sample_rate, codec.hop
    lengths = [int(2.3 * rate) + 7, hop, 1, int(0.9 * rate), 0, codec.padded_length(rate + 1),
               int(2.3 * rate) - 5, int(3.1 * rate)]
    clips = [synth_clip(3.5, rate, seed=40 + i)[:n] for i, n in enumerate(lengths)]
    batched = codec.encode(clips)
    for clip, codes in zip(clips, batched, strict=True):
        assert codes.dtype == np.int16
        assert codes.shape == (codec.info.codebooks, -(-len(clip) // hop))
        assert np.array_equal(codes, codec.encode([clip])[0])
    assert codes.min() >= 0 and codes.max() < codec.info.codebook_size
    small = load_codec(f"random:{kind}", device="cpu", batch_size=3)  # another batching
    assert all(np.array_equal(a, b) for a, b in zip(batched, small.encode(clips), strict=True))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_a_local_checkpoint_folder_loads_through_from_pretrained(
        codecs: dict[str, HFCodec], kind: str, tmp_path: Path) -> None:
    codec = codecs[kind]
    folder = tmp_path / kind
    codec._model.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["model_type"] == kind
    real = load_codec(str(folder), device="cpu")
    assert isinstance(real, HFCodec) and not real.info.random_weights
    assert real.info.codec_id == codec.info.codec_id  # the same weights
    assert real.info.checkpoint_sha256 != real.info.weights_sha256  # the file's own hash
    clip = synth_clip(1.7, codec.info.sample_rate, seed=9)
    assert np.array_equal(real.encode([clip])[0], codec.encode([clip])[0])
    audio = real.decode(real.encode([clip])[0])
    assert audio.dtype == np.float32 and len(audio) == -(-len(clip) // codec.hop) * codec.hop
    (folder / "config.json").write_text("{}")
    with pytest.raises(UalmError):
        load_codec(str(folder), device="cpu")


def test_out_of_memory_halves_a_chosen_batch_and_names_a_given_one(
        codecs: dict[str, HFCodec], monkeypatch: pytest.MonkeyPatch) -> None:
    """An adaptive batch size is halved on out-of-memory and the call still gives every clip's
    codes; a batch size the user gave is not changed behind their back: one line instead."""
    import torch

    codec = codecs["dac"]
    clips = [synth_clip(1.0, codec.info.sample_rate, seed=i).astype(np.float32) for i in range(4)]
    expected = codec.encode(clips)
    real, failures = codec._encode_batch, []

    def flaky(batch: torch.Tensor) -> np.ndarray:
        if len(batch) > 1:
            failures.append(len(batch))
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(batch)

    monkeypatch.setattr(codec, "_encode_batch", flaky)
    monkeypatch.setattr(codec, "batch_size", 4)
    got = codec.encode(clips)
    assert codec.batch_size == 1 and failures == [4, 2]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    monkeypatch.setattr(codec, "batch_size", 4)
    monkeypatch.setattr(codec, "_adaptive", False)
    with pytest.raises(UalmError, match="out of memory encoding 4 clips at a time"):
        codec.encode(clips)


def test_bandwidth_picks_the_codebook_count(codecs: dict[str, HFCodec]) -> None:
    assert load_codec("random:xcodec", bandwidth=2.0, device="cpu").info.codebooks == 4
    assert load_codec("random:dac", bandwidth=3.0, device="cpu").info.codebooks == 6
    xcodec = load_codec("random:xcodec", bandwidth=4.0, device="cpu")
    assert xcodec.info.codec_id == codecs["xcodec"].info.codec_id  # 4 and 6 kbps: all 8
    with pytest.raises(UalmError, match="bandwidth"):
        load_codec("random:xcodec", bandwidth=0.2, device="cpu")
    with pytest.raises(UalmError, match="unknown codec kind"):
        load_codec("random:opus", device="cpu")


def test_an_xcodec_corpus_records_its_codec_and_generate_reads_it(
        codecs: dict[str, HFCodec], local_corpus: Path, tmp_path: Path) -> None:
    """A 24 kHz corpus tokenized with X-codec (resampled to its 16 kHz): the token shards and
    the manifest record the codec, and `ualm generate`'s loader rebuilds it from the corpus."""
    from ualm.config import TokenizeConfig
    from ualm.pipelines.tokens import tokenize_corpus
    from ualm.train.model.infer import corpus_codec_model
    from ualm.train.trainer import check_codecs

    corpus = tmp_path / "corpus"
    shutil.copytree(local_corpus, corpus)
    config = TokenizeConfig(codec="random:xcodec", cache_dir=str(tmp_path / "cache"))
    record = tokenize_corpus(corpus, config, engine="local", progress=False)
    info = codecs["xcodec"].info
    assert record["codec_id"] == info.codec_id and "xcodec" in record["codec_id"]
    assert (record["frame_rate"], record["codebooks"], record["source"]) == (50.0, 8,
                                                                             "random:xcodec")
    shard = corpus / record["shards"][0]
    assert "xcodec" in str(shard.relative_to(corpus))
    with tarfile.open(shard) as tar:
        names = tar.getnames()
        meta_json = json.loads(tar.extractfile(next(n for n in names if n.endswith(".json")))
                               .read())
    assert meta_json["codec_id"] == info.codec_id
    assert (meta_json["frame_rate"], meta_json["codebooks"]) == (50.0, 8)
    assert meta_json["checkpoint_sha256"] == info.checkpoint_sha256
    assert abs(meta_json["frames"] - meta_json["seconds"] * 50) <= 1
    rebuilt = corpus_codec_model(corpus, record["codec_id"], device="cpu")
    assert rebuilt.info.codec_id == info.codec_id
    check_codecs([corpus], record["codec_id"], 8)  # the trainer's check before any work
    assert rebuilt.info.frame_rate == 50.0  # what `generate --max-seconds` counts frames by
    with pytest.raises(UalmError, match=r"model\.codebooks: 8 \(or leave it unset"):
        check_codecs([corpus], record["codec_id"], 12)

"""The data module: shards read as tarfile reads them, sources found and mixed by the blend,
packing, determinism per (seed, rank, worker), disjoint shards per stream, exact resume, and the
realised blend counted with the shared token rule."""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from ualm.errors import UalmError
from ualm.manifests.shard_reader import iter_members, iter_samples, load_json, load_npy
from ualm.train.blend.counting import sample_tokens
from ualm.train.blend.spec import BlendSpec, SourceSpec
from ualm.train.data import source_reader
from ualm.train.data.datamodule import STATE_KEY, DataConfig, UALMDataModule
from ualm.train.data.rows import FILL_WINDOW, Rows
from ualm.train.data.sources import discover, probabilities
from ualm.train.data.stream import PackedStream, StreamConfig
from ualm.train.sequence.layout import CODE_PAD, FRAME, IGNORE, PAD
from ualm.train.sequence.text_tokenizer import ByteTokenizer

TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def corpus(event_corpus: Path) -> Path:
    return event_corpus


def _stream(corpus: Path, stream: int = 0, streams: int = 1, seed: int = 0,
            buffer: int = 8) -> PackedStream:
    sources = discover([corpus])
    return PackedStream(sources, probabilities(sources, None),
                        StreamConfig(256, 2, buffer, seed, 8, 0.05), TOK, stream, streams)


def test_shard_reader_matches_tarfile(corpus: Path) -> None:
    shards = sorted(corpus.glob("tokens/*/tokens-*.tar")) + sorted(corpus.glob("text/*.tar"))
    assert len(shards) >= 4
    for shard in shards:
        with tarfile.open(shard) as tar:
            expected = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
        assert [(n, bytes(b)) for n, b in iter_members(shard)] == expected
    keys = [k for k, _ in iter_samples(shards[0])]
    assert len(keys) == len(set(keys)) == len(expected_keys(shards[0]))


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_load_npy_matches_numpy(version: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 1024, (8, 75)).astype(np.int16), np.arange(5.0), np.int64(7),
              np.zeros((2, 0, 3), dtype=">i4"), np.asfortranarray(np.arange(6).reshape(2, 3))]
    for array in arrays:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asanyarray(array), version=version)
        got = load_npy(memoryview(buffer.getvalue()))
        assert got.dtype == array.dtype and got.shape == np.shape(array)
        assert np.array_equal(got, array)
        if np.ndim(array) < 2 or array.flags.c_contiguous:  # the fast path: a view, no copy
            assert not got.flags.writeable


def expected_keys(shard: Path) -> set[str]:
    with tarfile.open(shard) as tar:
        return {m.name.split(".")[0] for m in tar}


def test_sources_and_blend_probabilities(corpus: Path) -> None:
    sources = discover([corpus])
    assert [s.label for s in sources] == ["events-gen/generation", "events-text/text",
                                          "events-und/understanding"]
    assert [s.samples for s in sources] == [9, 6, 9]
    assert all(p.endswith(".tar") and Path(p).is_file() for s in sources for p in s.shards)
    blend = BlendSpec(sources=(
        SourceSpec("events-gen", "generation", str(corpus), 0.6, tokens=1200, samples=10),
        SourceSpec("events-und", "understanding", str(corpus), 0.4, tokens=400, samples=10)))
    probs = probabilities(sources, blend)  # weight / tokens per sample: 0.005 vs 0.01
    assert probs == pytest.approx([1 / 3, 0.0, 2 / 3])
    missing = BlendSpec(sources=(SourceSpec("nope", "generation", str(corpus), 1.0, 1, 1),))
    with pytest.raises(UalmError, match="do not hold"):
        probabilities(sources, missing)


def test_a_stream_whose_samples_never_fit_stops_with_the_reason(corpus: Path) -> None:
    """Every sample longer than a sequence: an error naming the cause, not an endless loop."""
    sources = discover([corpus])
    stream = PackedStream(sources, probabilities(sources, None),
                          StreamConfig(16, 2, 4, 0, 8, 0.05), TOK)
    with pytest.raises(UalmError, match="fits a sequence of 16 tokens") as error:
        stream.next_batch()
    assert "too_long" in str(error.value) and "data.seq_len" in error.value.fix


def test_batches_are_packed_deterministic_and_counted(corpus: Path) -> None:
    a = iter(_stream(corpus))
    b = iter(_stream(corpus))
    for _ in range(4):
        (x, state), (y, _) = next(a), next(b)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert x["tokens"].shape == (2, 9, 256)
    used = x["task_ids"] >= 0
    assert used.mean() > 0.5  # packed, not one sample per row
    # positions restart at 0 at each sample; labels only inside samples
    assert (x["text_labels"][~used] == IGNORE).all()
    assert (x["position_ids"][used] == 0).sum() >= 3
    other = next(iter(_stream(corpus, seed=1)))[0]
    assert not np.array_equal(other["tokens"], x["tokens"])
    assert sum(c[0] for c in state["counts"].values()) >= 8


def test_realised_tokens_use_the_shared_counting_rule(corpus: Path) -> None:
    stream = _stream(corpus)
    drawn = []
    draw = stream._draw

    def spy() -> object:
        sample = draw()
        drawn.append(sample)
        return sample

    stream._draw = spy  # type: ignore[method-assign]
    it = iter(stream)
    for _ in range(5):
        _, state = next(it)
    held = stream.buffer + ([stream.carry] if stream.carry is not None else [])
    assert sum(c[1] for c in state["counts"].values()) == sum(
        s.tokens for s in drawn) - sum(s.tokens for s in held)  # every drawn sample packed once
    source = stream.sources[0]
    _, parts = next(iter_samples(source.shards[0]))
    meta = load_json(parts["json"])
    ref, meta2, codes = stream.readers[0]._read_from(0, 0, 0).__next__()
    sample = stream._make(ref, meta2, codes)
    assert sample.tokens == sample_tokens(meta2, TOK, codes.shape[1], codes.shape[0])
    assert sample.tokens == len(meta2["captions"][0]) + 8 * meta2["frames"]
    assert meta["frames"] == 75


def test_a_row_ends_with_buffered_samples_that_fit_not_padding(
        corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample that does not fit the rest of a row starts the next one; the space it leaves is
    filled with buffered samples that fit (the longest first), so padding is only what no
    sample of the fill window fits."""
    def padding(stream: PackedStream, filled: bool) -> int:
        free = 0
        for _ in range(30):
            rows = Rows(1, 256, 8)
            stream.pack_row(rows, 0)
            left = int((rows.task_ids[0] < 0).sum())
            if filled:  # nothing in the window fits what was left
                assert all(s.length > left for s in stream.buffer[:FILL_WINDOW])
            free += left
        return free

    filled = padding(_stream(corpus, buffer=16), filled=True)
    monkeypatch.setattr("ualm.train.data.stream.best_fit", lambda *args, **kwargs: -1)
    unfilled = padding(_stream(corpus, buffer=16), filled=False)
    assert filled < unfilled * 0.7, (filled, unfilled)


def test_streams_read_disjoint_samples(corpus: Path) -> None:
    keys = []
    for stream in range(3):
        s = _stream(corpus, stream=stream, streams=3, buffer=1)
        mine = set()
        for _ in range(30):
            ref, meta, _ = s.readers[0].next()
            if ref[1] == 0:  # the first epoch
                mine.add(meta["input_id"])
        keys.append(mine)
    assert all(keys)
    assert not (keys[0] & keys[1]) and not (keys[1] & keys[2]) and not (keys[0] & keys[2])
    assert len(keys[0] | keys[1] | keys[2]) == 9  # together they cover the source once


def test_stream_resumes_exactly_from_its_state(corpus: Path) -> None:
    full = iter(_stream(corpus))
    for _ in range(5):
        _, state = next(full)
    resumed = _stream(corpus)
    resumed.restore(state)
    again = iter(resumed)
    for _ in range(6):
        (x, s1), (y, s2) = next(full), next(again)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert s1 == s2


def test_realised_shares_follow_the_blend(corpus: Path) -> None:
    sources = discover([corpus])
    blend = BlendSpec(sources=(
        SourceSpec("events-gen", "generation", str(corpus), 0.75, tokens=1, samples=1),
        SourceSpec("events-text", "text", str(corpus), 0.25, tokens=1, samples=1)))
    stream = PackedStream(sources, probabilities(sources, blend),
                          StreamConfig(512, 4, 4, 0, 8, 0.0), TOK)
    it = iter(stream)
    for _ in range(30):
        _, state = next(it)
    counts = state["counts"]
    total = sum(c[0] for c in counts.values())
    assert counts["events-und/understanding"][0] == 0
    assert counts["events-gen/generation"][0] / total == pytest.approx(0.75, abs=0.07)


@pytest.mark.parametrize("workers", [0, 2])
def test_data_module_resume_through_the_dataloader(corpus: Path, workers: int) -> None:
    config = DataConfig(seq_len=256, batch_size=2, shuffle_buffer=8, num_workers=workers)

    def module() -> UALMDataModule:
        dm = UALMDataModule([corpus], config, TOK, codebooks=8)
        dm.setup()
        return dm

    first = module()
    it = iter(first.train_dataloader())
    batches = []
    for _ in range(7):
        batch = next(it)
        first.record(batch.pop(STATE_KEY))
        batches.append(batch)
    saved = first.state_dict()
    after = [next(it) for _ in range(4)]
    del it
    second = module()
    second.load_state_dict(saved)
    it2 = iter(second.train_dataloader())
    for want in after:
        got = next(it2)
        got.pop(STATE_KEY)
        want.pop(STATE_KEY)
        assert all(torch.equal(got[k], want[k]) for k in want)
    realised = first.realised()
    assert sum(s["samples"] for s in realised["sources"].values()) > 0
    assert realised["tasks"].keys() <= {"generation", "understanding", "text"}
    assert sum(t["token_share"] for t in realised["tasks"].values()) == pytest.approx(1.0)
    if workers:
        seen = Counter(int(b["tokens"].sum()) for b in batches)
        assert len(seen) > 1


def _labels_by_definition(tokens: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Position p predicts p + 1 where p + 1 is a target: every codebook compared at every
    position (the plain formula `with_labels` must equal)."""
    k = tokens.shape[1] - 1
    stream0, codes, ahead = tokens[:, 0], tokens[:, 1:], target[:, 1:]
    text_labels = np.full(stream0.shape, IGNORE, dtype=np.int64)
    text_labels[:, :-1] = np.where(ahead, stream0[:, 1:], IGNORE)
    audio = (stream0[:, 1:] == FRAME) | (stream0[:, 1:] == PAD)
    text_weight = np.zeros(stream0.shape, dtype=np.float32)
    text_weight[:, :-1] = np.where(ahead, np.where(audio, 1.0 / k, 1.0), 0.0)
    code_labels = np.full(codes.shape, IGNORE, dtype=np.int64)
    code_labels[:, :, :-1] = np.where((codes[:, :, 1:] != CODE_PAD) & ahead[:, None],
                                      codes[:, :, 1:], IGNORE)
    return {"text_labels": text_labels, "text_weight": text_weight, "code_labels": code_labels}


def test_packed_labels_equal_their_definition(corpus: Path) -> None:
    stream = _stream(corpus)
    stream.config = StreamConfig(512, 4, 8, 0, 8, 0.3)  # dropped conditions too
    for _ in range(6):
        rows = Rows(4, 512, 8)
        for row in range(4):
            stream.pack_row(rows, row)
        got = rows.arrays()
        want = _labels_by_definition(rows.rows["tokens"], rows.rows["target"])
        assert (got["code_labels"] != IGNORE).any() and (got["text_weight"] == 0.125).any()
        for name, array in want.items():
            assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name


def test_read_ahead_feeds_the_cache_and_keeps_the_order(corpus: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def run() -> tuple[list[dict], PackedStream]:
        stream = _stream(corpus)
        out = []
        for (batch, state), _ in zip(stream, range(12), strict=False):
            out.append({**{k: v.tobytes() for k, v in batch.items()}, "state": state})
        return out, stream

    ahead, stream = run()
    cache = stream.readers[0].cache
    assert cache.read_ahead_used >= 3  # shards already fetched when first wanted
    monkeypatch.setattr(source_reader, "READ_AHEAD", 0)
    plain, stream = run()
    assert stream.readers[0].cache.read_ahead_used == 0
    assert ahead == plain

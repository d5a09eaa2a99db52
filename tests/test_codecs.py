"""EnCodec 24 kHz codecs: both backends, batch invariance, the random codec, errors.

Everything uses the seeded random codec (k-means-initialised codebooks), cached once per
session under a temporary UALM_CACHE; no weights are downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ualm.audio.synthetic import synth_clip
from ualm.errors import UalmError
from ualm.tokenize.codecs import (
    BANDWIDTHS,
    Codec,
    export_hf_folder,
    load_codec,
    save_encodec_checkpoint,
    to_transformers,
)
from ualm.tokenize.codecs._encodec_import import new_encodec_model
from ualm.tokenize.codecs.engine import StreamingEncoder, encode_streams
from ualm.tokenize.codecs.keymap import expected_shapes

SR = 24_000
# 12 clips of 2-15 s (about 2 min), lengths off the 320-sample frame grid and the 0.4 s step grid.
SECONDS = (14.9, 2.05, 13.3, 9.61, 12.2, 3.37, 14.01, 6.9, 11.77, 14.4, 2.6, 14.45)


@pytest.fixture(scope="session")
def cache(codec_cache: Path) -> Path:
    return codec_cache


@pytest.fixture(scope="session")
def codec(cache: Path) -> Codec:
    return load_codec("random", bandwidth=6.0, seed=0, device="cpu")


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    return [synth_clip(s, SR, seed=100 + i) for i, s in enumerate(SECONDS)]


@pytest.fixture(scope="session")
def codes(codec: Codec, clips: list[np.ndarray]) -> list[np.ndarray]:
    return codec.encode(clips)


@pytest.fixture(scope="session")
def th_path(codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_encodec_checkpoint(codec, tmp_path_factory.mktemp("th") / "encodec_test.th")


@pytest.fixture(scope="session")
def hf_folder(codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_hf_folder(codec, tmp_path_factory.mktemp("hf") / "encodec_24khz")


@pytest.fixture(scope="session")
def pairs(codec: Codec) -> Codec:
    """The same weights, two clips at a time (cheaper for one or two clips)."""
    return load_codec("random", seed=0, device="cpu", batch_size=2)


@pytest.fixture(scope="session")
def hf_codec(hf_folder: Path) -> Codec:
    return load_codec(str(hf_folder), device="cpu", batch_size=2)


def test_codes_shape_type_and_frame_count(codes: list[np.ndarray], clips: list[np.ndarray]) -> None:
    for clip, code in zip(clips, codes, strict=True):
        assert code.dtype == np.int16
        assert code.shape == (8, -(-len(clip) // 320))
        assert code.min() >= 0 and code.max() < 1024


def test_batch_invariance(codec: Codec, pairs: Codec, codes: list[np.ndarray],
                          clips: list[np.ndarray]) -> None:
    """A clip's codes are the same alone, in batches of 2, 3 and 12 in any order, beside other
    clips, and whether the codec runs 2 or up to 32 clips side by side."""
    assert pairs.batch_size == 2 and codec.batch_size == 32
    others = [synth_clip(s, SR, seed=900 + i) for i, s in enumerate((5.5, 1.3, 10.0))]
    alone = {i: pairs.encode([clips[i]])[0] for i in (1, 3, 5, 10)}
    in_threes = [c for i in range(0, 12, 3) for c in pairs.encode(clips[i : i + 3][::-1])[::-1]]
    mixed = codec.encode([others[0], *clips[:6][::-1], others[1]])[1:7][::-1]
    in_pair = pairs.encode([others[2], clips[10]])[1]
    for i, expected in enumerate(codes):
        np.testing.assert_array_equal(in_threes[i], expected, err_msg=f"clip {i} in threes")
        if i in alone:
            np.testing.assert_array_equal(alone[i], expected, err_msg=f"clip {i} alone")
        if i < 6:
            np.testing.assert_array_equal(mixed[i], expected, err_msg=f"clip {i} among others")
    np.testing.assert_array_equal(in_pair, codes[10])


def test_backends_give_identical_codes(hf_codec: Codec, th_path: Path,
                                       clips: list[np.ndarray], codes: list[np.ndarray]) -> None:
    from_th = load_codec(str(th_path), device="cpu", batch_size=2)
    assert (from_th.info.backend, hf_codec.info.backend) == ("encodec", "transformers")
    for other in (from_th, hf_codec):
        for i, got in zip((1, 10), other.encode([clips[1], clips[10]]), strict=True):
            np.testing.assert_array_equal(got, codes[i])


def test_reference_encoders_agree_with_each_other_and_with_streaming(
        codec: Codec, hf_codec: Codec, clips: list[np.ndarray], codes: list[np.ndarray]) -> None:
    """The encodec package and transformers, each encoding in one pass with its own modules,
    give identical codes; the streaming encoder matches them but for near-ties (about 1e-7)."""
    agree = []
    for i in (1, 5):  # 2.05 s and 3.37 s
        package = codec.encode_reference(clips[i])
        np.testing.assert_array_equal(hf_codec.encode_reference(clips[i]), package)
        assert package.shape == codes[i].shape
        agree.append((package == codes[i]).mean())
    assert min(agree) > 0.99, agree


def test_clip_edges_follow_encodec_padding(codec: Codec) -> None:
    """Clips shorter than a conv's padding, and ends on and off the frame and step grids: the
    streaming encoder's output matches the encodec package's one-pass encoder to float rounding
    in every frame (a padding mistake shows as an error of order 1e-2 at the edges)."""
    model = new_encodec_model()
    model.load_state_dict(codec.state_dict())
    engine = StreamingEncoder(codec.state_dict(), 0, torch.device("cpu"))
    base = np.tile(synth_clip(1.0, SR, seed=77), 2)
    lengths = (1, 7, 319, 321, 1919, 2241, 9599, 9601, 19201)
    clips = [base[:n] for n in lengths]
    ours = encode_streams(engine, clips, 3, torch.device("cpu"), quantize=False, shrink=True)
    scale = 0.0
    for n, clip, got in zip(lengths, clips, ours, strict=True):
        with torch.inference_mode():
            expected = model.encoder(torch.from_numpy(clip)[None, None])[0].numpy()
        assert got.shape == expected.shape == (128, -(-n // 320))
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=f"{n} samples")
        scale = max(scale, float(np.abs(expected).max()))
    assert scale > 0.01


def test_random_codec_spreads_codes_over_unseen_audio(codes: list[np.ndarray]) -> None:
    joined = np.concatenate(codes, axis=1)
    assert joined.shape[1] > 8000  # about 2 min at 75 frames/s
    distinct = [len(np.unique(row)) for row in joined]
    assert min(distinct) >= 256, distinct


def test_random_codec_tells_sounds_apart(codec: Codec) -> None:
    t = np.arange(3 * SR) / SR
    sine = (0.5 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    noise = (0.3 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    chirp = (0.5 * np.sin(2 * np.pi * (200 * t + 1000 * t**2))).astype(np.float32)
    first = codec.encode([sine, noise, chirp])
    again = codec.encode([chirp, sine])
    np.testing.assert_array_equal(again[1], first[0])
    np.testing.assert_array_equal(again[0], first[2])
    for a in range(3):
        for b in range(a + 1, 3):
            assert (first[a][0] == first[b][0]).mean() < 0.2, (a, b)


def test_every_bandwidth_sets_the_codebook_count(codec: Codec) -> None:
    clip = synth_clip(1.3, SR, seed=5)
    widest = None
    for bandwidth, count in zip(BANDWIDTHS, (2, 4, 8, 16, 32), strict=True):
        loaded = load_codec("random", bandwidth=bandwidth, device="cpu", batch_size=2)
        assert loaded.info.codebooks == count and loaded.info.bandwidth == bandwidth
        assert f"-{bandwidth:g}kbps-" in loaded.info.codec_id
        code = loaded.encode([clip])[0]
        assert code.shape == (count, 98)
        if widest is not None:  # residual VQ: fewer codebooks are a prefix of more
            np.testing.assert_array_equal(code[: widest.shape[0]], widest)
        widest = code
        assert len(np.unique(code[-1])) > 1


def test_decode_length_and_both_backends(codec: Codec, hf_codec: Codec) -> None:
    clip = synth_clip(2.5, SR, seed=11)
    code = codec.encode([clip])[0]
    for backend in (codec, hf_codec):
        audio = backend.decode(code)
        assert audio.dtype == np.float32 and audio.shape == (code.shape[1] * 320,)
        assert len(audio) >= len(clip) and np.isfinite(audio).all()
    np.testing.assert_allclose(hf_codec.decode(code), codec.decode(code), atol=1e-5)
    assert codec.encode([np.zeros(0, np.float32)])[0].shape == (8, 0)


def test_codec_id_is_the_same_for_the_same_weights(codec: Codec, hf_codec: Codec,
                                                   th_path: Path, tmp_path: Path) -> None:
    from_th = load_codec(str(th_path), device="cpu", batch_size=2)
    assert codec.info.codec_id == from_th.info.codec_id == hf_codec.info.codec_id
    assert re.fullmatch(r"encodec_24khz-6kbps-[0-9a-f]{12}", codec.info.codec_id)
    assert codec.info.random_weights and not from_th.info.random_weights
    assert from_th.info.checkpoint_sha256 == hashlib.sha256(th_path.read_bytes()).hexdigest()
    info = codec.info.to_dict()
    assert info["codec_id"] == codec.info.codec_id and info["sample_rate"] == SR
    assert info["frame_rate"] == 75.0 and info["codebook_size"] == 1024
    state = codec.state_dict()
    state["decoder.model.15.conv.conv.bias"] = state["decoder.model.15.conv.conv.bias"] + 1e-3
    changed = load_codec(str(save_encodec_checkpoint(state, tmp_path / "x.th")), device="cpu")
    assert changed.info.codec_id != codec.info.codec_id


def test_random_codec_is_cached(codec: Codec, pairs: Codec, cache: Path) -> None:
    files = list((cache / "codecs").glob("encodec_24khz-random-seed0-*.pt"))
    assert len(files) == 1
    assert pairs.info.checkpoint_sha256 == codec.info.checkpoint_sha256
    assert pairs.info.checkpoint_sha256 == pairs.info.weights_sha256


def test_key_mapping_covers_every_tensor() -> None:
    from transformers import EncodecConfig, EncodecModel

    hf = {k: tuple(v.shape) for k, v in EncodecModel(EncodecConfig()).state_dict().items()}
    ours = {k: torch.zeros(s) for k, s in expected_shapes().items()}
    mapped = {k: tuple(v.shape) for k, v in to_transformers(ours).items()}
    assert len(mapped) == len(ours) == 252
    assert mapped == hf


def test_transformers_imports_after_encodec() -> None:
    code = ("import sys\n"
            "from ualm.tokenize.codecs._encodec_import import import_encodec_model\n"
            "import_encodec_model()\n"
            "assert 'torchaudio' not in sys.modules\n"
            "from transformers import EncodecModel\n"
            "print(EncodecModel.__name__)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "EncodecModel"


def _error(source: str, **kwargs: object) -> UalmError:
    kwargs.setdefault("device", "cpu")
    with pytest.raises(UalmError) as caught:
        load_codec(source, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and caught.value.fix
    return caught.value


def test_errors_unknown_name_and_missing_file(tmp_path: Path) -> None:
    err = _error("encodec_24khz")
    assert "unknown codec" in err.message and "facebook/encodec_24khz" in err.fix
    assert "random" in err.fix
    err = _error(str(tmp_path / "encodec_24khz-d7cc33bc.th"))
    assert "not found" in err.message and "facebook/encodec_24khz" in err.fix


def test_errors_corrupt_and_wrong_checkpoints(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.th"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint" * 40)
    assert "cannot read" in _error(str(corrupt)).message
    linear = tmp_path / "linear.th"
    torch.save(torch.nn.Linear(4, 2).state_dict(), linear)
    assert "not an EnCodec 24 kHz checkpoint" in _error(str(linear)).message
    wrapped = tmp_path / "wrapped.th"
    torch.save({"model": {"encoder.model.0.conv.conv.bias": torch.zeros(3)}}, wrapped)
    assert "tensors missing" in _error(str(wrapped)).message


def test_errors_hf_folders(hf_folder: Path, tmp_path: Path) -> None:
    config = json.loads((hf_folder / "config.json").read_text())
    wrong = tmp_path / "wrong-config"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({**config, "sampling_rate": 48000}))
    (wrong / "model.safetensors").symlink_to(hf_folder / "model.safetensors")
    assert "sampling_rate=48000" in _error(str(wrong)).message
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps(config))
    assert "no weights" in _error(str(empty)).message
    assert "no config.json" in _error(str(tmp_path)).message


def test_errors_bandwidth_device_and_clips(codec: Codec) -> None:
    err = _error("random", bandwidth=7.0)
    assert "unsupported bandwidth" in err.message and "1.5, 3, 6, 12, 24" in err.fix
    assert "unknown device" in _error("random", device="tpu:9").message
    with pytest.raises(UalmError, match="clip 0 has shape"):
        codec.encode([np.zeros((2, 100), np.float32)])
    with pytest.raises(UalmError, match="NaN"):
        codec.encode([np.full(100, np.nan, np.float32)])
    with pytest.raises(UalmError, match="cannot be decoded"):
        codec.decode(np.zeros((8,), np.int16))

"""`ualm export ualm`: a corpus (audio, text and reasoning traces) as UALM's trainer-side layout,
read back by an independent reader (tests/ualm_reader.py) and compared sample by sample with
the corpus; the blend applied by listing; what UALM would drop counted; S3 in and out."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.s3_server import moto_s3
from tests.synth_helpers import copy_corpus
from tests.ualm_reader import expected, read_corpus, read_export
from ualm.cli import main
from ualm.export.run import export_ualm
from ualm.manifests.shards import TarShardWriter
from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus
from ualm.train.blend.spec import BlendSpec, SourceSpec

TASKS = {"generation": "caption_to_audio", "understanding": "audio_to_conversation",
         "text": "text_only", "reasoning": "caption_to_audio"}


@pytest.fixture(scope="module")
def corpus(event_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's event corpus (audio of two tasks, text) with reasoning traces added."""
    root = copy_corpus(event_corpus, tmp_path_factory.mktemp("export-events") / "corpus")
    synth_corpus(root, SynthConfig(limit=6), progress=False)
    return root


@pytest.fixture(scope="module")
def exported(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ualm"
    assert main(["export", "ualm", str(corpus), str(out)]) == 0
    return out


def _check_against(found: dict, truth: dict) -> dict[str, int]:
    """Every listed sample's text and audio bytes equal the corpus's; listings per key."""
    listed: dict[str, int] = {}
    for dataset, data in found.items():
        for sid, row in data["samples"].items():
            name, key = sid.split("::")[:2]
            assert name == dataset
            text, audio = expected(key, truth)
            value = row["value"]
            assert {k: value["text"][k] for k in text} == text, sid
            assert value["ualm_task"] == TASKS[truth[key]["meta"]["task"]]
            assert (row["audio"] is None) == (audio is None)
            assert set(data["entries"]) == ({"audio", "text"} if audio else {"text"})
            if audio is not None:
                assert row["audio"]["bytes"] == audio, sid
            listed[key] = listed.get(key, 0) + 1
    return listed


def test_every_sample_reads_back_as_the_corpus_holds_it(corpus: Path, exported: Path) -> None:
    truth = read_corpus(corpus)
    found = read_export(exported)
    listed = _check_against(found, truth)
    assert listed == {key: 1 for key in truth}  # no blend: every sample once, none lost
    assert {d["task"] for d in found.values()} == set(TASKS.values())
    registry = __import__("yaml").safe_load((exported / "dataset_registry.yaml").read_text())
    assert {d: Path(v["path"]) for d, v in registry.items()} == {
        d: exported / f"{d}_manifest.json" for d in found}
    report = json.loads((exported / "export_report.json").read_text())
    assert report["samples_listed"] == len(truth) and report["complete"]


def test_paths_relative_to_the_trainer(corpus: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    export_ualm(corpus, tmp_path / "data" / "ualm", trainer_path="data/ualm")
    manifest = json.loads(next((tmp_path / "data" / "ualm").glob("text.*_manifest.json"))
                          .read_text())
    assert manifest["data_entry"][0]["path"] == "data/ualm/_metadata.lmdb"
    monkeypatch.chdir(tmp_path)  # the trainer's working directory
    _check_against(read_export(Path("data/ualm")), read_corpus(corpus))
    export_ualm(corpus, "by-default")  # a relative OUT: absolute paths by default
    manifest = json.loads(next(Path("by-default").glob("text.*_manifest.json")).read_text())
    assert manifest["data_entry"][0]["path"] == str(tmp_path / "by-default" / "_metadata.lmdb")


def test_the_blend_is_the_listed_mixture(corpus: Path, exported: Path, tmp_path: Path) -> None:
    found = read_export(exported)
    groups = {d: (d.split(".")[1], d.split(".")[0]) for d in found}
    tokens = {d: sum(r["length"] for r in found[d]["samples"].values()) for d in found}
    weights = dict(zip(sorted(found), [0.3, 0.1, 0.0, 0.25, 0.05, 0.3], strict=True))
    budget = 8 * sum(tokens.values())
    spec = BlendSpec(sources=tuple(
        SourceSpec(name=groups[d][0], task=groups[d][1], corpus=str(corpus), weight=w,
                   tokens=tokens[d], samples=len(found[d]["samples"]),
                   expected_epochs=w * budget / tokens[d]) for d, w in weights.items()),
        budget_tokens=budget)
    export_ualm(corpus, tmp_path / "a")  # an earlier export's files give way to the blend's
    runs = []
    for run in ("a", "b"):
        report = export_ualm(corpus, tmp_path / run, spec)
        runs.append({p.name: p.read_text().replace(str(tmp_path / run), "OUT")
                     for p in sorted((tmp_path / run).glob("*.json"))
                     if p.name != "export_report.json"})
    assert runs[0] == runs[1]  # deterministic listings
    blended = read_export(tmp_path / "a")
    listed = _check_against(blended, read_corpus(corpus))
    assert max(listed.values()) > 1  # repeats point at the same audio bytes (checked above)
    share = {d: sum(r["length"] for r in blended[d]["samples"].values()) for d in blended}
    total = sum(share.values())
    assert set(blended) == {d for d, w in weights.items() if w > 0}
    for d, w in weights.items():
        assert abs(share.get(d, 0) / total - w) < 0.02, (d, share.get(d, 0) / total, w)
    assert report["datasets"][min(blended)]["blend_weight"] == weights[min(blended)]


def _stereo_copy(corpus: Path, to: Path) -> str:
    """A copy of the corpus whose first audio sample is stereo; returns its key."""
    root = copy_corpus(corpus, to)
    shard = sorted((root / "audio").glob("*.tar"))[0]
    from ualm.manifests.shard_reader import iter_samples

    samples = [(k, {e: bytes(v) for e, v in p.items()}) for k, p in iter_samples(shard)]
    wave, rate = soundfile.read(io.BytesIO(samples[0][1]["flac"]))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([wave, -wave], axis=1), rate, format="FLAC")
    samples[0][1]["flac"] = buffer.getvalue()
    with TarShardWriter(shard) as writer:
        for key, parts in samples:
            writer.write({"__key__": key, **parts})
    return samples[0][0]


def test_what_ualm_would_drop_is_counted_and_warned(corpus: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    stereo = _stereo_copy(corpus, tmp_path / "corpus")
    truth = read_corpus(tmp_path / "corpus")
    limit = 110
    assert main(["export", "ualm", str(tmp_path / "corpus"), str(tmp_path / "out"),
                 "--batch-size", str(limit)]) == 0
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "export_report.json").read_text())
    drops = report["ualm_would_drop"]
    found = read_export(tmp_path / "out")
    listed = _check_against(found, truth)
    assert all(r["length"] <= limit for d in found.values() for r in d["samples"].values())
    left_out = [k for k in truth if k not in listed]
    assert left_out and drops["too_long"] == len(left_out)
    assert all(truth[k]["meta"]["task"] != "text" for k in left_out)  # short ones all stay
    kinds = [truth[k]["meta"].get("kind") for k in truth]
    assert drops["multi_turn"] == kinds.count("dialogue")
    assert drops["extra_audio"] == kinds.count("reflection")
    assert drops["multichannel"] == 1 + sum(  # the stereo clip, and traces ending in it
        1 for k in truth if truth[k]["meta"].get("source_keys", [None])[0] == stereo)
    stereo_rows = [r for d in found.values() for s, r in d["samples"].items()
                   if s.endswith(f"::{stereo}")]
    assert all(r["audio"]["channels"] == 2 for r in stereo_rows)  # exported whole, not cut
    assert "multi-channel audio" in err and "longer than the batch size" in err
    assert "preference pair" in err


def test_export_refuses_a_folder_it_did_not_write(corpus: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.txt").write_text("x")
    assert main(["export", "ualm", str(corpus), str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    import ualm.export.run as run

    monkeypatch.setattr(run, "_write", lambda *a: 1 / 0)  # a crash after the audio
    with pytest.raises(ZeroDivisionError):
        export_ualm(corpus, tmp_path / "crashed")
    assert not json.loads((tmp_path / "crashed" / "export_report.json").read_text())["complete"]
    monkeypatch.undo()
    assert main(["export", "ualm", str(corpus), str(tmp_path / "crashed")]) == 0  # a rerun


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_s3(monkeypatch, "ualm-export") as endpoint:
        yield endpoint


def test_corpus_and_export_in_a_store(corpus: Path, store: str, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.put(f"{corpus}/", "ualm-export/corpus/", recursive=True)
    local = tmp_path / "trainer" / "ualm"
    export_ualm("s3://ualm-export/corpus", "s3://ualm-export/ualm", trainer_path=str(local))
    fs.get("ualm-export/ualm/", f"{local}/", recursive=True)
    listed = _check_against(read_export(local), read_corpus(corpus))
    assert listed == {key: 1 for key in read_corpus(corpus)}
    shutil.rmtree(local)


def test_dataset_names_cannot_end_one_another() -> None:
    """UALM's train.py gives a stats file to the first manifest whose name ends the file's
    name: `caps` and `audiocaps` must not be mistaken for each other."""
    from ualm.export.mapping import dataset_id
    from ualm.export.write import ambiguous_ids

    assert ambiguous_ids({"caps-generation": "caption_to_audio",
                          "audiocaps-generation": "caption_to_audio"}) == ["audiocaps-generation"]
    ours = {dataset_id(s, t): "caption_to_audio" for s in ("caps", "audiocaps", "a caps")
            for t in ("generation", "understanding", "reasoning")}
    assert len(ours) == 9 and ambiguous_ids(ours) == []


def test_lengths_count_the_given_tokenizer(corpus: Path, tmp_path: Path) -> None:
    """UALM's statistic: 1, per turn 3 plus its tokens (the first two turns), 50 per second."""
    export_ualm(corpus, tmp_path / "bytes", tokenizer="bytes")
    found = read_export(tmp_path / "bytes")
    text = next(d for d in found.values() if d["task"] == "text_only")
    for row in text["samples"].values():
        turns = row["value"]["text"]["conversations"][:2]
        assert row["length"] == 1 + sum(3 + len(t["value"].encode()) for t in turns)
    audio = next(d for d in found.values() if d["task"] == "audio_to_conversation")
    for row in audio["samples"].values():
        turns = row["value"]["text"]["conversations"][:2]
        seconds = row["audio"]["frames"] / row["value"]["audio"]["sampling_rate"]
        assert row["length"] == 1 + sum(3 + len(t["value"].encode()) for t in turns) + round(
            50 * seconds)


def test_a_blend_from_ualm_blend_survives_ualms_weights(corpus: Path, tmp_path: Path) -> None:
    """The spec `ualm blend` writes, applied: each source's listed samples, counted in the
    blend's own tokens per sample, make its weight; the least-read source is read once."""
    import yaml

    spec_file = tmp_path / "blend.yaml"
    assert main(["blend", str(corpus), "--out", str(spec_file), "--targets",
                 "understanding=0.3,generation=0.3,text=0.2,reasoning=0.2"]) == 0
    assert main(["export", "ualm", str(corpus), str(tmp_path / "out"),
                 "--blend", str(spec_file)]) == 0
    sources = yaml.safe_load(spec_file.read_text())["sources"]
    found = read_export(tmp_path / "out")
    listed = {f"{s['task']}.{s['name']}": len(found[f"{s['task']}.{s['name']}"]["samples"])
              for s in sources}
    tokens = {f"{s['task']}.{s['name']}": s["tokens"] / s["samples"] for s in sources}
    total = sum(listed[d] * tokens[d] for d in listed)
    for s in sources:
        d = f"{s['task']}.{s['name']}"
        assert abs(listed[d] * tokens[d] / total - s["weight"]) < 0.002, d
    assert min(listed[d] / s["samples"] for d, s in zip(listed, sources, strict=True)) == 1

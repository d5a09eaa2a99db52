"""UALM's public manifest formats through a whole build; long inputs in bounded memory."""

from __future__ import annotations

import json
import tarfile
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq

from ualm.audio.synthetic import synth_clip, write_audio, write_long_recording
from ualm.config import BuildConfig
from ualm.inputs.listing import list_inputs
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus
from ualm.pipelines.ingest import IngestTask, run_ingest_unit


def _ualm_manifest(root: Path) -> Path:
    write_audio(root / "audio" / "long.flac", synth_clip(25.0, 16000, seed=1), 16000, "flac")
    write_audio(root / "audio" / "q.wav", synth_clip(6.0, 48000, seed=2, channels=2), 48000, "wav16")
    chat = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    rows = [
        {"location": "audio/long.flac", "start_time": 3.0, "end_time": 15.5, "duration": 12.5,
         "caption": "a synthetic chord", "sample_rate": 16000},
        {"id": "und-1", "sound": "audio/q.wav", "duration": 6.0, "conversations": [
            {"from": "human", "value": "<sound>\nDescribe the sound."},
            {"from": "gpt", "value": "Two tones."}]},
        {"id": "chat-1", "messages": chat},
        {"id": "chat-2", "messages": chat, "source": "mirror"},
        {"id": "chat-3", "messages": [{"role": "user", "content": "hi"}]},
    ]
    manifest = root / "ualm.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_ualm_formats_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    build_corpus([_ualm_manifest(tmp_path)], out, BuildConfig(), engine="local", progress=False)
    summary = summarize(out)
    assert (summary["inputs"], summary["kept"], summary["duplicates"]) == (5, 4, 1)
    samples = pq.read_table(out / "manifests" / "samples").to_pylist()
    generation = [s for s in samples if s["task"] == "generation"]
    # 3.0 s .. 15.5 s is 12.5 s: one full window and a 2.5 s tail.
    assert [(s["offset"], s["seconds"]) for s in generation] == [(3.0, 10.0), (13.0, 2.5)]
    understanding = next(s for s in samples if s["input_id"] == "und-1")
    assert json.loads(understanding["extra"])["conversations"][1]["value"] == "Two tones."
    text = [s for s in samples if s["modality"] == "text"]
    assert [s["input_id"] for s in text] == ["chat-1", "chat-3"]
    duplicate = pq.read_table(out / "manifests" / "duplicates").to_pylist()
    assert [(d["input_id"], d["duplicate_of"]) for d in duplicate] == [("chat-2", "chat-1")]
    with tarfile.open(out / "text" / "text-000000.tar") as tar:
        names = tar.getnames()
        assert all(n.endswith(".json") for n in names) and len(names) == 2
        first = json.loads(tar.extractfile(names[0]).read())
    assert first["messages"][1] == {"role": "assistant", "content": "4"}
    assert first["task"] == "text"
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: text" in card


def test_a_long_input_is_ingested_in_bounded_memory(tmp_path: Path) -> None:
    """20 minutes at 24 kHz is 115 MB of float32; the ingest map must never hold it."""
    path = write_long_recording(tmp_path / "long.flac", 1200.0, 16000, fmt="flac", seed=3)
    listing = list_inputs([tmp_path], unit_size=1)
    out = tmp_path / "corpus"
    task = IngestTask(str(out), 0, BuildConfig().to_dict(), listing.units[0])
    tracemalloc.start()
    summary = run_ingest_unit(task)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert path.name in next(iter(listing)).input_id
    assert summary["kept_samples"] == 120
    assert abs(summary["kept_seconds"] - 1200.0) < 0.01
    assert peak < 40 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"

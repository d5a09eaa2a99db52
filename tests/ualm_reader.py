"""An independent reader of the data directory UALM's trainer reads, written from the layout
(../shared/UALM.md and UALM's public loader) and not from ualm's export code: manifests, the
LMDB, stats files matched to manifests as UALM's train.py matches them, audio as byte ranges of
plain tars decoded with soundfile. And the corpus read with `tarfile`, as the truth to compare
against."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import soundfile

ROLES = {"user": "human", "assistant": "gpt"}


def read_export(out: Path) -> dict[str, Any]:
    """{dataset: {"task", "entries", "samples": {id: {"value", "length", "audio"}}}}."""
    import lmdb

    manifests = {p.name[: -len("_manifest.json")]: json.loads(p.read_text())
                 for p in sorted(out.glob("*_manifest.json"))}
    stats: dict[str, tuple[str, dict[str, int]]] = {}
    for path in sorted((out / "stats").glob("*.jsonl")):
        stem = path.name[: -len(".jsonl")]
        owners = [d for d in manifests if stem.endswith(d)]  # UALM takes the first of these
        assert len(owners) == 1, f"{path.name} matches manifests {owners}"
        task = stem[len("stats_"): -len(owners[0]) - 1]
        lengths: dict[str, int] = {}
        for line in path.read_text().splitlines():
            lengths.update(json.loads(line))
        stats[owners[0]] = (task, lengths)
    env = lmdb.open(str(out / "_metadata.lmdb"), readonly=True, lock=False)
    found: dict[str, Any] = {}
    with env.begin() as txn:
        for dataset, manifest in manifests.items():
            assert dataset in stats, f"{dataset} has no stats file: UALM would not train it"
            task, lengths = stats[dataset]
            rows = {}
            for sid in manifest["samples"]:
                value = pickle.loads(txn.get(sid.encode()))
                assert value["ualm_task"] == task and isinstance(value["text"], dict)
                rows[sid] = {"value": value, "length": lengths[sid],
                             "audio": _audio(value["audio"]) if "audio" in value else None}
            found[dataset] = {"task": task, "samples": rows,
                              "entries": {e["name"]: e for e in manifest["data_entry"]}}
    env.close()
    return found


def _audio(meta: dict[str, Any]) -> dict[str, Any]:
    """The byte range, read with a plain seek, and what soundfile makes of it."""
    with open(meta["tar_path"], "rb") as handle:
        handle.seek(meta["tar_offset"])
        data = handle.read(meta["tar_size"])
    assert isinstance(meta["offset"], float)
    wave, rate = soundfile.read(io.BytesIO(data), frames=int(meta["duration"] *
                                                             meta["sampling_rate"]),
                                always_2d=True)
    info = soundfile.info(io.BytesIO(data))
    assert rate == meta["sampling_rate"] and wave.shape[0] == info.frames
    return {"bytes": data, "frames": info.frames, "channels": info.channels}


def read_corpus(corpus: Path) -> dict[str, dict[str, Any]]:
    """Every sample and trace of a corpus folder by key: its JSON and its audio bytes."""
    samples: dict[str, dict[str, Any]] = {}
    for folder in ("audio", "text", "traces"):
        for shard in sorted((corpus / folder).glob("*.tar")):
            with tarfile.open(shard) as tar:
                for member in tar.getmembers():
                    key, _, ext = member.name.partition(".")
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    samples.setdefault(key, {})[ext] = data
    return {k: {"meta": json.loads(v["json"]), "audio": v.get("flac")}
            for k, v in samples.items()}


def expected(key: str, corpus: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], bytes | None]:
    """What the export must hold for a corpus key: the text fields UALM's templates read, and
    the audio bytes."""
    meta = corpus[key]["meta"]
    conv = (meta.get("extra") or {}).get("conversations")
    if meta.get("task") == "reasoning":
        said, target = [], None
        for turn in meta["messages"]:
            if turn["role"] != "assistant" or target:
                continue
            said = []  # the text of the turn that ends in the target audio
            content = turn["content"]
            for part in [{"type": "text", "text": content}] if isinstance(content, str) \
                    else content:
                if part["type"] == "audio" and part.get("target", True):
                    target = part["key"]
                    break
                if part["type"] == "text":
                    said.append(part["text"])
        return {"caption": " ".join(said)}, corpus[target]["audio"]
    if "messages" in meta:
        return {"conversations": [{"from": ROLES[m["role"]], "value": m["content"]}
                                  for m in meta["messages"]]}, None
    if conv:
        return {"conversations": conv}, corpus[key]["audio"]
    return {"caption": meta["captions"][0]}, corpus[key]["audio"]

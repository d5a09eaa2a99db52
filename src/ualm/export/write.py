"""The files of a UALM data directory (the layout `scripts/train.py --data-config-path` reads):

    <dataset>_manifest.json          data_entry (audio, text readers on the LMDB) and sample ids
    _metadata.lmdb/data.mdb          id -> pickled {ualm_task, text, audio: byte range in a tar}
    stats/stats_<task>_<dataset>.jsonl   {"<id>": <length>} per sample
    audio/audio-000000.tar           plain tars: <key>.flac members, whole files
    dataset_registry.yaml            dataset -> {path: its manifest}
    export_report.json               what was exported, repeated, and what UALM would drop

written through the corpus package's filesystem layer, so OUT may be a folder or an fsspec URL
(s3://...). Paths inside the files are those the trainer will open: OUT's own absolute path by
default, or `trainer_path` (absolute, or relative to the trainer's working directory).
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ualm.errors import UalmError
from ualm.manifests import storage
from ualm.manifests.layout import CorpusLayout

LMDB = "_metadata.lmdb"
REPORT = "export_report.json"
REGISTRY = "dataset_registry.yaml"
PICKLE_PROTOCOL = 4
"""Readable by every Python UALM runs on."""


def manifest_name(dataset: str) -> str:
    return f"{dataset}_manifest.json"


def stats_name(task: str, dataset: str) -> str:
    return f"stats/stats_{task}_{dataset}.jsonl"


class UalmDir:
    """OUT: where each file goes, and the name the trainer knows it by."""

    def __init__(self, out: str | Path, trainer_path: str | None = None) -> None:
        self.layout = CorpusLayout(out)
        if trainer_path is None and not self.layout.local:
            raise UalmError(f"UALM's trainer reads local files, and {self.layout.location} is "
                            "not a local folder", fix="say where the trainer will find the "
                            "folder with --trainer-path (e.g. /data/ualm, or data/ualm)")
        self.prefix = trainer_path if trainer_path is not None else \
            str(Path(self.layout.root).resolve())

    def path(self, name: str) -> str:
        """Where the export writes `name`."""
        return self.layout.path(name)

    def trainer(self, name: str) -> str:
        """What the trainer opens for `name`."""
        return storage.join(self.prefix, name) if storage.is_remote(self.prefix) else \
            (Path(self.prefix) / name).as_posix()

    def claim(self) -> None:
        """A fresh folder, or one an earlier export wrote (its stale files are replaced): the
        report, written first as `complete: false`, marks it as an export's, so that a rerun
        after a crash may write there again."""
        entries = self.layout.entries()
        if entries and REPORT not in entries:
            raise UalmError(f"{self.layout.location} is not empty and holds no earlier export",
                            fix="export into a new folder")
        self.write_json(REPORT, {"ualm_export": 1, "complete": False})

    def remove_stale(self, keep: set[str]) -> None:
        """Manifests and stats files of an earlier export that this one did not write:
        UALM's trainer would train on every manifest and stats file it finds."""
        stale = [p for p in self.layout.list(self.layout.root, suffix="_manifest.json")
                 + self.layout.list(self.path("stats"), suffix=".jsonl")
                 if self.layout.relative(p) not in keep]
        self.layout.remove(*stale)

    def write_json(self, name: str, obj: Any) -> None:
        self.layout.write_bytes(self.path(name), json.dumps(obj, indent=1, sort_keys=True,
                                                            ensure_ascii=False).encode())

    def write_manifest(self, dataset: str, ids: list[str], with_audio: bool) -> str:
        entries = [{"name": "text", "path": self.trainer(LMDB), "reader": "tarball_dialogue"}]
        if with_audio:
            entries.insert(0, {"name": "audio", "path": self.trainer(LMDB),
                               "reader": "tarball_audio_byteseek"})
        name = manifest_name(dataset)
        self.layout.write_bytes(self.path(name), json.dumps(
            {"data_entry": entries, "samples": ids}, ensure_ascii=False).encode())
        return name

    def write_stats(self, task: str, dataset: str, lengths: Iterable[tuple[str, int]]) -> str:
        name = stats_name(task, dataset)
        lines = "".join(json.dumps({i: n}, ensure_ascii=False) + "\n" for i, n in lengths)
        self.layout.write_bytes(self.path(name), lines.encode())
        return name

    def write_registry(self, datasets: list[str]) -> None:
        registry = {d: {"path": self.trainer(manifest_name(d))} for d in sorted(datasets)}
        self.layout.write_bytes(self.path(REGISTRY), yaml.safe_dump(registry).encode())

    def write_lmdb(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """One LMDB of every sample, in id order (written in a staging folder, then put in
        place: a store has no LMDB); returns its size in bytes."""
        import lmdb

        staged = sorted((i.encode(), pickle.dumps(v, protocol=PICKLE_PROTOCOL))
                        for i, v in entries)
        room = 2 * sum(len(k) + len(v) + 64 for k, v in staged) + (16 << 20)
        near = Path(self.layout.root).parent if self.layout.local else None
        if near is not None:
            near.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".ualm-lmdb-", dir=near))
        try:
            env = lmdb.open(str(folder), map_size=room, subdir=True, lock=False)
            with env.begin(write=True) as txn:
                for key, value in staged:
                    txn.put(key, value)
            env.close()
            data = folder / "data.mdb"
            size = data.stat().st_size
            if self.layout.local:
                Path(self.path(LMDB)).mkdir(parents=True, exist_ok=True)
            self.layout.upload(data, self.path(f"{LMDB}/data.mdb"))
            return size
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def ambiguous_ids(datasets: dict[str, str]) -> list[str]:
    """Datasets UALM's `train.py` would mistake for another: it gives a stats file
    `stats_<task>_<name>` to the first manifest whose name ends it. `datasets`: name -> task."""
    bad = []
    for name, task in datasets.items():
        stem = f"stats_{task}_{name}"
        if any(stem.endswith(other) for other in datasets if other != name):
            bad.append(name)
    return sorted(bad)

"""Hugging Face datasets (parquet with the `datasets` Audio struct, in the Hub's layout) and
WebDataset tars as sources: every row or sample accounted for, stable ids, hostile tar members
that never touch the file system, and the same shards as a build of the same files by path."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL, tree_bytes
from ualm.audio.synthetic import EXTENSIONS, synth_clip, write_audio
from ualm.inputs.listing import list_inputs
from ualm.pipelines.build import build_corpus

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    formats = ["flac", "wav16", "mp3", "ogg", "flac", "wav24", "opus"]
    return [write_audio(root / f"clip{i}.{EXTENSIONS[fmt]}",
                        synth_clip(1.5 + 0.5 * i, 24000, 100 + i), 24000, fmt)
            for i, fmt in enumerate(formats)]


def _hub_folder(root: Path, rows: list[dict], *, files: int = 2, row_group: int = 2,
                extra_columns: dict[str, list] | None = None) -> Path:
    """A dataset folder in the Hub's layout: README.md + data/train-0000K-of-0000N.parquet."""
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    per_file = -(-len(rows) // files)
    for k in range(files):
        part = rows[k * per_file:(k + 1) * per_file]
        columns = {"audio": pa.array([r["audio"] for r in part], type=AUDIO),
                   "caption": pa.array([r["caption"] for r in part], type=pa.string())}
        for name, values in (extra_columns or {}).items():
            columns[name] = pa.array(values[k * per_file:(k + 1) * per_file])
        pq.write_table(pa.table(columns),
                       root / "data" / f"train-{k:05d}-of-{files:05d}.parquet",
                       row_group_size=row_group)
    return root


def _audio(path: Path) -> dict:
    return {"bytes": path.read_bytes(), "path": path.name}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _audio_shards(corpus: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree_bytes(corpus).items() if k.startswith("audio/")}


def _reasons(corpus: Path) -> dict[str, str]:
    table = pq.read_table(corpus / "manifests" / "rejects").to_pylist()
    return {r["input_id"]: r["reason"] for r in table if r["level"] == "input"}


def test_hub_layout_folder_equals_the_same_files_by_path(clips: list[Path], tmp_path: Path) -> None:
    rows = [{"audio": _audio(p), "caption": f"sound {i}"} for i, p in enumerate(clips)]
    dataset = _hub_folder(tmp_path / "birds", rows)
    listing = list_inputs([dataset])
    ids = [r.input_id for r in list(listing)]
    assert ids == [f"birds/data/train-00000-of-00002.parquet#{i}" for i in range(4)] + [
        f"birds/data/train-00001-of-00002.parquet#{i}" for i in range(3)]
    assert list_inputs([dataset]).digest == listing.digest  # stable, deterministic
    hub = build_corpus([dataset], tmp_path / "hub", SMALL, engine="local", progress=False)
    manifest = _write_jsonl(tmp_path / "paths.jsonl", [
        {"id": i, "path": str(p), "caption": f"sound {n}", "source": "birds"}
        for n, (i, p) in enumerate(zip(ids, clips, strict=True))])
    by_path = build_corpus([manifest], tmp_path / "paths", SMALL, engine="local",
                           allow_roots=[clips[0].parent], progress=False)
    assert hub.summary["kept"] == by_path.summary["kept"] == len(clips)
    assert _audio_shards(hub.corpus) and _audio_shards(hub.corpus) == _audio_shards(by_path.corpus)


def test_hub_rows_accounted_for_with_mapping_and_opt_out(clips: list[Path],
                                                         tmp_path: Path) -> None:
    rows = [{"audio": _audio(clips[0]), "caption": None},
            {"audio": {"bytes": None, "path": "elsewhere.wav"}, "caption": None},
            {"audio": {"bytes": b"<html>nope</html>", "path": "x.mp3"}, "caption": None},
            {"audio": _audio(clips[1]), "caption": None},
            {"audio": _audio(clips[2]), "caption": None}]
    dataset = _hub_folder(tmp_path / "mixed", rows, files=1, extra_columns={
        "text": ["a dog", "b", "c", "d", "e"], "no_train": [False, False, False, True, False]})
    config = dataclasses.replace(SMALL, crawl=dataclasses.replace(
        SMALL.crawl, columns={"text": "caption"}, opt_out_column="no_train"))
    records = list(list_inputs([dataset], crawl=config.crawl))
    assert records[0].captions == ("a dog",)
    result = build_corpus([dataset], tmp_path / "corpus", config, engine="local", progress=False)
    prefix = "mixed/data/train-00000-of-00001.parquet#"
    assert _reasons(result.corpus) == {f"{prefix}1": "source/no_audio_bytes",
                                       f"{prefix}2": "decode/not_audio",
                                       f"{prefix}3": "crawl/opt_out"}
    assert result.summary["kept"] == 2 and result.summary["accounted"]


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_webdataset_tars_hostile_members_never_touch_the_disk(clips: list[Path],
                                                              tmp_path: Path) -> None:
    good = clips[0].read_bytes()
    shards = tmp_path / "shards"
    shards.mkdir()
    _tar(shards / "shard-000000.tar", [
        _file("s001.flac", good),
        _file("s001.json", json.dumps({"caption": "a tone", "license": "cc0"}).encode()),
        _file("s002.wav", clips[1].read_bytes()), _file("s002.txt", b"a chirp\n"),
        _file("../evil.flac", good), _file("/etc/passwd.flac", good),
        _file("dir/../../up.wav", good),
        _link("s003.flac", "/etc/passwd", tarfile.SYMTYPE),
        _link("s004.flac", "s001.flac", tarfile.LNKTYPE),
        _file("s005.json", b'{"caption": "no audio here"}'),
        _file("s006.mp3", b"<!DOCTYPE html><html></html>"),
        _file("s007.flac", good), _file("s007.json", b"{not json"),
    ])
    records = list(list_inputs([shards / "shard-000000.tar"]))
    assert [r.input_id for r in records] == ["s001", "s002", "../evil", "/etc/passwd",
                                             "dir/../../up", "s003", "s004", "s005", "s006",
                                             "s007"]
    assert records[0].captions == ("a tone",) and records[0].license == "cc0"
    assert records[1].captions == ("a chirp",)
    before = sorted(p for p in tmp_path.parent.rglob("*evil*"))
    result = build_corpus([shards], tmp_path / "corpus", SMALL, engine="local", progress=False)
    assert _reasons(result.corpus) == {
        "../evil": "source/unsafe_member", "/etc/passwd": "source/unsafe_member",
        "dir/../../up": "source/unsafe_member", "s003": "source/not_a_file",
        "s004": "source/not_a_file", "s005": "source/no_audio", "s006": "decode/not_audio",
        "s007": "manifest/bad_json"}
    assert result.summary["kept"] == 2 and result.summary["accounted"]
    assert sorted(p for p in tmp_path.parent.rglob("*evil*")) == before
    assert sorted(p.name for p in shards.iterdir()) == ["shard-000000.tar"]


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_webdataset_source_equals_the_same_files_by_path(clips: list[Path], tmp_path: Path,
                                                         suffix: str) -> None:
    members = []
    for i, clip in enumerate(clips[:5]):
        members.append(_file(f"k{i:03d}{clip.suffix}", clip.read_bytes()))
        members.append(_file(f"k{i:03d}.json", json.dumps({"caption": f"c{i}"}).encode()))
    tar = _tar(tmp_path / f"other-team{suffix}", members)
    from_tar = build_corpus([tar], tmp_path / "tar", SMALL, engine="local", progress=False)
    manifest = _write_jsonl(tmp_path / "paths.jsonl", [
        {"id": f"k{i:03d}", "path": str(c), "caption": f"c{i}", "source": "other-team"}
        for i, c in enumerate(clips[:5])])
    by_path = build_corpus([manifest], tmp_path / "paths", SMALL, engine="local",
                           allow_roots=[clips[0].parent], progress=False)
    assert from_tar.summary["kept"] == 5
    assert _audio_shards(from_tar.corpus) == _audio_shards(by_path.corpus)


class _LocalHub:
    """Stands in for `huggingface_hub.HfFileSystem`: `datasets/ORG/NAME/...` maps to a local
    folder (no network in tests)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _local(self, path: str) -> Path:
        return self.root / path.removeprefix("datasets/org/")

    def glob(self, pattern: str) -> list[str]:
        base = self._local(pattern.split("/**", 1)[0].split("/*.parquet", 1)[0])
        return [f"datasets/org/{p.relative_to(self.root).as_posix()}"
                for p in base.rglob("*.parquet")]

    def open(self, path: str, mode: str = "rb"):
        return open(self._local(path), mode)


def test_hub_dataset_reads_like_its_local_snapshot(clips: list[Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    rows = [{"audio": _audio(p), "caption": f"sound {i}"} for i, p in enumerate(clips[:4])]
    snapshot = _hub_folder(tmp_path / "hub" / "frogs", rows, files=1)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", lambda: _LocalHub(tmp_path / "hub"))
    remote = list(list_inputs(["hf://datasets/org/frogs"]))
    local = list(list_inputs([snapshot]))
    assert [r.input_id for r in remote] == [r.input_id for r in local]
    assert remote[0].url == "hf://datasets/org/frogs/data/train-00000-of-00001.parquet#row=0"
    hub = build_corpus(["hf://datasets/org/frogs"], tmp_path / "c1", SMALL, engine="local",
                       progress=False)
    snap = build_corpus([snapshot], tmp_path / "c2", SMALL, engine="local", progress=False)
    assert hub.summary["kept"] == 4
    assert _audio_shards(hub.corpus) == _audio_shards(snap.corpus)

"""Listing inputs: folders, our manifests in three formats, UALM's public formats, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ualm.errors import UalmError
from ualm.inputs.listing import list_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


def test_folder_is_listed_recursively_in_path_order(tmp_path: Path) -> None:
    for name in ["b/2.flac", "a/1.wav", "a/notes.txt", "c.MP3", "a/0.m4a"]:
        _touch(tmp_path / name)
    listing = list_inputs([tmp_path])
    assert [r.input_id for r in list(listing)] == ["a/0.m4a", "a/1.wav", "b/2.flac", "c.MP3"]
    assert [r.index for r in list(listing)] == [0, 1, 2, 3]
    assert all(Path(r.path).is_absolute() for r in list(listing))


def test_jsonl_csv_and_parquet_give_the_same_records(tmp_path: Path) -> None:
    _touch(tmp_path / "a.wav")
    _touch(tmp_path / "b.wav")
    rows = [
        {"id": "x1", "path": "a.wav", "caption": "a dog barks", "source": "s", "license": "CC0-1.0",
         "language": "en", "mood": "happy"},
        {"id": "x2", "path": "b.wav", "caption": "rain", "source": "s", "license": "CC0-1.0",
         "language": "en", "mood": "sad"},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    header = list(rows[0])
    (tmp_path / "m.csv").write_text(
        ",".join(header) + "\n" + "".join(",".join(r[h] for h in header) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    listings = [list_inputs([tmp_path / f"m.{ext}"]) for ext in ("jsonl", "csv", "parquet")]
    first = [r.to_dict() | {"line": None} for r in list(listings[0])]
    for listing in listings[1:]:
        records = [r.to_dict() | {"line": None} for r in list(listing)]
        assert [r | {"source": "s"} for r in records] == first
    record = next(iter(listings[0]))
    assert record.captions == ("a dog barks",)
    assert json.loads(record.extra) == {"mood": "happy"}
    assert record.path == str(tmp_path / "a.wav")


def test_ualm_public_formats(tmp_path: Path) -> None:
    _touch(tmp_path / "clips" / "g.wav")
    _touch(tmp_path / "clips" / "u.wav")
    rows = [
        {"location": "clips/g.wav", "start_time": 2.0, "end_time": 12.0, "duration": 10.0,
         "caption": "birds sing", "sample_rate": 16000},
        {"id": "u1", "sound": "clips/u.wav", "duration": 8.0, "conversations": [
            {"from": "human", "value": "<sound>\nWhat is this?"}, {"from": "gpt", "value": "A bell."}]},
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
    ]
    (tmp_path / "ualm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gen, und, text = list(list_inputs([tmp_path / "ualm.jsonl"]))
    assert (gen.task, gen.start, gen.end, gen.captions) == ("generation", 2.0, 12.0, ("birds sing",))
    assert gen.reject_reason is None and gen.path.endswith("clips/g.wav")
    assert und.task == "understanding" and und.input_id == "u1"
    assert json.loads(und.extra)["conversations"][1]["value"] == "A bell."
    assert text.task == "text" and text.modality == "text" and text.path is None
    assert json.loads(text.messages)[1] == {"role": "assistant", "content": "4"}


def test_bad_rows_become_rejected_records(tmp_path: Path) -> None:
    _touch(tmp_path / "root" / "ok.wav")
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (tmp_path / "root" / "link.wav").symlink_to(tmp_path / "secret.wav")
    lines = [
        '{"id": "ok", "path": "ok.wav"}',
        '{"id": "broken',
        '{"id": "nopath", "caption": "x"}',
        '{"id": "badtype", "path": 42}',
        '{"id": "escape", "path": "../secret.wav"}',
        '{"id": "abs", "path": "/etc/hostname"}',
        '{"id": "viasymlink", "path": "link.wav"}',
        '{"id": "ok", "path": "ok.wav"}',
        '["not", "an", "object"]',
        '{"id": "badcap", "path": "ok.wav", "caption": 3}',
        '{"id": "badrange", "path": "ok.wav", "start": 5, "end": 2}',
    ]
    manifest = tmp_path / "root" / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    got = {r.input_id: r.reject_reason for r in list(list_inputs([manifest]))}
    assert got == {
        "ok": None,
        "line:2": "manifest/bad_json",
        "nopath": "manifest/missing_path",
        "badtype": "manifest/bad_type",
        "escape": "input/outside_allowed_roots",
        "abs": "input/outside_allowed_roots",
        "viasymlink": "input/outside_allowed_roots",
        "ok#L8": "manifest/duplicate_id",
        "line:9": "manifest/bad_json",
        "badcap": "manifest/bad_type",
        "badrange": "manifest/bad_value",
    }
    allowed = {r.input_id: r.reject_reason
               for r in list(list_inputs([manifest], allow_roots=[tmp_path]))}
    assert allowed["escape"] is None and allowed["viasymlink"] is None
    assert allowed["abs"] == "input/outside_allowed_roots"


def test_rows_without_id_get_stable_unique_ids(tmp_path: Path) -> None:
    _touch(tmp_path / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.wav", "caption": "one"}\n{"path": "a.wav", "caption": "two"}\n')
    ids = [r.input_id for r in list(list_inputs([manifest]))]
    assert ids == ["a.wav", "a.wav#L2"]
    assert list_inputs([manifest]).digest == list_inputs([manifest]).digest


def test_unreadable_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UalmError, match="input not found"):
        list_inputs([tmp_path / "missing.jsonl"])
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(UalmError, match="cannot tell how to read"):
        list_inputs([tmp_path / "m.xlsx"])
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UalmError, match="cannot read parquet manifest"):
        list_inputs([tmp_path / "bad.parquet"])


def test_a_long_manifest_is_listed_without_its_rows(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing 20,000 rows (3.8 MB) holds no row: the peak is a few read blocks (256 KiB
    here), and a unit is a reference of a few numbers that its worker reads."""
    import pickle
    import tracemalloc

    from ualm.inputs import scan
    from ualm.pipelines.ingest import IngestTask

    monkeypatch.setattr(scan, "BLOCK", 1 << 18)

    def write(manifest: Path, rows: int) -> Path:
        with open(manifest, "w") as handle:
            for i in range(rows):
                handle.write(json.dumps({"id": f"r{i}", "url": f"https://example.org/{i}.flac",
                                         "caption": "a long caption " * 8, "license": "cc0"})
                             + "\n")
        return manifest

    list_inputs([write(tmp_path / "warm.jsonl", 2)])  # the listing's own imports are not rows
    rows = 20_000
    manifest = write(tmp_path / "m.jsonl", rows)
    tracemalloc.start()
    listing = list_inputs([manifest], unit_size=6_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 2**20, f"listing peaked at {peak / 2**20:.1f} MiB"
    assert listing.count == rows and len(listing.units) == 4
    assert [u.rows for u in listing.units] == [6_000] * 3 + [2_000]
    records = list(listing)
    assert [r.input_id for r in records] == [f"r{i}" for i in range(rows)]
    assert [r.line for r in records] == list(range(1, rows + 1))
    task = IngestTask(str(tmp_path / "corpus"), 3, {}, listing.units[3])
    assert len(pickle.dumps(task)) < 600  # a task is a reference, not its rows

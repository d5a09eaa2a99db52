"""Units as references: a manifest cut into byte ranges reads as one pass does, ids are made
unique bucket by bucket exactly as in one pass, and the driver parses no row."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ualm.config import BuildConfig
from ualm.inputs import scan
from ualm.inputs.listing import list_inputs
from ualm.inputs.unique_ids import IdResolver, IdRow, id_bucket
from ualm.inputs.unit_reader import id_row, read_unit
from ualm.pipelines.build import build_corpus, plan_build

LINES = [
    '{"path": "a.wav"}', "", "   ", '{"path": "a.wav"}', '{"id": "a.wav#L4", "path": "b.wav"}',
    '{"path": "a.wav", "start": 1, "end": 2}', '{"path": "a.wav", "start": 1, "end": 2}',
    '{"id": "a.wav", "path": "b.wav"}', '{"broken', "\u3000", '{"id": 5, "path": "b.wav"}',
    '{"id": "5", "path": "b.wav"}', '{"url": "https://e.org/x.flac"}',
    '{"url": "file:///etc/passwd"}', '{"url": "https://e.org/x.flac"}', '["x"]',
]


def _world(root: Path) -> list[Path]:
    for name in ("a.wav", "b.wav"):
        (root / name).write_bytes(b"RIFF")
    first, second = root / "m1.jsonl", root / "m2.jsonl"
    first.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    # CRLF, a lone CR, no final line end: text mode's line ends, which the scan must follow
    second.write_bytes(("\r\n".join(LINES[:8]) + "\r" + "\n".join(LINES[8:])).encode())
    return [first, second]


def _records(paths: list[Path], unit_size: int) -> list[dict]:
    return [r.to_dict() | {"line": r.line} for r in list_inputs(paths, unit_size=unit_size)]


def test_byte_range_units_read_as_one_pass(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _world(tmp_path)
    one_pass = _records(paths, unit_size=10_000)  # one unit: the whole listing in one read
    assert len(one_pass) == 2 * 13
    monkeypatch.setattr(scan, "BLOCK", 7)  # blocks that cut lines, CRLF pairs and characters
    for unit_size in (1, 2, 3, 5):
        assert _records(paths, unit_size) == one_pass, unit_size
    # what the listing gave when it parsed every row on the driver (f872932), row for row
    got = [(r["input_id"], r["line"], r["reject_reason"]) for r in one_pass]
    assert got[:13] == [
        ("a.wav", 1, None), ("a.wav#L4", 4, None),
        ("a.wav#L4#L5", 5, "manifest/duplicate_id"),  # a derived id took it first
        ("a.wav@1-2.0", 6, None), ("a.wav@1-2.0#L7", 7, None),
        ("a.wav#L8", 8, "manifest/duplicate_id"),  # an explicit repeat of a derived id
        ("line:9", 9, "manifest/bad_json"), ("5", 11, None),
        ("5#L12", 12, "manifest/duplicate_id"),
        ("https://e.org/x.flac", 13, None), ("file:///etc/passwd", 14, "crawl/bad_url"),
        ("https://e.org/x.flac#L15", 15, None), ("line:16", 16, "manifest/bad_json")]
    assert got[13:18] == [  # the same rows again, in another manifest: repeats across inputs
        ("a.wav#L1", 1, "manifest/duplicate_id"), ("a.wav#L4#L4", 4, "manifest/duplicate_id"),
        ("a.wav#L4#L5", 5, "manifest/duplicate_id"),  # a renamed chain repeats (as it did)
        ("a.wav@1-2.0#L6", 6, "manifest/duplicate_id"),
        ("a.wav@1-2.0#L7#L7", 7, "manifest/duplicate_id")]
    assert got[19] == ("line:9#L9", 9, "manifest/bad_json")  # rejected already: keeps its reason


def test_ids_resolved_bucket_by_bucket_match_one_pass(tmp_path: Path) -> None:
    """The build's reduce: each bucket resolves only its own rows, in global order."""
    listing = list_inputs(_world(tmp_path), unit_size=4)
    rows = [id_row(record, kind, seg.input_no)
            for ref in listing.units for seg in ref.segments
            for record, kind in read_unit(type(ref)(ref.unit, (seg,)), lambda n: iter(()))]
    one = IdResolver()
    expected = {r.index: one.resolve(r) for r in rows}
    for buckets in (1, 2, 3, 8):
        got: dict[int, object] = {r.index: None for r in rows}
        for bucket in range(buckets):
            resolver = IdResolver()
            for row in sorted(r for r in rows if id_bucket(r.input_id, buckets) == bucket):
                got[row.index] = resolver.resolve(IdRow(*row))
        assert got == expected, buckets
    assert {r.index: r.input_id for r in list(listing)} == {
        r.index: (expected[r.index].input_id if expected[r.index] else r.input_id) for r in rows}


def test_the_driver_parses_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run counts a malformed row as an input without judging it; the build's worker
    rejects it, with its line, and the id reduce rejects an id repeated in a later unit."""
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    manifest = tmp_path / "chat.jsonl"
    manifest.write_text(json.dumps({"id": "c1", "messages": chat}) + "\n"
                        + '{"id": "c2", "messages": \n\n'
                        + json.dumps({"messages": chat[:1]}) + "\n"
                        + json.dumps({"id": "c1", "messages": chat[1:]}) + "\n")
    config = BuildConfig.from_dict({"work": {"unit_size": 2}, "tokenize": {"enabled": False}})

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the driver parsed a row")

    with monkeypatch.context() as patched:
        patched.setattr("ualm.inputs.manifest_rows.normalise_row", refuse)
        patched.setattr("json.loads", refuse)
        plan = plan_build([manifest], config)
    assert (plan["inputs"], plan["units"]) == (4, 2)
    out = tmp_path / "corpus"
    build_corpus([manifest], out, config, engine="local", progress=False)
    rejects = pq.read_table(out / "manifests" / "rejects").to_pylist()
    assert [(r["input_id"], r["reason"], r["detail"]) for r in rejects] == [
        ("line:2", "manifest/bad_json", "line 2: Expecting value"),
        ("c1#L5", "manifest/duplicate_id", "id 'c1' is used by an earlier row")]
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus["inputs"]["digest"] == plan["inputs_digest"]
    assert corpus["counts"]["inputs"] == 4 and corpus["counts"]["kept"] == 2


def test_parquet_units_are_row_ranges_across_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa

    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    rows = [{"path": "a.wav", "id": None}, {"path": "a.wav", "id": None},
            {"path": "b.wav", "id": "a.wav"}, {"path": "b.wav", "id": "q"}] * 3
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest, row_group_size=5)
    one_pass = _records([manifest], unit_size=100)
    for unit_size in (1, 2, 3, 4, 7):
        listing = list_inputs([manifest], unit_size=unit_size)
        assert [s.kind for u in listing.units for s in u.segments] == ["parquet"] * len(
            listing.units)
        assert _records([manifest], unit_size) == one_pass, unit_size
    assert [(r["input_id"], r["reject_reason"]) for r in one_pass[:5]] == [
        ("a.wav", None), ("a.wav#L2", None), ("a.wav#L3", "manifest/duplicate_id"),
        ("q", None), ("a.wav#L5", None)]  # a derived repeat in its manifest: renamed only


def test_auto_unit_size_cuts_as_that_size_given(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`work.unit_size: null`: the count picks the size (2,000 + 700 rows: 64 a unit), and the
    marks the scan kept while the count grew cut the same units as that size given outright,
    across a manifest boundary and with blocks that end mid-line; a build records the size."""
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    paths = []
    for name, rows in (("m1.jsonl", 2000), ("m2.jsonl", 700)):
        paths.append(tmp_path / name)
        paths[-1].write_text("".join(json.dumps({"path": "a.wav", "id": f"{name}-{i}"}) + "\n"
                                     for i in range(rows)))
    monkeypatch.setattr(scan, "BLOCK", 4099)
    auto, given = list_inputs(paths), list_inputs(paths, unit_size=64)
    assert auto.units.unit_size == 64 and len(auto.units) == 43
    assert list(auto.units) == list(given.units)
    assert [len(p.marks.row) for p in auto.units.inputs] == [32, 12]  # O(units), not O(rows)
    assert plan_build(paths[1:])["unit_size"] == 16  # 700 rows: the smallest size
    assert plan_build(paths)["unit_size"] == 64
    config = BuildConfig.from_dict({"tokenize": {"enabled": False}})
    assert plan_build(paths, config)["config_hash"] == plan_build(
        paths, BuildConfig.from_dict({"tokenize": {"enabled": False},
                                      "work": {"unit_size": 64}}))["config_hash"]

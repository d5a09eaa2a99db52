"""The sources of `ualm.inputs.sources` read from a bucket (moto's S3 server on 127.0.0.1,
tests/s3_server.py): a URL list, WebDataset tars (an object and a prefix of them) and an
audio-parquet dataset (a prefix in the Hub's layout, and one file). Each builds the corpus a
build of the local copy gives, in every byte but the columns that name where an input was; a tar
member is read by a ranged read of the object; hostile members are rejected as locally; a missing
object is one line naming it, or a reject when it goes away after listing."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL, tree_bytes
from tests.s3_server import ACCESS_KEY, SECRET_KEY, moto_s3
from tests.test_remote_inputs import table_rows
from tests.test_sources import _audio, _file, _hub_folder, _link, _tar
from ualm.audio.synthetic import EXTENSIONS, synth_clip, write_audio
from ualm.cli import main
from ualm.config import CrawlConfig
from ualm.inputs import wds
from ualm.inputs.listing import list_inputs
from ualm.pipelines.build import build_corpus
from ualm.testing.crawl_server import FaultyServer

BUCKET = "ualm-sources"
REMOTE = f"s3://{BUCKET}/src"
CRAWL = dataclasses.replace(SMALL, crawl=CrawlConfig(allow_private_network=True, retries=1,
                                                     per_host_rate=0))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """src/: shards/ (a plain tar with hostile members, a gzipped one), birds/ (a dataset in the
    Hub's layout), clips/ (the audio a URL list names) and lists/urls.txt."""
    root = tmp_path_factory.mktemp("sources") / "src"
    formats = ["flac", "wav16", "mp3", "ogg", "flac", "wav24"]
    clips = [write_audio(root / "clips" / f"clip{i}.{EXTENSIONS[fmt]}",
                         synth_clip(1.5 + 0.5 * i, 24000, 200 + i), 24000, fmt)
             for i, fmt in enumerate(formats)]
    good = clips[0].read_bytes()
    (root / "shards").mkdir()
    _tar(root / "shards" / "theirs-000.tar", [
        _file("s001.flac", good), _file("s001.json", b'{"caption": "a tone"}'),
        _file("s002.wav", clips[1].read_bytes()), _file("s002.txt", b"a chirp\n"),
        _file("../evil.flac", good), _file("/etc/passwd.flac", good),
        _link("s003.flac", "/etc/passwd", tarfile.SYMTYPE),
        _file("s004.json", b'{"caption": "no audio"}'),
        _file("s005.mp3", clips[2].read_bytes()),
    ])
    _tar(root / "shards" / "theirs-001.tar.gz", [
        _file(f"g{i}{c.suffix}", c.read_bytes()) for i, c in enumerate(clips[3:])])
    rows = [{"audio": _audio(p), "caption": f"bird {i}"} for i, p in enumerate(clips)]
    _hub_folder(root / "birds", rows, files=2, row_group=2)
    return root


@pytest.fixture(scope="module")
def store(local: Path) -> Iterator[str]:
    import s3fs

    with pytest.MonkeyPatch.context() as monkeypatch, moto_s3(monkeypatch, BUCKET) as endpoint:
        s3fs.S3FileSystem().put(f"{local}/", f"{BUCKET}/src/", recursive=True)
        yield endpoint


def assert_same_corpus(here: Path, there: Path, local: Path) -> None:
    """Every file equal but corpus.json's input description and digest and the manifests'
    location columns, which equal once the local folder's names are mapped to the bucket's."""
    a, b = tree_bytes(here), tree_bytes(there)
    assert sorted(a) == sorted(b) and any(n.startswith("audio/") for n in a)
    differ = sorted(n for n in a if a[n] != b[n])
    assert all(n == "corpus.json" or n.startswith("manifests/") for n in differ), differ
    names = {local.resolve().as_uri(): REMOTE, str(local.resolve()): REMOTE}
    for name in (n for n in differ if n.endswith(".parquet")):
        assert table_rows(here / name, names) == table_rows(there / name), name
    meta = [json.loads(c["corpus.json"]) for c in (a, b)]
    for side in meta:
        del side["inputs"]["description"], side["inputs"]["digest"]
    assert meta[0] == meta[1]


def _reasons(corpus: Path) -> dict[str, str]:
    table = pq.read_table(corpus / "manifests" / "rejects").to_pylist()
    return {r["input_id"]: r["reason"] for r in table if r["level"] == "input"}


@pytest.mark.parametrize("where", ["shards", "shards/theirs-000.tar"])
def test_webdataset_tars_in_the_bucket_build_as_the_local_copy(
        store: str, local: Path, tmp_path: Path, where: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    listed = list(list_inputs([f"{REMOTE}/{where}"]))
    plain = [r for r in listed if r.url and ".tar#" in r.url and r.reject_reason is None]
    assert plain and all(r.url.startswith(f"{REMOTE}/shards/theirs-000.tar#member=")
                         and "&offset=" in r.url for r in plain)
    streamed: list[int] = []
    stream = wds._stream_members

    def spy(handle: object, wanted: set[int], *rest: object) -> None:
        streamed.append(len(wanted))
        stream(handle, wanted, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(wds, "_stream_members", spy)
    there = build_corpus([f"{REMOTE}/{where}"], tmp_path / "remote", SMALL, engine="local",
                         progress=False).corpus
    # a plain tar's members are ranged reads; only the gzipped tar is streamed
    assert len(streamed) == (0 if where.endswith(".tar") else 1)
    here = build_corpus([local / where], tmp_path / "local", SMALL, engine="local",
                        progress=False).corpus
    assert_same_corpus(here, there, local)
    assert _reasons(there) == _reasons(here) == {
        "../evil": "source/unsafe_member", "/etc/passwd": "source/unsafe_member",
        "s003": "source/not_a_file", "s004": "source/no_audio"}
    kept = pq.read_table(there / "manifests" / "samples").column("url").to_pylist()
    assert kept and all(u.startswith(f"{REMOTE}/shards/") for u in kept)


@pytest.mark.parametrize("where", ["birds", "birds/data/train-00001-of-00002.parquet"])
def test_an_audio_parquet_dataset_in_the_bucket_builds_as_the_local_copy(
        store: str, local: Path, tmp_path: Path, where: str) -> None:
    there = build_corpus([f"{REMOTE}/{where}"], tmp_path / "remote", SMALL, engine="local",
                         progress=False)
    here = build_corpus([local / where], tmp_path / "local", SMALL, engine="local",
                        progress=False)
    assert there.summary["kept"] == here.summary["kept"] == (6 if where == "birds" else 3)
    assert_same_corpus(here.corpus, there.corpus, local)
    ids = pq.read_table(there.corpus / "manifests" / "samples").column("input_id").to_pylist()
    assert all(i.startswith(("birds/data/train-", "data/train-")) for i in ids)


def test_a_url_list_in_the_bucket_builds_as_the_local_copy(
        store: str, local: Path, tmp_path: Path) -> None:
    import s3fs

    with FaultyServer(local / "clips") as server:
        names = sorted(p.name for p in (local / "clips").iterdir())
        text = "# clips\n" + "".join(f"{server.base}/audio/{n}\n" for n in names) + \
            f"{server.base}/404\n"
        listed = tmp_path / "urls.txt"
        listed.write_text(text)
        s3fs.S3FileSystem().pipe_file(f"{BUCKET}/lists/urls.txt", text.encode())
        there = build_corpus([f"s3://{BUCKET}/lists/urls.txt"], tmp_path / "remote", CRAWL,
                             engine="local", progress=False)
        here = build_corpus([listed], tmp_path / "local", CRAWL, engine="local", progress=False)
    assert there.summary["kept"] == len(names)
    assert _reasons(there.corpus) == {f"{server.base}/404": "crawl/http_404"}
    assert_same_corpus(here.corpus, there.corpus, local)


@pytest.mark.parametrize("name", ["lists/none.txt", "shards/none.tar", "birds/none.parquet"])
def test_a_missing_source_object_is_one_line(
        store: str, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"s3://{BUCKET}/{name}"
    code = main(["build", "--input", url, "--out", str(tmp_path / "c"), "--engine", "local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("ualm: error: ")
    assert f"input not found: {url}" in err
    assert SECRET_KEY not in err and ACCESS_KEY not in err


def test_a_tar_or_parquet_file_gone_after_listing_rejects_its_rows(
        store: str, local: Path, tmp_path: Path) -> None:
    """The worker learns it: every row of the vanished object is `input/missing_file`."""
    import s3fs

    fs = s3fs.S3FileSystem()
    for name in ("shards/theirs-000.tar", "birds/data/train-00000-of-00002.parquet"):
        fs.copy(f"{BUCKET}/src/{name}", f"{BUCKET}/gone/{name}")
    urls = [f"s3://{BUCKET}/gone/shards/theirs-000.tar",
            f"s3://{BUCKET}/gone/birds/data/train-00000-of-00002.parquet"]
    records = [r for r in list_inputs(urls) if r.reject_reason is None]
    fs.rm(f"{BUCKET}/gone", recursive=True)
    from ualm.inputs.crawl.unit import UnitSources

    reasons = set()
    with UnitSources(records, SMALL.crawl) as sources:
        for record in records:
            try:
                sources.obtain(record)
            except Exception as exc:  # AudioRejected
                reasons.add((getattr(exc, "reason", type(exc).__name__),
                             record.url.split("#", 1)[0] if record.url else ""))
    assert reasons == {("input/missing_file", u) for u in urls}


def test_a_signed_https_tar_is_refused_in_one_line_without_its_signature(
        store: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A unit reads http(s) only through the crawl policy (whole URLs): a tar over http(s) is
    refused before any work, and the error shows no credential of the signed URL."""
    import boto3

    client = boto3.client("s3", endpoint_url=store, region_name="us-east-1")
    signed = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "src/shards/theirs-000.tar"})
    code = main(["build", "--input", signed, "--out", str(tmp_path / "c"), "--engine", "local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot read theirs-000.tar over http" in err
    assert ACCESS_KEY not in err and signed.split("Signature=", 1)[1] not in err


def test_a_unit_reads_its_members_by_ranges_not_the_whole_tar(
        store: str, local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 9 MB tar whose wanted member lies past 8 MB of others: the worker fetches the member's
    header and data and at most RANGE_SLACK more, far less than the tar."""
    import os

    import s3fs

    clip = (local / "clips" / "clip0.flac").read_bytes()
    big = _tar(tmp_path / "big.tar", [_file("a.flac", clip), _file("b.flac", os.urandom(8 << 20)),
                                      _file("c.flac", clip)])
    s3fs.S3FileSystem().put_file(str(big), f"{BUCKET}/big/big.tar")
    records = list(list_inputs([f"s3://{BUCKET}/big/big.tar"]))
    file_url, ordinal, span = wds.parse_locator(records[2].url or "")
    assert span is not None and span[0] > 8 << 20
    fetched: list[int] = []
    fetch = s3fs.core.S3File._fetch_range

    def counting(self: object, start: int, end: int) -> bytes:
        fetched.append(end - start)
        return fetch(self, start, end)

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    got: dict[int, bytes] = {}
    found = wds.read_members(file_url, {ordinal: span}, 1 << 30,
                             lambda n, handle: got.setdefault(n, handle.read()))
    assert found == {ordinal: None} and got == {ordinal: clip} and fetched
    assert sum(fetched) <= len(clip) + tarfile.BLOCKSIZE + wds.RANGE_SLACK < big.stat().st_size


def test_a_tar_replaced_after_listing_gives_no_member_it_did_not_list(
        store: str, local: Path, tmp_path: Path) -> None:
    """A ranged read checks the header block before the span: the same name now a link, or
    other bytes at the offset, reject the row rather than hand over what lies there."""
    import s3fs

    fs = s3fs.S3FileSystem()
    clip = (local / "clips" / "clip0.flac").read_bytes()
    url = f"s3://{BUCKET}/swap/x.tar"
    fs.put_file(str(_tar(tmp_path / "x.tar", [_file("a.flac", clip), _file("c.flac", clip)])),
                url[len("s3://"):])
    records = list(list_inputs([url]))
    spans = {n: s for n, s in (wds.parse_locator(r.url or "")[1:] for r in records)}
    fs.put_file(str(_tar(tmp_path / "y.tar", [_link("a.flac", "/etc/passwd", tarfile.SYMTYPE),
                                              _file("pad.bin", b"\0" * 700),
                                              _file("c.flac", clip)])), url[len("s3://"):])
    got: dict[int, bytes] = {}
    found = wds.read_members(url, spans, 1 << 30, lambda n, h: got.setdefault(n, h.read()))
    assert got == {} and {r for r, _ in found.values()} == {"source/missing_member"}


def test_dask_workers_read_the_bucket_sources_to_the_same_bytes(
        store: str, local: Path, tmp_path: Path) -> None:
    """Worker processes of their own: tars (ranged and streamed) and parquet rows read there."""
    inputs = [f"{REMOTE}/shards", f"{REMOTE}/birds"]
    dask = build_corpus(inputs, tmp_path / "dask", SMALL, engine="dask", workers=2,
                        progress=False).corpus
    here = build_corpus(inputs, tmp_path / "local", SMALL, engine="local", progress=False).corpus
    assert tree_bytes(dask) == tree_bytes(here)


def test_any_fsspec_store_not_only_s3(local: Path, tmp_path: Path) -> None:
    """The same code on fsspec's in-memory store (the local engine runs units in this process,
    which sees it): the tar prefix builds the local copy's shards."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/ualm-test/shards/theirs-000.tar",
                 (local / "shards" / "theirs-000.tar").read_bytes())
    try:
        there = build_corpus(["memory://ualm-test/shards"], tmp_path / "memory", SMALL,
                             engine="local", progress=False).corpus
    finally:
        fs.rm("/ualm-test", recursive=True)
    here = build_corpus([local / "shards" / "theirs-000.tar"], tmp_path / "local", SMALL,
                        engine="local", progress=False).corpus
    shards = {k: v for k, v in tree_bytes(here).items() if k.startswith("audio/")}
    assert shards and shards == {k: v for k, v in tree_bytes(there).items()
                                 if k.startswith("audio/")}

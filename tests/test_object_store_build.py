"""`ualm build --out s3://bucket/prefix` against moto's S3 server on 127.0.0.1 (tests/s3_server.py):
the same bytes as a local-folder build, readers on the bucket, the commit protocol (create-only
completion records and corpus.json, reruns, a crashed attempt's leftovers), retried server
errors, and one-line errors for a missing bucket or denied access that never show credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SMALL
from tests.s3_server import ACCESS_KEY, SECRET_KEY, FaultyProxy, moto_s3
from tests.store_checks import (
    assert_a_racing_record_is_refused,
    assert_a_rerun_finishes_it,
    assert_built_like_the_folder,
    assert_inspect_matches,
    assert_one_line_store_error,
    assert_trains_from,
    build_tokens_beside_a_folder,
    crash_part_way,
    digests,
    local_digests,
)
from ualm.audio.synthetic import SyntheticWorld
from ualm.cli import main
from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.build import build_corpus

BUCKET = "ualm-build"


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as monkeypatch, moto_s3(monkeypatch, BUCKET) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_corpus(store: str, world: SyntheticWorld) -> str:
    url = f"s3://{BUCKET}/local-engine"
    assert build_corpus([world.manifest], url, SMALL, engine="local", progress=False).corpus == url
    return url


def test_local_engine_build_into_s3_is_byte_identical(s3_corpus: str, local_corpus: Path) -> None:
    assert_built_like_the_folder(s3_corpus, local_corpus)


def test_dask_build_into_s3_is_byte_identical(store: str, world: SyntheticWorld,
                                              local_corpus: Path) -> None:
    url = f"s3://{BUCKET}/dask"
    build_corpus([world.manifest], url, SMALL, engine="dask", workers=2, progress=False)
    assert digests(url) == local_digests(local_corpus)


def test_inspect_reads_the_corpus_in_the_bucket(s3_corpus: str, local_corpus: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert_inspect_matches(s3_corpus, local_corpus, capsys)


@pytest.mark.parametrize("case", ["missing bucket", "access denied"])
def test_store_errors_are_one_line_naming_the_bucket(
        store: str, world: SyntheticWorld, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    bucket = "no-such-bucket" if case == "missing bucket" else "locked-bucket"
    if case == "access denied":
        client = boto3.client("s3")
        client.create_bucket(Bucket=bucket)
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    code = main(["build", "--input", str(world.manifest), "--out", f"s3://{bucket}/c",
                 "--engine", "local"])
    err = capsys.readouterr().err
    assert code == 2
    assert_one_line_store_error(err, bucket, case)
    assert SECRET_KEY not in err and ACCESS_KEY not in err


def test_a_crashed_build_leaves_nothing_readers_trust_and_a_rerun_finishes_it(
        store: str, world: SyntheticWorld, local_corpus: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    url = f"s3://{BUCKET}/crashed"
    layout = crash_part_way(url, world, local_corpus, monkeypatch)
    assert layout.list(layout.faults, prefix="shard-1-"), "the fault hook counts its attempts"
    # and what a worker killed in the middle of a large (multipart) put leaves
    client = boto3.client("s3")
    client.create_multipart_upload(Bucket=BUCKET, Key="crashed/audio/audio-000002.tar")
    assert not layout.is_complete()
    assert_a_rerun_finishes_it(url, world, local_corpus)
    assert not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "aborted at commit"


def test_a_fresh_build_looks_up_no_completion_record(
        store: str, world: SyntheticWorld, local_corpus: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The run that creates the plan knows no unit can be finished: it asks the store for no
    completion record (one GET per unit and stage spared); a rerun does ask (the test above)."""
    asked: list[str] = []
    read_many, read_bytes = CorpusLayout.read_many, CorpusLayout.read_bytes

    def spying(self: CorpusLayout, paths: list[str]) -> list[bytes | None]:
        asked.extend(p for p in paths if "/_work/done/" in p)
        return read_many(self, paths)

    def reading(self: CorpusLayout, path: str) -> bytes:
        asked.append(path)
        return read_bytes(self, path)

    monkeypatch.setattr(CorpusLayout, "read_many", spying)
    monkeypatch.setattr(CorpusLayout, "read_bytes", reading)
    url = f"s3://{BUCKET}/fresh"
    build_corpus([world.manifest], url, SMALL, engine="local", progress=False)
    assert not [p for p in asked if "/_work/done/" in p]
    # a unit asks for id renames only when the id reduce's merge says it has some
    renamed = json.loads(read_bytes(CorpusLayout(url), f"{url}/_work/done/ids-merge-000000.json"
                                    ))["summary"]["units"]
    assert sorted(p for p in asked if "/_work/ids/unit-" in p) == [
        f"{url}/_work/ids/unit-{u:06d}.jsonl" for u in renamed]
    assert digests(url) == local_digests(local_corpus)


def test_a_rerun_into_the_same_prefix_finds_it_complete(
        s3_corpus: str, world: SyntheticWorld, local_corpus: Path) -> None:
    before = digests(s3_corpus, work=True)
    result = build_corpus([world.manifest], s3_corpus, SMALL, engine="local", progress=False)
    assert result.skipped_units > 0
    after = digests(s3_corpus, work=True)
    assert {k: v for k, v in after.items() if not k.startswith("_work/runs/")} == \
        {k: v for k, v in before.items() if not k.startswith("_work/runs/")}
    other = SMALL.from_dict({**SMALL.to_dict(), "shards": {"max_samples": 5}})
    with pytest.raises(UalmError, match="other inputs or another config"):
        build_corpus([world.manifest], s3_corpus, other, engine="local", progress=False)


def test_an_existing_completion_record_is_kept(store: str) -> None:
    layout = assert_a_racing_record_is_refused(f"s3://{BUCKET}/records")
    output, record = layout.path("manifests/part.parquet"), layout.done_record("ingest", 0)

    layout.remove(output)  # a record that vouches for a file gone: a rerun replaces it
    layout.write_bytes(output, b"rewritten")
    write_done(layout, "ingest", 0, [output], {"attempt": "rerun"})
    assert json.loads(layout.read_bytes(record))["summary"] == {"attempt": "rerun"}


def test_server_errors_and_throttling_are_retried(
        store: str, world: SyntheticWorld, local_corpus: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    prefix = "retried"
    with FaultyProxy(store, rf"^(PUT|GET) /{BUCKET}/{prefix}/", [503, 500, 503, 500]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        s3fs.S3FileSystem.clear_instance_cache()
        build_corpus([world.manifest], f"s3://{BUCKET}/{prefix}", SMALL, engine="local",
                     progress=False)
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", store)
    assert [status for status, _ in proxy.injected] == [503, 500, 503, 500]
    assert digests(f"s3://{BUCKET}/{prefix}") == local_digests(local_corpus)


def test_tokens_in_the_bucket_and_ualm_train_streams_them(
        store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A world of 2 clips: the codec stage (a seeded random EnCodec) costs seconds per clip, and
    its first use in a test session builds the codec (about 80 s on 2 busy cores)."""
    from ualm.train.data.sources import discover, equal_blend, probabilities
    from ualm.train.data.stream import PackedStream, StreamConfig
    from ualm.train.sequence.text_tokenizer import ByteTokenizer

    url = f"s3://{BUCKET}/tokens"
    local, remote = build_tokens_beside_a_folder(url, tmp_path)

    batches = []
    for corpus in (url, str(local)):
        sources = discover([corpus])
        stream = PackedStream(sources, probabilities(sources, equal_blend(sources)),
                              StreamConfig(256, 2, 4, 0, 8, 0.05), ByteTokenizer())
        batches.append(stream.next_batch())
    assert all(s.startswith(url + "/tokens/") for s in discover([url])[0].shards)
    for key in batches[0]:
        np.testing.assert_array_equal(batches[0][key], batches[1][key])

    for argv in (["report", url, "-o", str(tmp_path / "r.html"), "--samples", "0"],
                 ["blend", "stats", url],
                 ["publish", url, "--to", str(tmp_path / "published")]):
        assert main(argv) == 0, capsys.readouterr().err
    assert local_digests(tmp_path / "published").keys() >= remote.keys() - {"README.md"}

    # `ualm train` on the bucket, as the README shows it: the shards stream from s3://
    assert_trains_from(url, tmp_path, capsys)


def test_a_store_that_keeps_failing_ends_in_one_line_after_bounded_tries(
        store: str, world: SyntheticWorld, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import s3fs

    with FaultyProxy(store, rf"^PUT /{BUCKET}/failing/", [500] * 50) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")  # the user's own bound wins over ualm's 6
        s3fs.S3FileSystem.clear_instance_cache()
        code = main(["build", "--input", str(world.manifest), "--out",
                     f"s3://{BUCKET}/failing", "--engine", "local"])
    s3fs.S3FileSystem.clear_instance_cache()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and BUCKET in err, err
    assert len(proxy.injected) == 3
    assert SECRET_KEY not in err and ACCESS_KEY not in err


def test_two_builds_started_into_one_prefix_end_in_the_same_bytes(
        store: str, world: SyntheticWorld, local_corpus: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both run units the other is running too: their create-only writes race, one wins each,
    and the corpus is never a mix."""
    from concurrent.futures import ThreadPoolExecutor

    from ualm.manifests import remote

    lost, put_new = [], remote.put_new

    def counting(fs: object, path: str, data: bytes) -> bool:
        created = put_new(fs, path, data)
        if not created:
            lost.append(path.rsplit("/", 2)[-2:])
        return created

    monkeypatch.setattr(remote, "put_new", counting)
    monkeypatch.setenv("UALM_FAULTS", "ingest:*=sleep0.3")  # both are inside ingest at once
    url = f"s3://{BUCKET}/twice"
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(build_corpus, [world.manifest], url, SMALL, engine="local",
                            progress=False) for _ in range(2)]
        results = [run.result() for run in runs]
    assert all(r.summary["kept"] == results[0].summary["kept"] for r in results)
    assert digests(url) == local_digests(local_corpus)
    assert ["done", "ingest-000000.json"] in lost, "the second record of a unit was refused"


def test_opening_an_object_takes_one_get_and_reads_every_byte(
        store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`layout.open` on S3: one ranged GET whose Content-Range gives the size (no HEAD); a small
    object is then whole in memory, a larger one reads its first bytes from memory and the rest
    from the store, whatever the seeks; an empty one and a missing one behave as files do."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from aiobotocore.client import AioBaseClient

    from ualm.manifests import object_reads

    layout = CorpusLayout(f"s3://{BUCKET}/opening")
    table = pa.table({"n": np.arange(5000), "s": [f"row {i}" for i in range(5000)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=1000)
    blob = sink.getvalue().to_pybytes()
    layout.write_bytes(layout.path("t.parquet"), blob)
    layout.write_bytes(layout.path("empty"), b"")
    calls: list[str] = []
    make_call = AioBaseClient._make_api_call

    async def counting(self: AioBaseClient, operation: str, params: dict) -> object:
        calls.append(operation)
        return await make_call(self, operation, params)

    monkeypatch.setattr(AioBaseClient, "_make_api_call", counting)
    with layout.open(layout.path("t.parquet")) as handle:
        assert handle.read() == blob
    assert calls == ["GetObject"]
    monkeypatch.setattr(object_reads, "WHOLE_READ", 1000)  # the same object, now "large"
    with layout.open(layout.path("t.parquet")) as handle:
        assert pq.read_table(handle).equals(table)
        handle.seek(-700, 2)
        assert handle.read() == blob[-700:]
        handle.seek(990)
        assert handle.read(20) == blob[990:1010]  # across the end of the bytes in memory
    assert "HeadObject" not in calls
    calls.clear()
    with layout.open(layout.path("empty")) as handle:  # its 416 says it: no second GET
        assert handle.read() == b""
    assert calls == ["GetObject"]
    with pytest.raises(FileNotFoundError):
        layout.open(layout.path("missing"))

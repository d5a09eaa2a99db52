"""Publishing through fsspec: to an S3-compatible server on 127.0.0.1 (moto's server mode) and to
a folder; a run killed mid-way is resumed without sending any object twice (counted from the
server's own request recording), what arrived is checked byte for byte, the completion object
comes last, and the trainer and `ualm inspect` read the corpus by its s3:// URL."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.publish_corpus import local_files, sha256
from ualm.errors import UalmError
from ualm.publish import publish
from ualm.publish.fsspec_store import INDEX, FsspecStore

BUCKET = "corpora"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A moto S3 server with a bucket, recording every request it serves."""
    import boto3
    import s3fs
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    monkeypatch.setattr(recorder, "_location", str(tmp_path / "requests.jsonl"))
    # moto appends a line per request from its server threads without a lock: parallel uploads
    # would interleave lines
    lock, record = threading.Lock(), recorder._record_request

    def record_one_at_a_time(*args: object, **kwargs: object) -> None:
        with lock:
            record(*args, **kwargs)

    monkeypatch.setattr(recorder, "_record_request", record_one_at_a_time)
    recorder.reset_recording()
    recorder.start_recording()
    try:
        yield recorder
    finally:
        recorder.stop_recording()
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


def _puts(recording: Path, prefix: str) -> Counter[tuple[str, str]]:
    """(key under the prefix, sha256 of the body) of every PUT the server received."""
    puts: Counter[tuple[str, str]] = Counter()
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        if entry["method"] != "PUT":
            continue
        body = base64.b64decode(entry["body"]) if entry["body_encoded"] else \
            (entry["body"] or "").encode()
        key = unquote(urlsplit(entry["url"]).path).removeprefix(f"/{BUCKET}/{prefix}/")
        puts[(key, hashlib.sha256(body).hexdigest())] += 1
    return puts


def _objects(prefix: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)  # a listing of its own, never a stale one
    root = f"{BUCKET}/{prefix}"
    return {name[len(root) + 1:]: fs.cat_file(name) for name in fs.find(root)}


def test_killed_s3_publish_resumes_without_sending_an_object_twice(
        s3, publish_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"s3://{BUCKET}/sounds/v1"
    real_put = FsspecStore._put
    calls = []

    def dies_after_seven(self: FsspecStore, entry) -> None:
        real_put(self, entry)
        calls.append(entry.path)
        if len(calls) == 7:  # the object arrived, the index was not updated: then killed
            raise KeyboardInterrupt

    monkeypatch.setattr(FsspecStore, "_put", dies_after_seven)
    with pytest.raises(KeyboardInterrupt):
        publish(publish_corpus, url, batch_files=3)
    partial = _objects("sounds/v1")
    assert "corpus.json" not in partial and "publish.json" not in partial
    indexed = json.loads(partial[f"{INDEX}00000000.json"])["files"]
    # calls: 3 objects, an index part, 3 objects (killed before the second index part)
    assert sorted(indexed) == sorted(calls[:3]) and calls[3].startswith(INDEX)
    assert sorted(p for p in partial if p.startswith(INDEX)) == [f"{INDEX}00000000.json"]
    assert all(path in partial for path in calls[4:7])

    monkeypatch.setattr(FsspecStore, "_put", real_put)
    result = publish(publish_corpus, url, batch_files=3)
    assert result.skipped == 6  # 3 indexed + 3 found unindexed, read back and hashed
    arrived = _objects("sounds/v1")
    for path, data in local_files(publish_corpus).items():
        assert arrived[path] == data, path
    record = json.loads(arrived["publish.json"])
    for path, meta in record["files"].items():
        assert sha256(arrived[path]) == meta["sha256"], path

    puts = _puts(Path(s3._location), "sounds/v1")
    data_puts = Counter({k: n for k, n in puts.items() if not k[0].startswith(".ualm-publish/")})
    assert max(data_puts.values()) == 1  # no object was sent twice
    assert {k for k, _ in data_puts} == {p for p in arrived if not p.startswith(INDEX)}
    # The resumed run's first part records the 3 objects it found unindexed and read back.
    assert set(calls[4:7]) <= set(json.loads(arrived[f"{INDEX}00000001.json"])["files"])
    order = [json.loads(line)["url"].rsplit("/", 1)[1]
             for line in Path(s3._location).read_text().splitlines()
             if json.loads(line)["method"] == "PUT"]
    assert order[-1] == "publish.json"  # the completion object is the very last write
    assert [n for n in order if not n[0].isdigit()][-3:] == ["README.md", "corpus.json",
                                                            "publish.json"]

    again = publish(publish_corpus, url, batch_files=3)
    assert again.sent == 0 and _puts(Path(s3._location), "sounds/v1") == puts


def test_trainer_and_inspect_read_an_s3_corpus(s3, publish_corpus: Path) -> None:
    from ualm.cli import main
    from ualm.manifests.inspect import summarize
    from ualm.manifests.shard_reader import iter_samples
    from ualm.train.data.sources import discover

    url = f"s3://{BUCKET}/read"
    publish(publish_corpus, url)
    assert {**summarize(url), "corpus": None} == {**summarize(publish_corpus), "corpus": None}
    assert main(["inspect", url]) == 0
    sources = discover([url])
    local = discover([publish_corpus])
    assert [(s.label, s.samples) for s in sources] == [(s.label, s.samples) for s in local]
    shard = sources[0].shards[0]
    assert shard.startswith(url + "/")
    assert [k for k, _ in iter_samples(shard)] == \
        [k for k, _ in iter_samples(local[0].shards[0])]


def test_folder_destination_and_refusals(publish_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    result = publish(publish_corpus, str(out))
    assert result.sent == result.files
    copied = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for path, data in local_files(publish_corpus).items():
        assert copied[path] == data, path
    assert not [p for p in copied if p.endswith(".tmp")]

    with pytest.raises(UalmError, match=r"no corpus\.json"):
        publish(tmp_path / "copy" / "audio", str(tmp_path / "x"))
    with pytest.raises(UalmError, match="--revision applies to Hub"):
        publish(publish_corpus, str(tmp_path / "y"), revision="v2")
    with pytest.raises(UalmError, match="names no bucket"):
        publish(publish_corpus, "s3://")


def test_s3_refusals_name_the_fix(s3, publish_corpus: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    with pytest.raises(UalmError, match="bucket does not exist"):
        publish(publish_corpus, "s3://no-such-bucket/corpus")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(UalmError, match="AWS_ACCESS_KEY_ID"):
        publish(publish_corpus, f"s3://{BUCKET}/corpus")


def test_a_corpus_changed_after_its_build_is_not_published(publish_corpus: Path,
                                                           tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(publish_corpus, copy)
    shard = next((copy / "audio").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[:-512] + b"\1" * 512)
    with pytest.raises(UalmError, match="differs from what the build wrote"):
        publish(copy, str(tmp_path / "out"))
    shard.unlink()
    with pytest.raises(UalmError, match="missing"):
        publish(copy, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "corpus.json").exists()

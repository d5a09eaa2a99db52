"""Inputs on an object store: the synthetic world (manifest and audio, relative paths) uploaded to
moto's S3 server on 127.0.0.1 (tests/s3_server.py) and built from there. The corpus equals a
build of the local copy in every byte but those that record where the inputs were; paths climb
out of the manifest's prefix only with --allow-root; a missing audio object is a reject; a
missing manifest is one line that shows no credential."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL, tree_bytes
from tests.s3_server import ACCESS_KEY, SECRET_KEY, moto_s3
from ualm.audio.synthetic import SyntheticWorld
from ualm.cli import main
from ualm.inputs.listing import list_inputs
from ualm.pipelines.build import build_corpus

BUCKET = "ualm-inputs"
WORLD = f"s3://{BUCKET}/world"
LOCATION_COLUMNS = {"path", "url", "detail"}
"""Columns that may name where an input was (a path, a URL, a reject's detail)."""


@pytest.fixture(scope="module")
def store(world: SyntheticWorld) -> Iterator[str]:
    import s3fs

    with pytest.MonkeyPatch.context() as monkeypatch, moto_s3(monkeypatch, BUCKET) as endpoint:
        s3fs.S3FileSystem().put(f"{world.root}/", f"{BUCKET}/world/", recursive=True)
        yield endpoint


@pytest.fixture(scope="module")
def remote_corpus(store: str, world: SyntheticWorld, tmp_path_factory: pytest.TempPathFactory
                  ) -> Path:
    out = tmp_path_factory.mktemp("remote") / "corpus"
    build_corpus([f"{WORLD}/{world.manifest.name}"], out, SMALL, engine="local", progress=False)
    return out


def as_remote(world: SyntheticWorld) -> dict[str, str]:
    """Local locations as a remote build names them: the world's folder is WORLD, and the
    hostile row's `../../etc/hostname` climbs out of the bucket's key space."""
    root = str(world.root)
    escape = os.path.realpath(os.path.join(root, "../../etc/hostname"))
    return {escape: f"s3://{BUCKET}/../etc/hostname", root: WORLD}


def table_rows(path: Path, names: dict[str, str] | None = None) -> list[dict[str, object]]:
    rows = pq.read_table(path).to_pylist()
    for row in rows if names else ():
        for column in LOCATION_COLUMNS & row.keys():
            for old, new in names.items():
                if isinstance(row[column], str):
                    row[column] = row[column].replace(old, new)
    return rows


def test_a_build_from_the_bucket_equals_a_build_from_the_local_copy(
        remote_corpus: Path, local_corpus: Path, world: SyntheticWorld) -> None:
    local, remote = tree_bytes(local_corpus), tree_bytes(remote_corpus)
    assert sorted(local) == sorted(remote)
    differ = sorted(name for name in local if local[name] != remote[name])
    assert [n for n in differ if n.startswith("audio/")] == [], "shards' audio bytes differ"
    assert any(n.startswith("audio/") for n in local)
    assert all(n == "corpus.json" or n.startswith("manifests/") for n in differ), differ
    names = as_remote(world)
    for name in (n for n in differ if n.endswith(".parquet")):
        assert pq.read_schema(local_corpus / name) == pq.read_schema(remote_corpus / name)
        # every column equal; path, url and detail equal once local names are mapped to URLs
        assert table_rows(local_corpus / name, names) == table_rows(remote_corpus / name), name
    meta = {k: json.loads(c["corpus.json"]) for k, c in (("l", local), ("r", remote))}
    assert meta["r"]["inputs"]["description"] == f"{WORLD}/{world.manifest.name}"
    for side in meta.values():
        del side["inputs"]["description"], side["inputs"]["digest"]
    assert meta["l"] == meta["r"]

    rejects = {r["input_id"]: r for f in sorted((remote_corpus / "manifests/rejects").iterdir())
               for r in table_rows(f)}
    assert rejects["bad-missing"]["reason"] == "input/missing_file"
    assert rejects["bad-missing"]["detail"] == f"{WORLD}/incoming/does-not-exist.wav"
    assert rejects["bad-escape"]["reason"] == "input/outside_allowed_roots"
    samples = [r for f in sorted((remote_corpus / "manifests/samples").iterdir())
               for r in table_rows(f)]
    assert samples and all(str(r["path"]).startswith(f"{WORLD}/") for r in samples)


def test_a_dask_build_from_the_bucket_gives_the_same_bytes(
        store: str, world: SyntheticWorld, remote_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "dask"
    build_corpus([f"{WORLD}/{world.manifest.name}"], out, SMALL, engine="dask", workers=2,
                 progress=False)
    assert tree_bytes(out) == tree_bytes(remote_corpus)


def good_rows(world: SyntheticWorld) -> list[dict[str, str]]:
    rows = []
    for line in world.lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row.get("path"), str) and not row["path"].startswith(".."):
            rows.append({"id": row["id"], "path": row["path"]})
    return rows


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_each_manifest_format_lists_the_same_from_the_bucket(
        store: str, world: SyntheticWorld, suffix: str) -> None:
    import s3fs

    rows = good_rows(world)
    if suffix == ".jsonl":
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif suffix == ".csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, ["id", "path"])
        writer.writeheader()
        writer.writerows(rows)
        data = text.getvalue().encode()
    else:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=4)
        data = sink.getvalue()
    local = world.root / f"formats{suffix}"
    local.write_bytes(data)
    s3fs.S3FileSystem().pipe_file(f"{BUCKET}/world/formats{suffix}", data)
    remote = list(list_inputs([f"{WORLD}/formats{suffix}"], unit_size=3))
    here = list(list_inputs([local], unit_size=3))
    assert len(remote) == len(rows) > 3
    assert [r.path for r in remote] == [posixpath.join(WORLD, r["path"]) for r in rows]
    root = str(world.root.resolve())
    assert [r.to_dict() for r in remote] == [
        {**r.to_dict(), "path": r.path.replace(root, WORLD)} for r in here]


def test_paths_out_of_the_prefix_need_an_allowed_root(
        store: str, world: SyntheticWorld, tmp_path: Path) -> None:
    import s3fs

    clip = good_rows(world)[0]["path"]
    rows = [{"id": "climbs", "path": f"../world/{clip}"},
            {"id": "absolute", "path": f"{WORLD}/{clip}"},
            {"id": "other-bucket", "path": f"s3://another-bucket/{clip}"},
            {"id": "local-absolute", "path": str(world.root / clip)},
            {"id": "web", "path": "http://169.254.169.254/latest/meta-data"}]
    s3fs.S3FileSystem().pipe_file(f"{BUCKET}/lists/hostile.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in rows).encode())
    url = f"s3://{BUCKET}/lists/hostile.jsonl"

    def outcome(*allow: str) -> dict[str, str]:
        records = {r.input_id: r for r in list_inputs([url], allow_roots=allow)}
        return {k: r.reject_reason or "listed" for k, r in records.items()}

    outside = "input/outside_allowed_roots"
    web = "crawl/bad_url"  # fsspec would fetch it past the crawl policy: only `url` may
    assert outcome() == {"climbs": outside, "absolute": outside, "other-bucket": outside,
                         "local-absolute": outside, "web": web}
    assert outcome(WORLD, "http://169.254.169.254") == {
        "climbs": "listed", "absolute": "listed", "other-bucket": outside,
        "local-absolute": outside, "web": web}
    assert outcome(f"{WORLD}/", str(world.root))["local-absolute"] == "listed"
    assert outcome(f"s3://{BUCKET}/wor")["climbs"] == outside, "a root is a folder, not a prefix"

    out = tmp_path / "allowed"  # no codec stage: seconds, not a minute
    assert main(["build", "--input", url, "--out", str(out), "--allow-root", WORLD,
                 "--tokenize.enabled", "false", "--engine", "local", "--quiet"]) == 0
    kept = {r["input_id"] for f in (out / "manifests/samples").iterdir() for r in table_rows(f)}
    assert kept == {"climbs"}, "the same object twice: the second is a duplicate"


@pytest.mark.parametrize("case", ["missing object", "missing bucket", "access denied"])
def test_an_unreadable_manifest_is_one_line_without_credentials(
        store: str, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    url = {"missing object": f"s3://{BUCKET}/nowhere/m.jsonl",
           "missing bucket": "s3://no-such-bucket/m.jsonl",
           "access denied": "s3://locked-inputs/m.jsonl"}[case]
    if case == "access denied":
        client = boto3.client("s3")
        client.create_bucket(Bucket="locked-inputs")
        client.put_object(Bucket="locked-inputs", Key="m.jsonl", Body=b'{"path": "a.wav"}\n')
        client.put_bucket_policy(Bucket="locked-inputs", Policy=json.dumps({"Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::locked-inputs/*"}]}))
    code = main(["build", "--input", url, "--out", str(tmp_path / "c"), "--engine", "local"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("ualm: error: ")
    expected = "access denied to input" if case == "access denied" else "input not found:"
    assert f"{expected} {url}" in captured.err
    for secret in (SECRET_KEY, ACCESS_KEY):
        assert secret not in captured.err and secret not in captured.out


def test_inputs_and_corpus_both_in_the_bucket(
        store: str, world: SyntheticWorld, remote_corpus: Path) -> None:
    import s3fs

    url = f"s3://{BUCKET}/corpora/from-bucket"
    build_corpus([f"{WORLD}/{world.manifest.name}"], url, SMALL, engine="local", progress=False)
    fs, root = s3fs.S3FileSystem(skip_instance_cache=True), url[len("s3://"):]
    stored = {key[len(root) + 1:]: hashlib.sha256(fs.cat_file(key)).hexdigest()
              for key in fs.find(root) if not key[len(root) + 1:].startswith("_work/")}
    assert stored == {n: hashlib.sha256(b).hexdigest()
                      for n, b in tree_bytes(remote_corpus).items()}


def test_a_dry_run_plans_from_the_bucket_and_writes_nothing(
        store: str, world: SyntheticWorld, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert main(["build", "--input", f"{WORLD}/{world.manifest.name}", "--out", str(out),
                 "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plan["inputs"] == len(world.lines) and plan["units"] >= 1
    assert not out.exists()


def test_a_unit_holds_a_few_copies_at_a_time_and_removes_them(
        store: str, world: SyntheticWorld, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One unit of every row (the local engine runs it in this process): each copy starts with
    at most LOOKAHEAD others on the worker's disk, and none is left when the unit ends."""
    from ualm.inputs.crawl import objects

    held, folders = [], set()
    fetch = objects.fetch_object

    def counting(url: str, dest: Path) -> Path:
        held.append(len(list(dest.parent.iterdir())))
        folders.add(dest.parent)
        return fetch(url, dest)

    monkeypatch.setattr(objects, "fetch_object", counting)
    one_unit = SMALL.from_dict({**SMALL.to_dict(), "work": {"unit_size": 64}})
    build_corpus([f"{WORLD}/{world.manifest.name}"], tmp_path / "c", one_unit, engine="local",
                 progress=False)
    assert len(held) == len(good_rows(world)) > objects.LOOKAHEAD + 2
    assert max(held) <= objects.LOOKAHEAD
    assert len(folders) == 1 and not any(f.exists() for f in folders)


def test_a_folder_of_audio_in_the_bucket_builds_as_the_local_folder(
        store: str, world: SyntheticWorld, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--input s3://bucket/prefix`: the prefix's audio objects, listed once and sorted, each
    fetched by its unit's worker; the shards and the kept, rejected and duplicate counts equal a
    build of the same files in a local folder (of the same name: it is the rows' `source`)."""
    import s3fs

    folder = f"s3://{BUCKET}/folders/{world.root.name}"
    s3fs.S3FileSystem().put(f"{world.root}/", folder[len("s3://"):] + "/", recursive=True)
    remote, local = tmp_path / "remote", tmp_path / "local"
    build_corpus([folder + "/"], remote, SMALL, engine="local", progress=False)
    build_corpus([world.root], local, SMALL, engine="local", progress=False)
    counts = [json.loads((c / "corpus.json").read_text())["counts"] for c in (remote, local)]
    assert counts[0] == counts[1] and counts[0]["kept"] > 0
    local_bytes, remote_bytes = tree_bytes(local), tree_bytes(remote)
    shards = sorted(n for n in local_bytes if n.startswith("audio/"))
    assert shards and [remote_bytes.get(n) for n in shards] == [local_bytes[n] for n in shards]
    kept = pq.read_table(remote / "manifests" / "samples").column("path").to_pylist()
    assert kept and all(p.startswith(folder + "/") for p in kept)

    code = main(["build", "--input", f"s3://{BUCKET}/no-audio-here", "--out",
                 str(tmp_path / "none"), "--engine", "local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"input not found: s3://{BUCKET}/no-audio-here holds no audio objects" in err


def test_a_signed_manifest_url_is_read_as_a_manifest(store: str, world: SyntheticWorld) -> None:
    """A presigned URL's query (its signature) is not part of the manifest's name: it lists as
    the manifest, its relative paths under the URL's folder."""
    import boto3

    client = boto3.client("s3", endpoint_url=store, region_name="us-east-1")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": f"world/{world.manifest.name}"})
    assert "Signature=" in url
    rows = [line for line in world.manifest.read_text().splitlines() if line.strip()]
    records = list(list_inputs([url]))
    assert len(records) == len(rows)
    assert records[0].path == f"{store}/{BUCKET}/world/{json.loads(rows[0])['path']}"

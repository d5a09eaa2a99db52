"""`ualm build --out gs://bucket/prefix` against a GCS JSON API server on 127.0.0.1
(tests/gcs_server.py: gcp-storage-emulator with GCS's `ifGenerationMatch=0` precondition), through
gcsfs, the client users run: the same bytes as a local-folder build on the local and the Dask
engine, readers on the bucket, create-only commit records, a crashed attempt finished by a
rerun, inputs read from the bucket, and one-line errors for a missing bucket or denied access
that name GCS's own commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SMALL, tree_bytes
from tests.gcs_server import gcs_server
from tests.s3_server import FaultyProxy
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
from ualm.pipelines.build import build_corpus

BUCKET = "ualm-gcs"


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as monkeypatch, gcs_server(monkeypatch, BUCKET) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def gs_corpus(store: str, world: SyntheticWorld) -> str:
    url = f"gs://{BUCKET}/local-engine"
    assert build_corpus([world.manifest], url, SMALL, engine="local", progress=False).corpus == url
    return url


def test_local_engine_build_into_gcs_is_byte_identical(gs_corpus: str, local_corpus: Path) -> None:
    assert_built_like_the_folder(gs_corpus, local_corpus)


def test_dask_build_into_gcs_is_byte_identical(store: str, world: SyntheticWorld,
                                               local_corpus: Path) -> None:
    """Two `dask worker` processes, each its own gcsfs client, write into the bucket."""
    url = f"gs://{BUCKET}/dask"
    build_corpus([world.manifest], url, SMALL, engine="dask", workers=2, progress=False)
    assert digests(url) == local_digests(local_corpus)


def test_inspect_reads_the_corpus_in_the_bucket(gs_corpus: str, local_corpus: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert_inspect_matches(gs_corpus, local_corpus, capsys)


def test_a_completion_record_is_written_once(store: str) -> None:
    """GCS's `ifGenerationMatch=0`: a racing attempt's record does not replace the first."""
    layout = assert_a_racing_record_is_refused(f"gs://{BUCKET}/records")
    assert layout.write_once(layout.path("once.json"), b"1") is True
    assert layout.write_once(layout.path("once.json"), b"2") is False
    assert layout.read_bytes(layout.path("once.json")) == b"1"


def test_a_crashed_build_is_finished_by_a_rerun(store: str, world: SyntheticWorld,
                                                local_corpus: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"gs://{BUCKET}/crashed"
    crash_part_way(url, world, local_corpus, monkeypatch)
    assert_a_rerun_finishes_it(url, world, local_corpus)


@pytest.mark.parametrize("case", ["missing bucket", "access denied"])
def test_store_errors_are_one_line_naming_the_bucket(
        store: str, world: SyntheticWorld, case: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import gcsfs

    bucket = "no-such-bucket" if case == "missing bucket" else BUCKET
    with FaultyProxy(store, r"^POST /upload/storage/v1/b/ualm-gcs/o", [403] * 10) as proxy:
        if case == "access denied":  # GCS's answer to an identity without objects.create
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
            gcsfs.GCSFileSystem.clear_instance_cache()
        code = main(["build", "--input", str(world.manifest), "--out", f"gs://{bucket}/denied",
                     "--engine", "local"])
    gcsfs.GCSFileSystem.clear_instance_cache()
    err = capsys.readouterr().err
    assert code == 2
    assert_one_line_store_error(err, bucket, case)
    assert "aws" not in err.lower(), "a GCS user gets GCS's commands and settings"
    assert ("gcloud storage buckets create" if case == "missing bucket"
            else "GOOGLE_APPLICATION_CREDENTIALS") in err
    assert bool(proxy.injected) == (case == "access denied"), "the 403 was what it met"


def test_a_build_from_inputs_in_the_bucket_keeps_the_audio_bytes(
        store: str, world: SyntheticWorld, local_corpus: Path, tmp_path: Path) -> None:
    """The world (manifest and audio, relative paths) in the bucket: the shards hold the same
    bytes as a build of the local copy; paths resolve against the manifest's prefix, one that
    climbs out of it is refused, a missing object is a reject named by its URL."""
    import gcsfs
    import pyarrow.parquet as pq

    gcsfs.GCSFileSystem().put(f"{world.root}/", f"{BUCKET}/world/", recursive=True)
    out = tmp_path / "from-gcs"
    build_corpus([f"gs://{BUCKET}/world/{world.manifest.name}"], out, SMALL, engine="local",
                 progress=False)
    local, remote = tree_bytes(local_corpus), tree_bytes(out)
    assert sorted(local) == sorted(remote)
    audio = [name for name in local if name.startswith("audio/")]
    assert audio and all(local[name] == remote[name] for name in audio)
    rejects = {r["input_id"]: r for f in sorted((out / "manifests/rejects").iterdir())
               for r in pq.read_table(f).to_pylist()}
    assert rejects["bad-missing"]["reason"] == "input/missing_file"
    assert rejects["bad-missing"]["detail"] == f"gs://{BUCKET}/world/incoming/does-not-exist.wav"
    assert rejects["bad-escape"]["reason"] == "input/outside_allowed_roots"


def test_tokens_in_the_bucket_and_ualm_train_streams_them(
        store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The codec stage writes token shards into gs:// (the same bytes as into a folder), and
    `ualm train` streams them from there. 2 clips: the seeded random codec costs seconds a clip."""
    url = f"gs://{BUCKET}/tokens"
    build_tokens_beside_a_folder(url, tmp_path)
    assert_trains_from(url, tmp_path, capsys)

"""Writing a corpus on an object store (S3, GCS, memory://), which has no rename.

Only finished objects are uploaded, each under its final name: a library that writes files
(parquet, tar) writes into a temporary folder of this process's own, and the finished file is
put in one go. Names that must be written once (completion records, corpus.json, the plan) are
created with a conditional put: S3 `If-None-Match: *` (s3fs `mode="create"`), GCS
`ifGenerationMatch=0`, memory's `xb`; a second writer gets False and the first one's bytes stay.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ualm.errors import UalmError


@contextmanager
def local_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder on this machine's disk, removed on exit (a worker's own, never the
    bucket nor a folder other workers see)."""
    folder = tempfile.mkdtemp(prefix=f"ualm-{prefix}-")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def put_new(fs: Any, path: str, data: bytes) -> bool:
    """Creates the object only when no object has that name; False when one had (its bytes are
    left as they were). Never zero bytes: s3fs's create-only open of an empty file is not."""
    assert data, "create-only puts need a non-empty body"
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def log_object(path: str) -> str:
    """Where one run's line of a log goes on a store that cannot append: an object of its own
    in a folder named after the log (`_work/runs.jsonl` → `_work/runs/<time>-<id>.jsonl`)."""
    stem = path[:-len(".jsonl")] if path.endswith(".jsonl") else path
    return f"{stem}/{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"


def bucket_of(location: str) -> str:
    return location.split("://", 1)[-1].split("/", 1)[0]


def check_writable(fs: Any, work: str, location: str) -> None:
    """Puts and deletes a probe object under the work area; a missing bucket, denied access or
    missing credentials become one UalmError naming the bucket and the fix."""
    probe = f"{work}/.write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with store_errors(location):
        fs.pipe_file(probe, b"ualm write probe\n")
        fs.rm_file(probe)


_STORE_HINTS = {  # scheme: (how to create a bucket, its endpoint setting, its credentials)
    "s3": ("aws s3 mb", "AWS_ENDPOINT_URL", "AWS_PROFILE, AWS_ACCESS_KEY_ID"),
    "gs": ("gcloud storage buckets create", "STORAGE_EMULATOR_HOST (an emulator only)",
           "GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`"),
}
_OTHER_STORE = ("", "the store's endpoint settings", "the store's usual settings")


@contextmanager
def store_errors(location: str) -> Iterator[None]:
    """A store's failures as one line that names the bucket, never a URL with credentials nor
    a traceback."""
    bucket, scheme = bucket_of(location), location.split("://", 1)[0]
    create, endpoint, credentials = _STORE_HINTS.get(scheme, _OTHER_STORE)
    try:
        yield
    except FileNotFoundError as exc:
        example = f" (e.g. `{create} {scheme}://{bucket}`)" if create else ""
        raise UalmError(f"bucket {bucket} does not exist ({location})",
                        fix=f"create it first{example}, or check the --out URL and "
                            f"{endpoint}") from exc
    except OSError as exc:
        if isinstance(exc, PermissionError) or str(exc).startswith("Forbidden"):  # gcsfs: 403
            raise UalmError(f"access denied to bucket {bucket} ({location})",
                            fix="grant this identity read, write and delete on the prefix, or "
                                f"use other credentials ({credentials})") from exc
        raise _store_error(exc, bucket, location, credentials) from exc
    except UalmError:
        raise
    except Exception as exc:
        raise _store_error(exc, bucket, location, credentials) from exc


def _store_error(exc: Exception, bucket: str, location: str, credentials: str) -> UalmError:
    kind = type(exc).__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return UalmError(f"no credentials to write to bucket {bucket}",
                         fix=f"set the store's credentials ({credentials})")
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return UalmError(f"cannot write to bucket {bucket} ({location}): {kind}: {detail}",
                     fix="check the URL, your credentials and the network")


def abort_uploads(fs: Any, root: str) -> int:
    """Aborts the unfinished multipart uploads under a corpus's prefix on S3 (what a worker
    killed in the middle of a large put leaves: invisible, but billed); returns how many. Run at
    the commit, when every unit is done. Other stores have none to clean: 0."""
    if not hasattr(fs, "call_s3"):
        return 0
    bucket, prefix = fs.split_path(root)[:2]
    listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    uploads = listing.get("Uploads", [])
    for upload in uploads:
        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                   UploadId=upload["UploadId"])
    return len(uploads)


def remove_objects(fs: Any, paths: list[str]) -> None:
    """Deletes objects, absent ones ignored. S3: DeleteObjects, 1,000 keys a request, with no
    HEAD first (deleting a missing key succeeds); other stores one delete each."""
    if hasattr(fs, "call_s3"):
        if paths:
            fs.rm(list(paths))
        return
    for path in paths:
        with suppress(FileNotFoundError):
            fs.rm_file(path)


def replace_commit(layout: Any, meta: dict[str, Any], data: bytes) -> None:
    """corpus.json was already there: kept when equal; replaced (one put: readers see the old
    or the new) only by a later stage of the same build, which adds its token set; refused when
    it is another build's."""
    old = layout.read_json(layout.corpus_file)
    if old == meta:
        return
    if any(old.get(k) != meta.get(k) for k in ("config_hash", "inputs")):
        raise UalmError(f"{layout.location} was committed by another build",
                        fix="build into a new prefix, or delete the old corpus first")
    layout.write_bytes(layout.corpus_file, data)

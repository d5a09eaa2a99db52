"""A GCS JSON API server on 127.0.0.1 for the tests: gcp-storage-emulator (in memory, in a
thread of the test process), reached by the client users run (gcsfs) through
STORAGE_EMULATOR_HOST, as Google's own client libraries are pointed at an emulator.

The emulator ignores preconditions; GCS answers an upload with `ifGenerationMatch=0` by 412
when the object exists, which is what our create-only puts (completion records, the plan,
`corpus.json`) rely on. The server here adds that check to the upload routes, in its
request router's table, so the commit protocol is tested as GCS runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

Handler = Callable[..., Any]


def _create_only(handler: Handler) -> Handler:
    """An upload handler that answers 412 when `ifGenerationMatch=0` and the object exists
    (at the upload's start, and again when a resumable upload's last part finishes it)."""
    from gcp_storage_emulator.exceptions import NotFound

    def upload(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        bucket = request.params["bucket_name"]
        name = _object_name(request, storage)
        if name is not None and _generation_match(request, storage) == "0":
            try:
                storage.get_file_obj(bucket, name)
            except NotFound:
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "At least one of the "
                                         "pre-conditions you specified did not hold."}})
                return None
        return handler(request, response, storage, *args, **kwargs)

    return upload


def _object_name(request: Any, storage: Any) -> str | None:
    if "upload_id" in request.query:  # a resumable upload's part: the session knows the name
        session = storage.get_resumable_file_obj(request.query["upload_id"][0])
        return session.get("name")
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data if isinstance(request.data, dict) else {}
    return (data.get("meta") or data).get("name")


def _generation_match(request: Any, storage: Any) -> str | None:
    if "ifGenerationMatch" in request.query:
        return request.query["ifGenerationMatch"][0]
    if "upload_id" in request.query:  # asked for when the session started
        session = storage.get_resumable_file_obj(request.query["upload_id"][0])
        return session.get("ualm_if_generation_match")
    return None


def _remember_precondition(handler: Handler) -> Handler:
    """Keeps a resumable session's `ifGenerationMatch` for its last part."""

    def start(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        result = handler(request, response, storage, *args, **kwargs)
        wanted = request.query.get("ifGenerationMatch")
        location = response._headers.get("Location")
        if wanted and location and "upload_id=" in location:
            upload_id = parse_qs(urlsplit(location).query)["upload_id"][0]
            storage.get_resumable_file_obj(upload_id)["ualm_if_generation_match"] = wanted[0]
        return result

    return start


@contextmanager
def gcs_server(monkeypatch: pytest.MonkeyPatch, *buckets: str) -> Iterator[str]:
    """A fresh in-memory GCS emulator with `buckets`; the environment points gcsfs at it.
    Yields its endpoint URL."""
    # gcsfs's default filesystem first asks the storage-control gRPC API whether a bucket is
    # zonal or hierarchical; an emulator has no such API (it would log a warning per bucket)
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs
    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.handlers import buckets as bucket_handlers
    from gcp_storage_emulator.handlers import objects

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    routes = []
    for pattern, methods in emulator.HANDLERS:
        methods = dict(methods)
        if methods.get("POST") is objects.insert:
            methods["POST"] = _create_only(_remember_precondition(objects.insert))
        if methods.get("PUT") is objects.upload_partial:
            methods["PUT"] = _create_only(objects.upload_partial)
        routes.append((pattern, methods))
    monkeypatch.setattr(emulator, "HANDLERS", tuple(routes))
    server = emulator.create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    port = server._api._httpd.server_address[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    gcsfs.GCSFileSystem.clear_instance_cache()
    for bucket in buckets:
        bucket_handlers.create_bucket(bucket, server._storage)
    try:
        yield endpoint
    finally:
        server.stop()
        gcsfs.GCSFileSystem.clear_instance_cache()

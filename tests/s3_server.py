"""An S3 protocol server on 127.0.0.1 for the tests: moto's server mode, reached by the same
client code users run (s3fs, boto3) through AWS_ENDPOINT_URL, and a tiny proxy in front of it
that answers the first N matching requests with a server error (503 SlowDown, 500) before
passing the rest on."""

from __future__ import annotations

import http.client
import logging
import re
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ACCESS_KEY, SECRET_KEY = "AKIATESTUALMKEYID", "ualm-test-secret-never-printed"


@contextmanager
def moto_s3(monkeypatch: pytest.MonkeyPatch, *buckets: str) -> Iterator[str]:
    """A fresh moto S3 server with `buckets`; the environment points clients at it. Yields its
    endpoint URL."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in the process, across servers: start from none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    for key, value in {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint)
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    try:
        yield endpoint
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


class FaultyProxy:
    """Forwards HTTP requests to `upstream`; the first `failures` requests whose method and
    path match `pattern` ("PUT /bucket/prefix/...") get `status` with an S3 error body."""

    def __init__(self, upstream: str, pattern: str, failures: list[int]) -> None:
        self.upstream = upstream.split("://", 1)[1]
        self.pattern, self.failures = re.compile(pattern), list(failures)
        self.injected: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's Expect: 100-continue at once

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = proxy._fault(f"{self.command} {self.path}")
                if status is not None:
                    code = "SlowDown" if status == 503 else "InternalError"
                    data = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                            f"<Message>injected</Message></Error>").encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                conn.request(self.command, self.path, body, headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                head = self.command == "HEAD"  # keeps the object's Content-Length, no body
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection") and (
                            head or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _fault(self, request: str) -> int | None:
        with self.lock:
            if self.failures and self.pattern.search(request):
                status = self.failures.pop(0)
                self.injected.append((status, request))
                return status
        return None

    def __enter__(self) -> FaultyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

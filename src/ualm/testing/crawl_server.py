"""A real HTTP server on 127.0.0.1 for the crawler's tests, benchmark and drills: it serves files
from a folder and injects the faults a crawler meets (see `FaultyHandler` for the routes)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROBOTS = b"User-agent: *\nDisallow: /private/\n"
HTML = b"<!DOCTYPE html>\n<html><body><h1>Not found</h1><p>Try again later.</p></body></html>\n"


class FaultyHandler(BaseHTTPRequestHandler):
    """Routes (NAME is a file in the served folder):
    /audio/NAME, /private/NAME (robots-disallowed), /noai/NAME (X-Robots-Tag: noai),
    /flaky/NAME (500 once, then the file), /busy/NAME (429 + Retry-After: 1 once),
    /busy-long (429 + Retry-After: 1 day, always), /tdm/NAME (tdm-reservation: 1),
    /etag/NAME (ETag, 304 on a matching If-None-Match), /redirect/NAME (302 to /audio/NAME),
    /signed/NAME (the file only with `?token=` the server's token, else 403, as a signed URL),
    /404, /500 (always), /slow, /short, /huge (Content-Length 10 GB), /chunked-big (2 MiB
    without Content-Length), /loop/N, /to-metadata, /to-mapped-metadata, /to-link-local,
    /html.mp3, /robots.txt."""

    server: FaultyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet tests
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        time.sleep(self.server.latency)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def _file(self, name: str, headers: dict[str, str] | None = None) -> None:
        path = self.server.root / name
        if "/" in name or not path.is_file():
            self._send(404, b"no such file")
            return
        self._send(200, path.read_bytes(), {"Content-Type": "audio/mpeg", **(headers or {})})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits[path] += 1
        self.server.agents.add(self.headers.get("User-Agent", ""))
        self.server.targets.add(self.path)
        self.server.authorizations.add(self.headers.get("Authorization"))
        first = self.server.hits[path] == 1
        head, _, name = path.lstrip("/").partition("/")
        if path == "/robots.txt":
            self._send(200, ROBOTS, {"Content-Type": "text/plain"})
        elif head in ("audio", "private"):
            self._file(name)
        elif head == "signed":
            given = parse_qs(urlsplit(self.path).query).get("token")
            if self.server.token is not None and given == [self.server.token]:
                self._file(name)
            else:
                self._send(403, b"missing or wrong token")
        elif head == "noai":
            self._file(name, {"X-Robots-Tag": "noai, noimageai"})
        elif head == "flaky":
            self._send(500, b"oops") if first else self._file(name)
        elif head == "busy":
            self._send(429, b"slow down", {"Retry-After": "1"}) if first else self._file(name)
        elif path == "/busy-long":
            self._send(429, b"come back tomorrow", {"Retry-After": "86400"})
        elif head == "tdm":
            self._file(name, {"tdm-reservation": "1"})
        elif head == "etag":
            if self.headers.get("If-None-Match") == f'"{name}"':
                self.server.not_modified += 1
                self._send(304)
            else:
                self._file(name, {"ETag": f'"{name}"'})
        elif head == "redirect":
            self._send(302, headers={"Location": f"/audio/{name}"})
        elif head == "loop":
            self._send(302, headers={"Location": f"/loop/{int(name or 0) + 1}"})
        elif path == "/to-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-mapped-metadata":
            self._send(301, headers={"Location": "http://[::ffff:a9fe:a9fe]/latest/"})
        elif path == "/to-link-local":
            self._send(307, headers={"Location": "http://[fe80::1]/x.wav"})
        elif path == "/500":
            self._send(503, b"down")
        elif path == "/slow":
            time.sleep(3.0)
            self._send(200, b"late")
        elif path == "/short":
            self._send(200, b"\xff\xfb" * 500, {"Content-Type": "audio/mpeg"}, length=100_000)
            self.close_connection = True
        elif path == "/huge":
            self._send(200, b"", {"Content-Type": "audio/wav"}, length=10 * 1024**3)
            self.close_connection = True
        elif path == "/chunked-big":
            self._chunked(2 * 1024 * 1024)
        elif path == "/html.mp3":
            self._send(200, HTML, {"Content-Type": "audio/mpeg"})
        else:
            self._send(404, b"not here")

    def _chunked(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"RIFF" + b"\0" * 65532
        try:
            for _ in range(size // len(block)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


class FaultyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s retries)

    def __init__(self, root: Path, latency: float = 0.0, token: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), FaultyHandler)
        self.root = Path(root)
        self.latency = latency
        self.token = token
        """What /signed/ URLs must carry as `?token=` (None: every /signed/ URL is refused)."""
        self.hits: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.targets: set[str] = set()
        """Every request's path with its query, as sent."""
        self.authorizations: set[str | None] = set()
        self.not_modified = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early (timeouts, size limits) are the point of the tests

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

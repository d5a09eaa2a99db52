"""moto's S3 service behind an HTTP/1.1 server that keeps connections open (tornado's, with
moto's WSGI app on a thread pool). `moto_server` runs on werkzeug's development server, which
closes the connection after every response: each request then pays a TCP connect and a new
server thread, which no real object store charges. Run as a process:

    python benchmarks/_moto_keepalive.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any


async def serve(port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from tornado.httpserver import HTTPServer
    from tornado.wsgi import WSGIContainer

    class LoggedContainer(WSGIContainer):
        def _log(self, status_code: int, request: Any) -> None:
            # one line per request, as werkzeug writes them (bench_s3_build counts by it)
            print(f'"{request.method} {request.uri} {request.version}" {status_code}',
                  flush=True)

    app = DomainDispatcherApplication(create_backend_app)
    container = LoggedContainer(app, executor=ThreadPoolExecutor(8))
    # shards of a few hundred MB arrive in one PUT
    server = HTTPServer(container, max_body_size=8 << 30, max_buffer_size=8 << 30)
    server.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

"""A scripted OpenAI-compatible chat completions server on 127.0.0.1, for tests and benchmarks.

By default it answers every request as the rule teacher would (it reads the captions back out of
the packaged prompt templates), after `latency` seconds. A `script(body, n)` callable can answer
otherwise per request: return an `Action` (a reply text, an HTTP status with headers, a delay).

>>> with FakeTeacherServer(latency=0.0) as server:  # doctest: +SKIP
...     server.base_url
'http://127.0.0.1:PORT/v1'
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ualm.synth import rules


@dataclass(frozen=True)
class Action:
    text: str | None = None
    """The assistant's reply (None: the default rule reply)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float | None = None
    """Seconds before answering (None: the server's latency)."""
    refusal: str | None = None
    """An OpenAI structured refusal instead of content."""


Script = Callable[[dict[str, Any], int], Action | None]

_SECONDS = re.compile(r"A (?:model was asked for a )?([\d.]+)-second")


def prompt_facts(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, facts) recovered from a request built from the packaged templates."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    kind = ("dialogue" if "short dialogue" in user else
            "reflection" if "A model was asked" in user else "enrichment")
    seconds = float(_SECONDS.search(user).group(1)) if _SECONDS.search(user) else 1.0
    first = user.splitlines()[0]
    captions = first.split(": ", 1)[1].split(" | ") if ": " in first else [first]
    facts: dict[str, Any] = {"key": user, "seconds": seconds, "captions": captions}
    if kind == "reflection":
        line = next(x for x in user.splitlines() if "described by: " in x)
        facts["v1_captions"] = line.split("described by: ", 1)[1].split(" | ")
    return kind, facts


def completion(text: str | None, model: str, refusal: str | None = None) -> dict[str, Any]:
    words = len((text or refusal or "").split())
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text,
                                     "refusal": refusal}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": words,
                      "total_tokens": 50 + words}}


class FakeTeacherServer:
    """Runs on its own thread and event loop; a context manager."""

    def __init__(self, latency: float = 0.0, script: Script | None = None) -> None:
        self.latency, self.script = latency, script
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        """When each request arrived (time.monotonic)."""
        self.authorization: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            n = len(self.requests)
            self.requests.append(body)
            self.times.append(time.monotonic())
            self.authorization.add(request.headers.get("Authorization", ""))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            action = (self.script(body, n) if self.script else None) or Action()
            await asyncio.sleep(self.latency if action.delay is None else action.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        if action.status != 200:
            return web.json_response({"error": {"message": "scripted failure",
                                                "type": "server_error"}},
                                     status=action.status, headers=action.headers)
        text = action.text
        if text is None and action.refusal is None:
            kind, facts = prompt_facts(body)
            text = rules.answer(kind, facts)
        return web.json_response(completion(text, body.get("model", ""), action.refusal))

    async def _stats(self, request: web.Request) -> web.Response:
        """Requests served so far (for a server in another process)."""
        with self._lock:
            return web.json_response({"requests": len(self.requests),
                                      "max_in_flight": self.max_in_flight})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/stats", self._stats)
        # Cancel a handler when its client gives up (timeouts), and do not wait for stragglers.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> FakeTeacherServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def main() -> None:
    """`python -m ualm.testing.teacher_server LATENCY`: serves until killed; prints its base URL."""
    import sys

    with FakeTeacherServer(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as server:
        print(json.dumps({"base_url": server.base_url}), flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()

"""A teacher behind any OpenAI-compatible chat completions endpoint (vLLM, SGLang, llama.cpp,
Ollama, hosted APIs), through the `openai` client library.

The client's own retries are off: `ualm.synth.requester` retries, so it can honour Retry-After
across all requests in flight and count every request against the budget. The API key is read
from the environment when the client is made and lives only inside the client: the teacher's
`name` holds the model and the server's address without credentials or query.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ualm.errors import UalmError
from ualm.redact import redact_url
from ualm.retry_after import retry_after
from ualm.synth.teachers import Reply, TeacherFailure, TeacherRequest


def public_url(url: str | None) -> str:
    """The URL without user, password, query or fragment (what may be recorded).

    >>> public_url("https://user:sk-123@api.example.com/v1?key=sk-123")
    'https://api.example.com/v1'
    """
    if not url:
        return "https://api.openai.com/v1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class OpenAITeacher:

    def __init__(self, model: str, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 concurrency: int = 8) -> None:
        from openai import AsyncOpenAI

        if base_url and redact_url(base_url) != base_url:
            # aiohttp refuses a password in the URL beside the key's header (a traceback per
            # request), and a query would be glued to every request's path
            raise UalmError(f"the teacher URL {redact_url(base_url)} carries credentials",
                            fix=f"drop them from the URL and put the key in ${api_key_env} "
                                "(or name another variable with api_key_env)")
        self.model, self.timeout = model, timeout
        self.name = f"openai:{model}@{public_url(base_url)}"
        # Local servers take any key; the client insists on a non-empty one.
        self._client = AsyncOpenAI(api_key=os.environ.get(api_key_env) or "none",
                                   base_url=base_url, max_retries=0, timeout=timeout,
                                   http_client=_http_client(timeout, concurrency))

    async def complete(self, request: TeacherRequest, params: dict[str, Any]) -> Reply:
        import openai

        body = {"model": self.model, "messages": request.messages,
                **{k: params[k] for k in ("temperature", "top_p", "seed", "max_tokens")
                   if params.get(k) is not None}}
        try:
            # The client's low-level post, answered as a plain dict: `chat.completions.create`
            # walks every message through its TypedDict transform and builds pydantic models
            # of the reply, which together cost more CPU than the rest of a request here.
            data = await self._client.post("/chat/completions", cast_to=dict, body=body)
        except openai.APITimeoutError as exc:
            raise TeacherFailure("synth/timeout", "the server did not reply in time",
                                 True) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            retryable = status == 429 or status >= 500
            raise TeacherFailure("synth/unavailable" if retryable else "synth/teacher_error",
                                 f"HTTP {status}", retryable,
                                 retry_after(exc.response.headers)) from exc
        except openai.APIConnectionError as exc:
            raise TeacherFailure("synth/unavailable", "connection failed", True) from exc
        return _reply(data)

    async def close(self) -> None:
        await self._client.close()


def _http_client(timeout: float, concurrency: int) -> Any:
    """The client's aiohttp transport (the `openai[aiohttp]` option, vendored in the client):
    at dozens of requests in flight it spends about 40 % less CPU per request than the default
    httpx pool, which scans every connection for each request it assigns."""
    import httpx2
    from openai import DefaultAioHttpClient

    limits = httpx2.Limits(max_connections=max(concurrency, 1) * 2,
                           max_keepalive_connections=max(concurrency, 1))
    return DefaultAioHttpClient(timeout=timeout, limits=limits)


def _reply(data: Any) -> Reply:
    """The first choice of a chat completion (a dict as the server sent it)."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        tokens = int((data.get("usage") or {}).get("total_tokens") or 0)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise TeacherFailure("synth/invalid_output", "the server's reply is not a chat "
                             "completion", False) from exc
    if message.get("refusal"):
        return Reply(str(message["refusal"]), tokens, "refusal")
    return Reply(str(message.get("content") or ""), tokens, choice.get("finish_reason"))

"""Asking an unreliable teacher: a cache, a concurrency limit, a request and token budget,
retries with backoff that honour Retry-After (timeouts, which the teachers enforce, are retried
too), and repair prompts for replies that do not match the schema.

Every job ends as exactly one `Outcome`: `valid` (the first reply parsed), `repaired` (a repair
prompt fixed it), or `rejected` with a reason: `synth/invalid_output`, `synth/refusal`,
`synth/timeout`, `synth/unavailable` (429/5xx/connection failures past the retries),
`synth/teacher_error` (another HTTP error) or `synth/budget`.

A Retry-After pauses every request of the run, not only the one that got it: the server said it
is overloaded, and the others would hit the same wall.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ualm.synth.schema import is_refusal, parse_reply
from ualm.synth.teachers import Reply, Teacher, TeacherFailure, TeacherRequest
from ualm.synth.templates import TEMPLATES, repair_message

if TYPE_CHECKING:
    from ualm.synth.config import SynthConfig


class ReplyCache:
    """Content-addressed replies: one JSON file per (teacher, template hash, messages, params).
    A rerun, or a run resumed after a crash, finds every reply it already got."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._folders: set[str] = set()

    @staticmethod
    def key(teacher: str, template_sha256: str, messages: list[dict[str, str]],
            params: dict[str, Any]) -> str:
        blob = json.dumps({"teacher": teacher, "template": template_sha256,
                           "messages": messages, "params": params}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Reply | None:
        try:
            data = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        return Reply(data["text"], int(data["tokens"]), data.get("finish_reason"))

    def put(self, key: str, reply: Reply) -> None:
        """Written in place, not through a temporary file: a torn entry is a JSON object
        without its closing brace, which `get` reads as a miss (the request is sent again),
        and at hundreds of replies a second the rename would cost more than the request."""
        if key[:2] not in self._folders:  # a set: threads may race to add, harmlessly
            (self.root / key[:2]).mkdir(parents=True, exist_ok=True)
            self._folders.add(key[:2])
        self._path(key).write_text(json.dumps({"text": reply.text, "tokens": reply.tokens,
                                               "finish_reason": reply.finish_reason}))


@dataclass
class RequestStats:
    sent: int = 0
    """Requests that reached the teacher (retries and repairs included)."""
    cache_hits: int = 0
    retries: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class Limits:
    """The requester's share of a `SynthConfig` (documented there, defaults included)."""

    concurrency: int
    max_retries: int
    backoff: float
    max_backoff: float
    max_repairs: int
    max_requests: int | None
    max_tokens: int | None

    @classmethod
    def of(cls, config: SynthConfig) -> Limits:
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Outcome:
    status: str
    """valid, repaired or rejected."""
    value: dict[str, Any] | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass
class Requester:
    teacher: Teacher
    limits: Limits
    params: dict[str, Any]
    cache: ReplyCache | None = None
    stats: RequestStats = field(default_factory=RequestStats)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._pause_until = 0.0

    def _charge(self) -> None:
        """Counts one request against the budget, or refuses it."""
        lim = self.limits
        if lim.max_requests is not None and self.stats.sent >= lim.max_requests:
            raise TeacherFailure("synth/budget", f"request budget of {lim.max_requests} spent",
                                 False)
        if lim.max_tokens is not None and self.stats.tokens >= lim.max_tokens:
            raise TeacherFailure("synth/budget", f"token budget of {lim.max_tokens} spent", False)
        self.stats.sent += 1

    async def reply(self, request: TeacherRequest, template_sha256: str) -> Reply:
        """One reply, from the cache or the teacher (retrying what can be retried)."""
        key = ReplyCache.key(self.teacher.name, template_sha256, request.messages, self.params)
        # every teacher, the rule one included: a rerun with the same inputs and config repeats
        # no work, and its "from the cache" count says so
        use_cache = self.cache is not None
        if use_cache and (hit := self.cache.get(key)) is not None:  # type: ignore[union-attr]
            self.stats.cache_hits += 1
            return hit
        lim = self.limits
        for attempt in range(lim.max_retries + 1):
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with self._slots:
                    self._charge()
                    reply = await self.teacher.complete(request, self.params)
            except TeacherFailure as failure:
                if not failure.retryable or attempt == lim.max_retries:
                    raise
                delay = failure.retry_after
                if delay is None:
                    delay = min(lim.backoff * 2**attempt, lim.max_backoff)
                else:  # the server asked every client to wait
                    delay = min(delay, lim.max_backoff)
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
                self.stats.retries += 1
                await asyncio.sleep(delay)
                continue
            self.stats.tokens += reply.tokens
            if use_cache:  # on a thread: creating a file can take milliseconds on a busy disk
                await asyncio.to_thread(self.cache.put, key, reply)  # type: ignore[union-attr]
            return reply
        raise AssertionError("unreachable")

    async def ask(self, request: TeacherRequest, seconds: float) -> Outcome:
        """A schema-valid reply for the request, repairing invalid ones a bounded number of
        times; never raises for a teacher's misbehaviour."""
        template = TEMPLATES[request.kind]
        messages = list(request.messages)
        error = ""
        for attempt in range(self.limits.max_repairs + 1):
            try:
                reply = await self.reply(TeacherRequest(request.kind, messages, request.facts),
                                         template.sha256)
            except TeacherFailure as failure:
                return Outcome("rejected", reason=failure.reason, detail=failure.detail)
            if is_refusal(reply.text, reply.finish_reason):
                return Outcome("rejected", reason="synth/refusal", detail=reply.text[:200])
            value, error = parse_reply(request.kind, reply.text, seconds)  # type: ignore[assignment]
            if value is not None:
                return Outcome("valid" if attempt == 0 else "repaired", value)
            messages = [*messages, {"role": "assistant", "content": reply.text},
                        repair_message(str(error))]
        return Outcome("rejected", reason="synth/invalid_output",
                       detail=f"after {self.limits.max_repairs} repair prompts: {error}")

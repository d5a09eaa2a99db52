"""Teacher backends behind one interface: `await teacher.complete(request, params)` returns the
reply's text, or raises `TeacherFailure` (a timeout, an HTTP status with its Retry-After).

- `RuleTeacher`: the embedded default, deterministic templates (`ualm.synth.rules`); offline.
- `OpenAITeacher` (`ualm.synth.openai_teacher`): any OpenAI-compatible server through the
  `openai` client library.
- `LocalTeacher` (`ualm.synth.local_teacher`): a transformers causal LM from a local folder.

`make_teacher("rule")`, `make_teacher("openai:MODEL@http://host:8000/v1")`,
`make_teacher("local:/path/to/model")`. The teacher's `name` is what traces record: it never
holds an API key or URL credentials.

>>> make_teacher("rule").name
'rule-v1'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ualm.errors import UalmError
from ualm.synth import rules


@dataclass(frozen=True)
class TeacherRequest:
    kind: str
    """The template's trace kind: enrichment, dialogue or reflection."""
    messages: list[dict[str, str]]
    facts: dict[str, Any] = field(default_factory=dict)
    """The raw inputs (captions, seconds, key, ...): what the rule teacher writes from."""


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int
    """Prompt and completion tokens (the budget counts these)."""
    finish_reason: str | None = None


class TeacherFailure(Exception):
    """A request that got no usable reply. `retryable` failures (timeouts, 429, 5xx, lost
    connections) are retried with backoff; `retry_after` is the server's Retry-After in
    seconds."""

    def __init__(self, reason: str, detail: str, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
        self.retryable, self.retry_after = retryable, retry_after


class Teacher(Protocol):
    name: str
    timeout: float | None
    """Seconds after which `complete` gives up with a retryable `synth/timeout` failure (the
    teacher enforces it: the OpenAI client does so on its connection; None: never, as for the
    rule teacher, and a local model's generation thread, which cannot be interrupted)."""

    async def complete(self, request: TeacherRequest, params: dict[str, Any]) -> Reply: ...

    async def close(self) -> None: ...


class RuleTeacher:
    name = "rule-v1"
    timeout = None

    async def complete(self, request: TeacherRequest, params: dict[str, Any]) -> Reply:
        text = rules.answer(request.kind, request.facts)
        return Reply(text, len(text.split()), "stop")

    async def close(self) -> None:
        return None


def make_teacher(spec: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 device: str | None = None, concurrency: int = 8) -> Teacher:
    """The teacher a `--teacher` spec names (see the module docstring)."""
    if spec in ("rule", "rules", "rule-v1"):
        return RuleTeacher()
    kind, _, rest = spec.partition(":")
    if kind == "openai" and rest:
        from ualm.synth.openai_teacher import OpenAITeacher

        model, _, base_url = rest.partition("@")
        return OpenAITeacher(model, base_url or None, api_key_env, timeout, concurrency)
    if kind == "local" and rest:
        from ualm.synth.local_teacher import LocalTeacher

        return LocalTeacher(rest, device)
    raise UalmError(f"unknown teacher {spec!r}",
                    fix="use rule, openai:MODEL[@BASE_URL] or local:MODEL_FOLDER")


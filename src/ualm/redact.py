"""Credentials never leave the process: what a corpus, a reject, a log line or a report records
of a URL or an error keeps the scheme, host and path and replaces secrets with `***`. The fetch
itself keeps using the full URL; only what is written goes through here.

>>> redact_url("https://user:pw@host/a.wav?X-Amz-Signature=abc&x=1")
'https://***@host/a.wav?X-Amz-Signature=***&x=1'
>>> redact_text("HTTP 404 for 'http://h/x.wav?token=t0k' (Authorization: Bearer t0k)")
"HTTP 404 for 'http://h/x.wav?token=***' (Authorization: ***)"
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import unquote

MASK = "***"

# Query (or fragment) parameters whose value is a credential: signed URLs of S3, GCS and Azure,
# OAuth and API keys. Names are compared lower-cased; a name with one of _SECRET_WORDS as a part
# (`X-Amz-Security-Token`, `client_secret`, `hf_token`) or ending in one of _SECRET_ENDINGS
# (`accessToken`) counts too, while `max_tokens` or `tokenizer` do not.
SECRET_PARAMS = frozenset({
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    "x-goog-credential", "x-goog-security-token", "sig", "signature", "token", "access_token",
    "refresh_token", "id_token", "api_key", "apikey", "api-key", "key", "password", "passwd",
    "secret", "client_secret", "auth", "authorization",
})
_SECRET_WORDS = frozenset({"token", "secret", "signature", "password", "passwd", "credential",
                           "credentials", "sig", "apikey"})
_SECRET_ENDINGS = ("token", "secret", "signature", "password", "credential", "apikey",
                   "accesskey", "secretkey")

# Environment variables that hold credentials: their values are masked in free text wherever
# they turn up (an error message of a client library, a config echoed back).
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
              "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
              "AZURE_STORAGE_CONNECTION_STRING", "GOOGLE_API_KEY", "OPENAI_API_KEY",
              "ANTHROPIC_API_KEY")
_SHORTEST_SECRET = 6  # a shorter value ("1", "yes") would mask ordinary words

# A Hugging Face token has a shape of its own ("hf_" and 34 letters and digits): masked wherever
# it turns up, in the environment or not (a saved login, a token pasted into a manifest column).
_HUB_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_PAIR = re.compile(r"\b([A-Za-z][\w.\-]*)=([^\s&'\",;)}\]]+)")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?)"
                          r"(?:(?:bearer|basic|token|aws4-hmac-sha256)\s+)?[^\s'\",;)}\]]+")


def secret_param(name: str) -> bool:
    """True when a query parameter of this name carries a credential."""
    name = unquote(name).strip().lower()
    return (name in SECRET_PARAMS or name.endswith(_SECRET_ENDINGS)
            or any(part in _SECRET_WORDS for part in re.split(r"[-_.]", name)))


def redact_url(url: str) -> str:
    """The URL with its user-info and the values of credential parameters (query and fragment)
    replaced by `***`; everything else, byte for byte. Not a URL: returned as it is."""
    if "://" not in url or not any(c in url for c in "@?#;&"):
        return url  # the common case, cheap: nothing that could hold a secret
    scheme, rest = url.split("://", 1)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return f"{scheme}://{netloc}{_redact_params(tail)}"


def _redact_params(tail: str) -> str:
    """Masks `name=value` pairs of secret names after the path (`?`, `&`, `;`, `#` separate)."""
    start = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=-1)
    if start < 0:
        return tail
    pieces = re.split(r"([?&;#])", tail[start:])
    for i, piece in enumerate(pieces):
        name, eq, _ = piece.partition("=")
        if eq and secret_param(name):
            pieces[i] = f"{name}={MASK}"
    return tail[:start] + "".join(pieces)


def env_secrets() -> list[str]:
    """The values of this process's credential variables, longest first."""
    values = {os.environ.get(name, "") for name in SECRET_ENV}
    return sorted((v for v in values if len(v) >= _SHORTEST_SECRET), key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Free text (an error's detail, a log line) with every URL in it redacted, credential
    `name=value` pairs and Authorization header values masked, and the values of credential
    variables (`secrets`, by default those of `env_secrets()`) and Hugging Face tokens replaced
    by `***`."""
    if not text:
        return text
    for value in env_secrets() if secrets is None else secrets:
        text = text.replace(value, MASK)
    if "hf_" in text:
        text = _HUB_TOKEN.sub(MASK, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    if "=" in text:  # name=value outside a URL: `Signature=...` of an AWS4 header, a log line
        text = _PAIR.sub(lambda m: f"{m.group(1)}={MASK}" if secret_param(m.group(1))
                         else m.group(0), text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_logs() -> None:
    """From now on every log record this process makes is redacted as it is made: its message
    with its arguments, its traceback and its stack. That covers the libraries' loggers too
    (a Dask worker's "Compute Failed" line repeats a task's arguments, a client's retry line its
    URL) whatever handler prints them. Idempotent; the engines call it in their workers."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacting", False):
        return

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format: logging reports it when it formats
            return record
        record.msg, record.args = redact_text(message), None
        if record.exc_info:
            record.exc_text = redact_text(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return record

    redacting.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)


_FORMATTER = logging.Formatter()

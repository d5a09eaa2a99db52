"""The one error type the CLI turns into a one-line message (no traceback unless --debug)."""

from __future__ import annotations


class UalmError(Exception):
    """A problem the user can fix: what went wrong, and how to fix it.

    >>> str(UalmError("input not found: x.jsonl", fix="check the --input path"))
    'input not found: x.jsonl (fix: check the --input path)'
    """

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message

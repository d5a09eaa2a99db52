"""The one error type the CLI turns into a one-line message (no traceback unless --debug)."""

from __future__ import annotations

import os

DEBUG_ENV = "UALM_DEBUG"
"""Set by `ualm --debug`, for the worker processes engines start: their logs show tracebacks."""


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


def debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether the command line starts with `--debug`, and the rest. When it does, DEBUG_ENV is
    set, so that the engines' workers (other processes) log every failure with its traceback.

    >>> debug_flag(["build", "--debug"])
    (False, ['build', '--debug'])
    """
    debug = bool(argv) and argv[0] == "--debug"
    if debug:
        os.environ[DEBUG_ENV] = "1"
    return debug, argv[1:] if debug else argv

"""The one way a config section refuses a value at construction."""

from __future__ import annotations

from typing import NoReturn

from ualm.errors import UalmError


def fail(message: str) -> NoReturn:
    raise UalmError(message, fix="correct the value in your config file")

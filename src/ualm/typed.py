"""Config values checked against their dataclass field's annotation, through pydantic.

Validation is pydantic's lax mode (an int where a float is meant, 2.0 where an int is, a list
where a tuple is), with one rule of ours on top: a string is never a boolean or a number, and a
boolean never a number. Lax pydantic reads `"false"` as False, but a quoted value in a YAML file
is a mistake worth naming (the old loader read `"false"` as true, which switched guards off).

>>> from dataclasses import dataclass
>>> @dataclass
... class Crawl:
...     robots: bool = True
...     timeout: float = 10.0
>>> types = field_types(Crawl)
>>> coerce(3, types["timeout"])
3.0
>>> coerce("false", types["robots"])
Traceback (most recent call last):
...
ualm.typed.TypeMismatch: a boolean (true or false, unquoted)
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

_NAMES = {bool: "a boolean (true or false, unquoted)", int: "an integer", float: "a number",
          str: "a string", dict: "a mapping", list: "a list", tuple: "a list"}


class TypeMismatch(ValueError):
    """A value that does not fit an annotation; `expected` says what would, `got` what came."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(expected)
        self.expected, self.got = expected, got


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field annotations, resolved (string annotations included)."""
    hints = _hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def describe(annotation: Any) -> str:
    """What an annotation asks for, in words a YAML author reads."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if _is_union(annotation):
        inner = " or ".join(describe(a) for a in args)
        return f"{inner} or null" if len(args) < len(typing.get_args(annotation)) else inner
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple) and args and args[0] is not Ellipsis:
        return f"a list of {_plural(args[0])}"
    return _NAMES.get(origin, getattr(origin, "__name__", str(annotation)))


def _plural(annotation: Any) -> str:
    return {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(
        annotation, describe(annotation))


def coerce(value: Any, annotation: Any) -> Any:
    """`value` as `annotation` asks, or `TypeMismatch`. Annotations that hold dataclasses (a
    nested section) or `Any` are left to the dataclass's own checks."""
    if value is None and _admits_none(annotation):
        return None
    if annotation is Any or _holds_dataclass(annotation):
        return value
    scalar = _strip_none(annotation)
    if (scalar is bool and not isinstance(value, bool)) or (
            scalar in (int, float) and isinstance(value, (str, bool))):
        raise TypeMismatch(describe(annotation), _kind(value))
    import pydantic

    try:
        return _adapter(annotation).validate_python(value)
    except pydantic.ValidationError:
        raise TypeMismatch(describe(annotation), _kind(value)) from None


@functools.cache
def _adapter(annotation: Any) -> Any:
    import pydantic

    return pydantic.TypeAdapter(annotation)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((str, "a string"), (int, "an integer"), (float, "a number"),
                       (dict, "a mapping"), (list, "a list"), (tuple, "a list")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _admits_none(annotation: Any) -> bool:
    return annotation is Any or (_is_union(annotation)
                                 and type(None) in typing.get_args(annotation))


def _strip_none(annotation: Any) -> Any:
    if not _is_union(annotation):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _holds_dataclass(annotation: Any) -> bool:
    if dataclasses.is_dataclass(annotation):
        return True
    return any(_holds_dataclass(a) for a in typing.get_args(annotation))

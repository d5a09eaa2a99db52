"""Config files as dataclasses of sections: one walker for every config (build, train, run), so
each rejects unknown sections and keys the same way, naming what it knows, and checks every value
against its field's annotation (YAML's `"false"` is a string, never a boolean).

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Run:
...     steps: int = 1
>>> @dataclass(frozen=True)
... class Config:
...     run: Run = field(default_factory=Run)
>>> from_sections(Config, {"run": {"steps": 5}}, "demo config", "see demo.yaml")
Config(run=Run(steps=5))
>>> from_sections(Config, {"run": {"stpes": 5}}, "demo config", "see demo.yaml")
Traceback (most recent call last):
...
ualm.errors.UalmError: unknown key(s) in demo config section 'run': run.stpes (fix: known keys: steps)
>>> from_sections(Config, {"run": {"steps": "5"}}, "demo config", "see demo.yaml")
Traceback (most recent call last):
...
ualm.errors.UalmError: demo config: run.steps must be an integer, got '5' (a string) (fix: see demo.yaml)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ualm.errors import UalmError
from ualm.typed import TypeMismatch, coerce, field_types

T = TypeVar("T")


def _plain(factory: type, name: str, values: dict[str, Any]) -> Any:
    return factory(**values)


def typed_values(factory: type, name: str, values: Mapping[str, Any], what: str, fix: str
                 ) -> dict[str, Any]:
    """`values` checked against `factory`'s field annotations and converted where the meaning
    is plain (an int where a float is meant, a list where a tuple is); `what` names the config
    (and its file) in the error, `name` the section."""
    types = field_types(factory)
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            out[key] = coerce(value, types[key]) if key in types else value
        except TypeMismatch as exc:
            raise UalmError(f"{what}: {name}.{key} must be {exc.expected}, got "
                            f"{value!r} ({exc.got})", fix=fix) from None
    return out


def section_type(f: dataclasses.Field) -> type:
    """The dataclass a section field holds (its default factory's class)."""
    factory = f.default_factory  # type: ignore[misc]
    return factory if isinstance(factory, type) else type(factory())


def from_sections(cls: type[T], data: Mapping[str, Any] | None, what: str, fix: str,
                  make: Callable[[type, str, dict[str, Any]], Any] = _plain,
                  source: str | None = None) -> T:
    """`cls` from a mapping of sections (each a mapping of its dataclass's fields; a missing or
    null section keeps its default). `what` names the config in messages ("config", "run
    config"), `source` the file it came from; `make(section class, name, values)` builds a
    section (after the key and type checks)."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        file = f" ({source})" if source else ""
        raise UalmError(f"unknown {what} section(s){file}: {', '.join(unknown)}",
                        fix=f"sections are: {', '.join(fields)}")
    parts = {name: build_section(section_type(f), name, data[name], what, fix, make, source)
             for name, f in fields.items() if name in data}
    return cls(**parts)


def build_section(factory: type, name: str, values: Any, what: str, fix: str,
                  make: Callable[[type, str, dict[str, Any]], Any] = _plain,
                  source: str | None = None) -> Any:
    """One section: null is its defaults; anything but a mapping of known keys is an error."""
    values = {} if values is None else values
    where = f"{what} {source}" if source else what
    if not isinstance(values, Mapping):
        raise UalmError(f"{what} section {name!r} must be a mapping (in {where})", fix=fix)
    known = {g.name for g in dataclasses.fields(factory)}
    unknown = sorted(set(values) - known)
    if unknown:
        file = f" ({source})" if source else ""
        raise UalmError(f"unknown key(s) in {what} section {name!r}{file}: "
                        f"{', '.join(f'{name}.{k}' for k in unknown)}",
                        fix=f"known keys: {', '.join(sorted(known))}")
    try:
        return make(factory, name, typed_values(factory, name, values, where, fix))
    except TypeError as exc:
        raise UalmError(f"{what} section {name!r}: {exc}", fix=fix) from exc

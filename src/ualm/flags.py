"""Command-line flags made from the config dataclasses, through jsonargparse.

A config field is never declared a second time as a flag: `add_config` turns a dataclass into
dotted flags (`--tokenize.codec`, `--optim.lr`), typed by its annotations and documented by its
field docstrings. `parse` reads a command line into the plain arguments and the config values
the user gave (only those), which each command lays over its YAML file's mapping (`merged`), so
that a flag always wins over the file, wherever it stands on the line. The merged mapping then
goes through the config's own typed loader (`from_dict`, `ualm.sections`), the one place that
checks keys and types and names the file.

Old spellings of flags are kept by `Spellings`: a table from the old flag to the new one (and,
for a switch, the value it sets), applied to the command line before parsing; a flag spelt with
dashes where the field has underscores (`--max-retries`) is read as the field's flag.

Every parse error is a `UsageError` (a `UalmError`): one line, no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ualm.errors import UalmError

HELP_FIX = "see the command's --help"


class UsageError(UalmError):
    """A command line that does not parse: an unknown flag, a value of the wrong type."""


@dataclasses.dataclass(frozen=True)
class Command:
    """One `ualm` command: its one-line help, and `run(prog, argv)`, which parses and runs."""

    help: str
    run: Callable[[str, list[str]], int]


def plain_command(help: str, add: Callable[[argparse.ArgumentParser], None],
                  run: Callable[[argparse.Namespace], int]) -> Command:
    """A command with no config fields: `add` gives a plain argparse parser its arguments."""

    def main(prog: str, argv: list[str]) -> int:
        p = argparse.ArgumentParser(prog=prog, description=help)
        add(p)
        return run(p.parse_args(argv))

    return Command(help, main)


def parser(prog: str, description: str | None = None, epilog: str | None = None) -> Any:
    """A jsonargparse parser that raises instead of exiting, with field docstrings as help."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    return ArgumentParser(prog=prog, description=description, epilog=epilog,
                          exit_on_error=False, env_prefix=False, default_env=False,
                          allow_abbrev=False)


def add_config(p: Any, cls: type, key: str | None = None, skip: Sequence[str] = ()) -> None:
    """`cls`'s fields as flags (`--KEY.FIELD`, or `--FIELD` without a key); nested dataclass
    fields become dotted groups (`--KEY.SECTION.FIELD`)."""
    p.add_class_arguments(cls, key, skip=set(skip) or None, fail_untyped=False, sub_configs=False)


def option_strings(p: Any) -> set[str]:
    return set(p._option_string_actions)


@dataclasses.dataclass(frozen=True)
class Spellings:
    """Old flags and what they now are. `renamed[old]` is the new flag, or `new=value` for an
    old switch that took no value; `convert[new]` turns an old-style value into the new one
    (e.g. `a,b` into a list)."""

    renamed: Mapping[str, str] = dataclasses.field(default_factory=dict)
    convert: Mapping[str, Callable[[str], str]] = dataclasses.field(default_factory=dict)

    def apply(self, argv: Sequence[str], known: set[str]) -> list[str]:
        out: list[str] = []
        args = list(argv)
        while args:
            arg = args.pop(0)
            if arg == "--":
                out += [arg, *args]
                break
            name, eq, value = arg.partition("=")
            if not name.startswith("--"):
                out.append(arg)
                continue
            new = self.renamed.get(name) or _underscored(name, known) or name
            if "=" in new:  # an old switch: it sets a value, and takes none
                if eq:
                    raise UsageError(f"{name} takes no value", fix=f"write {name} alone")
                out.append(new)
                continue
            if new in self.convert:
                if not eq and args:
                    value, eq = args.pop(0), "="
                if eq:
                    value = self.convert[new](value)
            out.append(f"{new}={value}" if eq else new)
        return out


def _underscored(name: str, known: set[str]) -> str | None:
    new = "--" + name[2:].replace("-", "_")
    return new if new != name and new in known and name not in known else None


def parse(p: Any, argv: Sequence[str], spellings: Spellings | None = None,
          passthrough: bool = False) -> tuple[Any, dict[str, Any], list[str]]:
    """The parsed arguments (defaults filled in), the config values given on the command line
    (a nested mapping of only those), and, with `passthrough`, the options no flag knows (Beam
    pipeline options: `--name=value` or `--name value`), which are otherwise an error."""
    known = option_strings(p)
    argv = (spellings or Spellings()).apply(argv, known)
    extra: list[str] = []
    if passthrough:
        argv, extra = _split_unknown(argv, known)
    try:
        args = p.parse_args(argv)
        given = p.parse_args(argv, defaults=False).as_dict()
    except argparse.ArgumentError as exc:
        raise UsageError(_one_line(str(exc)), fix=_fix(str(exc), known)) from None
    return args, given, extra


def _split_unknown(argv: list[str], known: set[str]) -> tuple[list[str], list[str]]:
    """The words for this parser, and the options it does not know (`--name=value`, or
    `--name value` when the next word is no option); a dotted name is always ours (a typo of
    a config flag, left for the parser to refuse)."""
    ours: list[str] = []
    other: list[str] = []
    words = list(argv)
    while words:
        word = words.pop(0)
        name = word.partition("=")[0]
        if not name.startswith("--") or name in known or "." in name or name == "--":
            ours.append(word)
            continue
        other.append(word)
        if "=" not in word and words and not words[0].startswith("-"):
            other.append(words.pop(0))
    return ours, other


def _one_line(message: str) -> str:
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    text = re.sub(r"<class '(\w+)'>", r"\1", text).replace("Expected a ", "expected ")
    union = re.match(r'(Parser key "[^"]+":).*Subtypes: \[([^\]]*)\].*Given value: (.*)$',
                     text)
    if union:  # `int | None` and the like: one line, not one per type tried
        kinds = union.group(2).replace("NoneType", "null").split(", ")
        text = f"{union.group(1)} expected {' or '.join(kinds)}. Got value: {union.group(3)}"
    return text.replace('Parser key "', "flag --").replace('":', ":", 1)


def _fix(message: str, known: set[str]) -> str:
    """The nearest known flag to an unknown one, else the pointer to --help."""
    if message.startswith("unrecognized arguments:"):
        for word in message.split(":", 1)[1].split():
            near = difflib.get_close_matches(word.partition("=")[0], known, n=1)
            if word.startswith("--") and near:
                return f"did you mean {near[0]}? {HELP_FIX}"
    return HELP_FIX


def section(given: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The nested mapping under `key` (a config's part of what the command line gave)."""
    value = given.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def pick(given: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The given values of `names` (top-level config fields)."""
    return {n: given[n] for n in names if n in given}


def comma_list(value: str) -> str:
    """`a,b` (the old spelling of a list flag) as the YAML list `[a, b]`."""
    if value.lstrip().startswith("["):
        return value
    return "[" + ", ".join(v.strip() for v in value.split(",") if v.strip()) + "]"


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

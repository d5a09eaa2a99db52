"""The window filters a build can switch on by name: the ones this package declares in
`FILTERS`, and plug-ins that other packages install under the `ualm.filters` entry point group.

A filter is one declaration (`Filter`: its name, which is also the namespace of its reasons,
the reasons it may give, one line for the dataset card, and a factory that builds its check
from the options in the config). Everything else follows from that: the ingest unit runs the
enabled checks after the quality checks (the first reason wins), the rejects, `ualm inspect`
and the report count its reasons, and the card lists it with its options.

A plug-in is a package whose metadata names a `Filter` (or a function returning one):

    [project.entry-points."ualm.filters"]
    hum = "my_filters.hum:HUM"

and a config that switches it on: `filters: {enabled: [hum], options: {hum: {max_db: -30}}}`.
Workers of a cluster find it the same way, so it must be installed where they run.

>>> [f.name for f in FILTERS]
['dc_offset']
>>> checks({"enabled": ["dc_offset"], "options": {"dc_offset": {"max_offset": 0.1}}})
[DcOffsetCheck(max_offset=0.1)]
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ualm.errors import UalmError
from ualm.filters.base import WindowCheck
from ualm.filters.dc_offset import DcOffsetCheck

GROUP = "ualm.filters"


@dataclass(frozen=True)
class Filter:
    """One window filter, declared."""

    name: str
    """How a config names it; also the namespace of its reasons (`name/...`)."""
    reasons: tuple[str, ...]
    description: str
    """One line for the dataset card."""
    factory: Callable[..., WindowCheck]
    """Builds the check from the config's options for this filter (keyword arguments)."""

    def __post_init__(self) -> None:
        stray = [r for r in self.reasons if not r.startswith(f"{self.name}/")]
        if not self.reasons or stray:
            raise ValueError(f"filter {self.name}: reasons must be '{self.name}/...', got "
                             f"{list(self.reasons) or 'none'}")


FILTERS: tuple[Filter, ...] = (
    Filter("dc_offset", ("dc_offset/too_high",),
           "windows whose mean is further than max_offset from zero", DcOffsetCheck),
)
"""The filters this package declares; a new one is a module and an entry here."""


def _plugins() -> dict[str, Filter]:
    found: dict[str, Filter] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        try:
            loaded = point.load()
            declared = loaded() if callable(loaded) and not isinstance(loaded, Filter) else loaded
        except Exception as exc:  # a broken plug-in names itself, and does not hide the others
            raise UalmError(f"filter plug-in {point.name} ({point.value}) failed to load: "
                            f"{type(exc).__name__}: {exc}",
                            fix="fix or uninstall the package that provides it") from exc
        if not isinstance(declared, Filter) or declared.name != point.name:
            raise UalmError(f"filter plug-in {point.name} ({point.value}) is not a "
                            f"ualm.filters.chain.Filter named {point.name!r}",
                            fix="point the entry point at a Filter declaration of that name")
        found[point.name] = declared
    return found


def available() -> dict[str, Filter]:
    """Every filter a config can name: the package's, then installed plug-ins."""
    own = {f.name: f for f in FILTERS}
    clashes = sorted(set(own) & set(plugins := _plugins()))
    if clashes:
        raise UalmError(f"filter plug-in(s) {', '.join(clashes)} reuse a built-in name",
                        fix="rename the plug-in's entry point and Filter")
    return {**own, **plugins}


def enabled(config: Mapping[str, Any]) -> list[Filter]:
    """The filters a `filters` config section switches on, in its order; unknown names and
    options for filters that are not on are errors that name the fix."""
    names: Sequence[str] = config.get("enabled") or ()
    options: Mapping[str, Any] = config.get("options") or {}
    known = available() if names or options else {}
    missing = [n for n in names if n not in known]
    if missing:
        raise UalmError(f"filters.enabled names unknown filter(s): {', '.join(missing)}",
                        fix=f"choose from: {', '.join(sorted(known)) or '(none installed)'}, "
                            "or install the package that provides it")
    idle = sorted(set(options) - set(names))
    if idle:
        raise UalmError(f"filters.options set for filter(s) not enabled: {', '.join(idle)}",
                        fix="add them to filters.enabled, or drop their options")
    return [known[n] for n in names]


def checks(config: Mapping[str, Any]) -> list[WindowCheck]:
    """The enabled filters' checks, built with their options."""
    options = config.get("options") or {}
    built = []
    for declared in enabled(config):
        try:
            built.append(declared.factory(**dict(options.get(declared.name) or {})))
        except TypeError as exc:
            raise UalmError(f"filters.options.{declared.name}: {exc}",
                            fix="see the filter's documentation for its options") from exc
    return built


def checks_for_unit(config: Mapping[str, Any]) -> tuple[WindowCheck, ...]:
    """`checks(config)`, built once per process and config: an ingest unit asks per input, and
    finding plug-ins scans the installed packages."""
    return _cached(json.dumps(config, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _cached(blob: str) -> tuple[WindowCheck, ...]:
    return tuple(checks(json.loads(blob)))

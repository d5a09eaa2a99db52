"""Fault injection, for the tests and for fire drills on a real cluster.

`UALM_FAULTS="ingest:3=fail, shard:0=fail1, ingest:*=sleep0.5"` makes ingest unit 3 raise on
every attempt, shard unit 0 raise on its first attempt only, and every ingest unit sleep half a
second first (to widen the window in which a drill kills a worker). `nospace` is `fail` with
the OSError of a full disk (`ingest:1=nospace`), as a unit writing to a full output meets it. Each attempt at a unit named
in a `fail` rule leaves a file under `_work/faults/`, so a drill can count how often it was
tried (an object under the work area when the corpus is in a store). Unset (the default),
this costs one environment lookup per unit.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout

ENV = "UALM_FAULTS"
_RULE = re.compile(r"^(?P<stage>[\w-]+):(?P<unit>\d+|\*)=(?P<action>fail|nospace|sleep)(?P<arg>[\d.]*)$")


class InjectedFault(RuntimeError):
    """Raised where UALM_FAULTS asks for it."""


@dataclass(frozen=True)
class Rule:
    stage: str
    unit: int | None  # None: every unit
    action: str
    arg: float | None  # fail: attempts that fail (None: all); sleep: seconds

    def matches(self, stage: str, unit: int) -> bool:
        return self.stage == stage and self.unit in (None, unit)


def parse(spec: str) -> list[Rule]:
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        match = _RULE.match(item)
        if match is None:
            raise UalmError(f"bad {ENV} rule {item!r}",
                            fix="use STAGE:UNIT=fail, STAGE:UNIT=failN, STAGE:UNIT=nospace or "
                                "STAGE:UNIT=sleepS (UNIT may be *)")
        unit, arg = match["unit"], match["arg"]
        rules.append(Rule(match["stage"], None if unit == "*" else int(unit), match["action"],
                          float(arg) if arg else None))
    return rules


def maybe_fail(layout: CorpusLayout, stage: str, unit: int) -> None:
    """Applies the rules for (stage, unit), if any."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for rule in parse(spec):
        if not rule.matches(stage, unit):
            continue
        if rule.action == "sleep":
            time.sleep(rule.arg or 0.0)
            continue
        name = f"{stage}-{unit}-"
        attempt = 1 + len(layout.list(layout.faults, prefix=name))
        layout.write_bytes(f"{layout.faults}/{name}{attempt}-{os.getpid()}", b"tried\n")
        if rule.arg is not None and attempt > rule.arg:
            continue
        if rule.action == "nospace":  # as pyarrow raises it: an errno, no file name
            raise OSError(errno.ENOSPC, f"injected: {os.strerror(errno.ENOSPC)}")
        raise InjectedFault(f"injected fault in {stage} unit {unit}, attempt {attempt}")

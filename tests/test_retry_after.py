"""One `Retry-After` parser for the crawler and the teachers: seconds, HTTP dates and
`retry-after-ms`; a value it cannot read (`soon`, `nan`, a negative number) falls back to the
caller's backoff instead of crashing `ualm synth` or waiting `nan` seconds."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import pytest
from multidict import CIMultiDict

import ualm.retry_after
from ualm.retry_after import retry_after
from ualm.synth.config import SynthConfig
from ualm.synth.run import synth_corpus
from ualm.testing.teacher_server import Action, FakeTeacherServer

from .synth_helpers import captioned_corpus

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "0.4"}, 0.4),
    ({"RETRY-AFTER": " 12 "}, 12.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # a date in the past: now
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "20", "Retry-After": "9"}, 0.02),
    ({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0),  # unreadable ms: the other header
    ({}, None),
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": "nan"}, None),
    ({"Retry-After": "inf"}, None),
    ({"Retry-After": "-5"}, None),
    ({"Retry-After": ""}, None),
    ({"Retry-After": "Wed, 99 Foo 2015 07:28:00 GMT"}, None),
    ({"retry-after-ms": "nan"}, None),
])
def test_parser(headers: dict[str, str], seconds: float | None) -> None:
    for given in (headers, CIMultiDict(headers)):
        got = retry_after(given, now=NOW)
        if seconds is None:
            assert got is None
        else:
            assert got == pytest.approx(seconds) and math.isfinite(got)


def test_no_headers_at_all() -> None:
    assert retry_after(None) is None


def test_doctest() -> None:
    assert doctest.testmod(ualm.retry_after).failed == 0


@pytest.mark.parametrize("value", ["soon", "nan", "-1"])
def test_a_teacher_answering_429_with_an_unreadable_retry_after_backs_off_and_succeeds(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UALM_TEST_KEY", "sk-test")
    root = captioned_corpus(tmp_path, ["case one"])
    seen: list[int] = []

    def script(body: dict, n: int) -> Action | None:
        seen.append(n)
        return Action(status=429, headers={"Retry-After": value}) if len(seen) == 1 else None

    with FakeTeacherServer(latency=0.0, script=script) as server:
        config = SynthConfig(teacher=f"openai:m@{server.base_url}", kinds=("enrichment",),
                             api_key_env="UALM_TEST_KEY", max_retries=2, backoff=0.2)
        result = synth_corpus(root, config, progress=False)
        times = list(server.times)
    assert result.stats["retries"] == 1
    assert result.funnel["traces"]["enrichment"]["written"] == 1
    assert times[1] - times[0] >= 0.2  # the config's backoff, since the header said nothing

"""The build, train and run configs share one section walker: each rejects an unknown section,
an unknown key and a section that is not a mapping alike, naming what it knows."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

import ualm.sections
from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.run.config import PipelineConfig
from ualm.train.config import TrainConfig

CONFIGS = [(BuildConfig, "config"), (TrainConfig, "config"), (PipelineConfig, "run config")]


@pytest.mark.parametrize(("cls", "what"), CONFIGS)
def test_unknown_sections_and_keys_are_refused_alike(cls: type, what: str) -> None:
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(UalmError, match=rf"unknown {what} section\(s\): bogus") as caught:
        cls.from_dict({"bogus": {}})
    assert first in caught.value.fix
    with pytest.raises(UalmError,
                       match=rf"unknown key\(s\) in {what} section '{first}': {first}.zzz"):
        cls.from_dict({first: {"zzz": 1}})
    with pytest.raises(UalmError, match=rf"{what} section '{first}' must be a mapping"):
        cls.from_dict({first: [1, 2]})
    assert cls.from_dict({first: None}) == cls.from_dict({})  # null: the section's defaults


def test_doctest() -> None:
    assert doctest.testmod(ualm.sections).failed == 0

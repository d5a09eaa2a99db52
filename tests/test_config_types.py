"""Every config value is checked against its field's annotation: a quoted `"false"` is a string,
never a boolean (the old loader read it as true and switched the crawler's private-network guard
off). These go through the public loaders (YAML files, the CLI), so any future config scheme must
keep passing them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.run.config import PipelineConfig
from ualm.sections import section_type
from ualm.synth.run import synthesize
from ualm.train.config import TrainConfig
from ualm.typed import field_types

MINIMAL_RUN = {"run": {"out": "r"}, "train": {"config": "tiny"}}


def _bool_fields(cls: type) -> Iterator[tuple[str, str]]:
    """(section, key) of every boolean field of a config of sections."""
    for f in dataclasses.fields(cls):
        section = section_type(f)
        for key, annotation in field_types(section).items():
            if annotation is bool:
                yield f.name, key


def _case_ids(cls: type) -> list[tuple[type, str, str]]:
    return [(cls, section, key) for section, key in _bool_fields(cls)]


CASES = [*_case_ids(BuildConfig), *_case_ids(TrainConfig), *_case_ids(PipelineConfig)]


def _load(cls: type, path: Path) -> object:
    return PipelineConfig.load(path) if cls is PipelineConfig else cls.from_yaml(path)


def test_every_config_has_boolean_fields_to_check() -> None:
    keys = {(cls.__name__, s, k) for cls, s, k in CASES}
    assert ("BuildConfig", "crawl", "allow_private_network") in keys
    assert ("BuildConfig", "tokenize", "enabled") in keys
    assert ("BuildConfig", "loudness", "enabled") in keys
    assert ("BuildConfig", "crawl", "robots") in keys
    assert len(keys) >= 15


@pytest.mark.parametrize(("cls", "section", "key"), CASES,
                         ids=[f"{c.__name__}.{s}.{k}" for c, s, k in CASES])
@pytest.mark.parametrize("quoted", ["false", "true", "no", "0"])
def test_a_quoted_boolean_is_refused_naming_key_file_and_type(
        cls: type, section: str, key: str, quoted: str, tmp_path: Path) -> None:
    base = MINIMAL_RUN if cls is PipelineConfig else {}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**base, section: {**base.get(section, {}), key: quoted}}))
    with pytest.raises(UalmError) as caught:
        _load(cls, path)
    message = str(caught.value)
    assert f"{section}.{key} must be a boolean" in message
    assert str(path) in message and repr(quoted) in message


def test_real_booleans_still_load(tmp_path: Path) -> None:
    path = tmp_path / "build.yaml"
    path.write_text("crawl: {allow_private_network: false, robots: false}\n"
                    "loudness: {enabled: true}\n")
    config = BuildConfig.from_yaml(path)
    assert config.crawl.allow_private_network is False and config.crawl.robots is False
    assert config.loudness.enabled is True


def test_numbers_and_lists_are_typed_and_mistyped_ones_refused(tmp_path: Path) -> None:
    config = TrainConfig.from_dict({"optim": {"lr": 1, "betas": [0.9, 0.99]},
                                    "run": {"max_steps": 4.0}})
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)
    assert config.optim.betas == (0.9, 0.99)
    assert config.run.max_steps == 4 and isinstance(config.run.max_steps, int)
    for section, key, value, expected in [("run", "max_steps", "10", "an integer"),
                                          ("run", "max_steps", 2.5, "an integer"),
                                          ("optim", "lr", True, "a number"),
                                          ("optim", "betas", "0.9", "a list of numbers")]:
        with pytest.raises(UalmError, match=rf"{section}\.{key} must be {expected}"):
            TrainConfig.from_dict({section: {key: value}})


def test_synth_options_are_typed_as_synth_config() -> None:
    with pytest.raises(UalmError, match=r"options\.concurrency must be an integer, got 'many'"):
        synthesize("/nonexistent", progress=False, concurrency="many")


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "build.yaml"
    path.write_text('crawl:\n  allow_private_network: "false"\n')
    (tmp_path / "in").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ualm.cli", "build", "--input",
                           str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                           "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "crawl.allow_private_network must be a boolean" in lines[0]
    assert not (tmp_path / "out").exists()

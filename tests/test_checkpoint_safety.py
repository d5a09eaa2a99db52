"""Checkpoints are untrusted input: a checkpoint the trainer wrote loads (and resumes) with
`weights_only=True`; a crafted pickle that would run code is refused with one line naming the
file and why, before any of its code runs (on `ualm generate`, `--init` and resume alike); a
checkpoint whose recorded model config is invalid is refused with the config's own message; a
YAML config that would build Python objects is refused too, and no source loads unsafely."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_train_fit import SMALL
from ualm.cli import main
from ualm.errors import UalmError
from ualm.train.config import TrainConfig
from ualm.train.model.module import load_trained, read_checkpoint
from ualm.train.stages.stage import read_init
from ualm.train.trainer import train

TINY = {**SMALL, "run": {**SMALL["run"], "max_steps": 2, "checkpoint_every": 1}}

# Makes torch.load default to weights_only=False wherever a caller leaves it unset (as Lightning
# does): the refusals below must come from our explicit weights_only=True, not torch's default.
UNSAFE_DEFAULT = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class _Payload:
    """What a hostile checkpoint holds: unpickling it runs a shell command (here: touch)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(event_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safe-ckpt") / "run"
    result = train([event_corpus], TrainConfig.from_dict(TINY), out)
    assert result.checkpoint is not None
    return result.checkpoint


def _hostile(path: Path, marker: Path, zipped: bool = True) -> Path:
    """A checkpoint-shaped file (torch's zip format, or a bare pickle) with a payload inside."""
    data = {"state_dict": {}, "ualm": {"model": {}}, "evil": _Payload(marker)}
    if zipped:
        torch.save(data, path)
    else:
        path.write_bytes(pickle.dumps(data, protocol=2))  # the protocol torch.load reads
    return path


def test_a_trainer_checkpoint_loads_weights_only_and_resumes(trained: Path, event_corpus: Path,
                                                             tmp_path: Path) -> None:
    raw = torch.load(trained, map_location="cpu", weights_only=True)  # nothing to allow-list
    meta, state = read_checkpoint(trained)
    assert meta["stage"] == "pretrain" and meta["model"]["hidden_size"] == 32
    assert state.keys() == {k.removeprefix("model.") for k in raw["state_dict"]}
    model = load_trained(trained)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    resumed = tmp_path / "run"
    (resumed / "checkpoints").mkdir(parents=True)
    (resumed / "checkpoints" / "last.ckpt").write_bytes(
        (trained.parent / "step-1.ckpt").read_bytes())
    assert train([event_corpus], TrainConfig.from_dict(TINY), resumed).steps == 2


def test_the_payload_runs_when_loaded_unsafely(tmp_path: Path) -> None:
    """The control: the crafted file really is hostile (torch.load with weights_only=False runs
    its command, in a child process), so the refusals below are not refusals of a dud."""
    marker = tmp_path / "ran"
    hostile = _hostile(tmp_path / "evil.ckpt", marker)
    code = (f"import torch; torch.load({str(hostile)!r}, weights_only=False)")
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120,
                   cwd=Path(__file__).parents[1])
    assert marker.exists()


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "bare-pickle"])
def test_a_hostile_checkpoint_is_refused_before_its_code_runs(
        tmp_path: Path, zipped: bool, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UNSAFE_DEFAULT, "1")
    marker = tmp_path / "ran"
    hostile = _hostile(tmp_path / "evil.ckpt", marker, zipped)
    with pytest.raises(UalmError) as info:
        read_checkpoint(hostile)
    message = str(info.value)
    assert "\n" not in message and str(hostile) in message
    assert "refused checkpoint" in message and "could run code" in message
    assert "system" in message  # names what it refused (posix.system / os.system)
    with pytest.raises(UalmError, match="refused checkpoint"):
        read_init(hostile, TrainConfig.from_dict(TINY).model)  # `ualm train --init`
    assert main(["generate", "a tone", "--checkpoint", str(hostile), "--corpus",
                 str(tmp_path), "-o", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ualm: error: refused checkpoint")
    assert not marker.exists()


def test_a_hostile_resume_checkpoint_is_refused(event_corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UNSAFE_DEFAULT, "1")
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _hostile(run / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(UalmError, match=r"refused checkpoint .*last\.ckpt"):
        train([event_corpus], TrainConfig.from_dict(TINY), run)
    assert not marker.exists()


@pytest.mark.parametrize(("change", "expected"), [
    ({"codebooks": "eight"}, r"model\.codebooks must be an integer or null, got 'eight'"),
    ({"codebooks": 0}, r"model\.codebooks must be >= 1"),
    ({"hidden_sise": 64}, r"unknown key\(s\) .*model\.hidden_sise"),
    ({"backbone": ["a", "list"]}, r"model\.backbone must be"),
])
def test_a_checkpoint_with_an_invalid_recorded_config_is_refused(
        trained: Path, tmp_path: Path, change: dict, expected: str) -> None:
    data = torch.load(trained, map_location="cpu", weights_only=True)
    data["ualm"]["model"] = {**data["ualm"]["model"], **change}
    bad = tmp_path / "bad.ckpt"
    torch.save(data, bad)
    with pytest.raises(UalmError, match=expected) as info:
        load_trained(bad)
    assert str(bad) in str(info.value)


def test_a_checkpoint_with_a_bad_record_beside_its_config_is_refused(trained: Path,
                                                                     tmp_path: Path) -> None:
    data = torch.load(trained, map_location="cpu", weights_only=True)
    for field, value, expected in [("stage", "sudo", "unknown stage 'sudo'"),
                                   ("hf_config", ["x"], "hf_config must be a mapping"),
                                   ("tokenizer", 3, "tokenizer must be a string")]:
        bad = tmp_path / f"bad-{field}.ckpt"
        torch.save({**data, "ualm": {**data["ualm"], field: value}}, bad)
        with pytest.raises(UalmError, match=expected):
            read_checkpoint(bad)


def test_a_yaml_config_that_builds_python_objects_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = tmp_path / "train.yaml"
    hostile.write_text(f"run: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UalmError, match="is not valid YAML"):
        TrainConfig.from_yaml(hostile)
    assert not marker.exists()


UNSAFE_LOADS = ("weights_only=False", "yaml.load(", "yaml.unsafe_load", "yaml.full_load",
                "UnsafeLoader", "allow_pickle=True")


def test_no_source_loads_checkpoints_yaml_or_arrays_unsafely() -> None:
    src = Path(__file__).parents[1] / "src" / "ualm"
    # saving a full checkpoint (`save_checkpoint(..., weights_only=False)`) loads nothing
    found = [f"{p.relative_to(src)}: {u}" for p in sorted(src.rglob("*.py"))
             for line in p.read_text().splitlines() if "save_checkpoint(" not in line
             for u in UNSAFE_LOADS if u in line]
    assert not found, found

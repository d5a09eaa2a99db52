"""What a user reads in the terminal: `ualm train` counts steps out of max_steps (not Lightning's
`Epoch 0/-2`), prints the held-out loss at each validation and the paths it wrote, and shows no
library tips, availability lines or deprecation warnings unless `ualm --verbose` asks; `ualm
build` without a codec writes no tokens and says in one line how to add them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from ualm.audio.synthetic import SyntheticWorld
from ualm.cli import main
from ualm.terminal import quiet_libraries

from .test_train_fit import SMALL

NOISE = ("Tip:", "litlogger", "GPU available", "TPU available", "deprecated", "Warning",
         "eval mode", "Epoch ", "`Trainer.fit` stopped")


def _train(corpus: Path, tmp_path: Path, *before: str) -> subprocess.CompletedProcess:
    config = tmp_path / "small.yaml"
    run = {**SMALL["run"], "max_steps": 4, "val_every": 2, "progress_bar": True}
    config.write_text(yaml.safe_dump({**SMALL, "run": run}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ualm.cli", *before, "train", str(corpus), "--config",
         str(config), "--out", str(tmp_path / "run"), "--heldout", str(corpus)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_train_is_quiet_and_counts_steps(event_corpus: Path, tmp_path: Path) -> None:
    done = _train(event_corpus, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    for noise in NOISE:
        assert noise not in printed, (noise, printed)
    assert "train: 4/4 steps" in done.stderr  # the bar: steps of max_steps, with rate and ETA
    assert "steps/s" in done.stderr or "s/steps" in done.stderr
    # the held-out loss at each validation, not only at the end
    assert "step 2/4: held-out loss" in done.stderr and "step 4/4: held-out loss" in done.stderr
    run = tmp_path / "run"
    assert "trained 4 steps" in done.stdout and "held-out loss" in done.stdout
    assert f"checkpoint  {run / 'checkpoints' / 'last.ckpt'}" in done.stdout
    assert f"metrics     {run / 'logs' / 'metrics.csv'}" in done.stdout


def test_verbose_shows_the_libraries(event_corpus: Path, tmp_path: Path) -> None:
    done = _train(event_corpus, tmp_path, "--verbose", "--debug")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GPU available" in done.stderr and "Tip:" in done.stderr


def test_the_filters_are_narrow() -> None:
    """The CLI hides the libraries' known warnings and no others; importing ualm hides none."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("Found 3 module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)
        warnings.warn("something else is deprecated", DeprecationWarning, stacklevel=1)
        warnings.warn("a user warning of ours", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated",
                                                "a user warning of ours"]


def test_build_without_a_codec_writes_no_tokens(world: SyntheticWorld, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    assert main(["build", "--input", str(world.manifest), "--out", str(out), "--engine",
                 "local", "--quiet", "--work.unit_size", "6"]) == 0
    printed = capsys.readouterr().out
    hints = [line for line in printed.splitlines() if "no codec configured" in line]
    assert len(hints) == 1 and "--codec PATH" in hints[0] and "random:encodec" in hints[0]
    assert f"ualm tokenize {out} --codec" in hints[0]
    assert not (out / "tokens").exists() and list((out / "audio").glob("*.tar"))
    assert not json.loads((out / "corpus.json").read_text()).get("tokens")
    assert main(["tokenize", str(out), "--engine", "local"]) == 2
    assert "no codec given" in capsys.readouterr().err

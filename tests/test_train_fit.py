"""Training end to end: a fit writes checkpoints, logs, a loss curve and the realised blend; a run
stopped at step N and resumed matches an uninterrupted one exactly; DDP with 2 CPU processes
(gloo) trains without hangs on disjoint data; and the CLI's train, eval, generate, understand."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ualm.audio.events import make_event_world
from ualm.cli import main
from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.pipelines.build import build_corpus
from ualm.train.config import TrainConfig
from ualm.train.model.module import load_trained
from ualm.train.trainer import train

EVENTS = ("a low tone", "white noise", "a click train")
SMALL = {
    "model": {"hidden_size": 32, "layers": 1, "heads": 2, "kv_heads": 1,
              "intermediate_size": 64, "max_positions": 512},
    "data": {"seq_len": 256, "batch_size": 2, "shuffle_buffer": 8},
    "optim": {"lr": 0.003, "warmup_steps": 2},
    "run": {"max_steps": 6, "checkpoint_every": 3, "log_every": 1, "accelerator": "cpu",
            "devices": 1, "progress_bar": False, "threads": 1},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=EVENTS, text_rows=4, seed=2)
    config = BuildConfig.from_dict({"shards": {"max_samples": 4},
                                    "tokenize": {"codec": "random"}})
    return build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                        progress=False).corpus


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def test_fit_writes_its_run_folder_and_resumes_exactly(corpus: Path, tmp_path: Path) -> None:
    config = TrainConfig.from_dict(SMALL)
    straight = train([corpus], config, tmp_path / "straight")
    assert straight.steps == 6 and straight.final_loss is not None
    run = tmp_path / "straight"
    assert (run / "loss.png").stat().st_size > 1000
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"step-3.ckpt", "step-6.ckpt",
                                                                   "last.ckpt"}
    metrics = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("epoch,step") and len(metrics) >= 6
    realised = json.loads((run / "realised_blend.json").read_text())
    assert sum(s["samples"] for s in realised["sources"].values()) > 6
    assert set(realised["tasks"]) == {"generation", "understanding", "text"}
    # stop at step 3 (its checkpoint becomes the run's last), resume to 6
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "step-3.ckpt", resumed / "checkpoints" / "last.ckpt")
    again = train([corpus], config, resumed)
    assert again.steps == 6
    a, b = _weights(run / "checkpoints" / "last.ckpt"), _weights(resumed / "checkpoints" /
                                                                  "last.ckpt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same batches, the same updates
    assert again.final_loss == pytest.approx(straight.final_loss, abs=1e-6)
    assert json.loads((resumed / "realised_blend.json").read_text()) == realised


def test_loader_workers_change_neither_the_run_nor_its_resume(corpus: Path,
                                                             tmp_path: Path) -> None:
    """Two loader workers train the same batches as none (each packs a block of every batch),
    and their step-3 checkpoint resumes with none to the same weights and realised blend."""
    straight = train([corpus], TrainConfig.from_dict(SMALL), tmp_path / "straight")
    workers = {**SMALL, "data": {**SMALL["data"], "num_workers": 2}}
    two = train([corpus], TrainConfig.from_dict(workers), tmp_path / "two")
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "two" / "checkpoints" / "step-3.ckpt",
                resumed / "checkpoints" / "last.ckpt")
    again = train([corpus], TrainConfig.from_dict(SMALL), resumed)
    a = _weights(straight.checkpoint)
    for run in (two, again):
        b = _weights(run.checkpoint)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert (json.loads((run.checkpoint.parents[1] / "realised_blend.json").read_text())
                == json.loads((tmp_path / "straight" / "realised_blend.json").read_text()))


def test_ddp_two_cpu_processes(corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "ddp.yaml"
    ddp = {**SMALL, "run": {**SMALL["run"], "max_steps": 4, "checkpoint_every": 4}}
    config.write_text(yaml.safe_dump(ddp))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ualm.cli", "train", str(corpus), "--config", str(config),
         "--out", str(tmp_path / "run"), "--devices", "2", "--strategy", "ddp", "--quiet"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=False)
    assert checkpoint["global_step"] == 4
    lanes = checkpoint["UALMDataModule"]["lanes"]  # one per row of the global batch
    assert sorted(lanes) == ["0", "1", "2", "3"] and checkpoint["UALMDataModule"]["rows"] == 4
    assert all(lane["batches"] == 4 for lane in lanes.values())  # every row of every step
    assert lanes["0"]["rng"] != lanes["2"]["rng"]
    realised = json.loads((tmp_path / "run" / "realised_blend.json").read_text())
    every_lane = sum(c[0] for lane in lanes.values() for c in lane["counts"].values())
    assert sum(s["samples"] for s in realised["sources"].values()) == every_lane  # both ranks


def test_cli_train_eval_generate_understand(corpus: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "run": {**SMALL["run"], "max_steps": 3}}))
    out = tmp_path / "run"
    assert main(["train", str(corpus), "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained 3 steps" in printed and "events-gen/generation" in printed
    checkpoint = out / "checkpoints" / "last.ckpt"
    assert main(["eval", str(corpus), "--checkpoint", str(checkpoint), "--seq-len", "256",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["tasks"]) == {"generation", "understanding", "text"}
    assert result["samples"] == 9 + 9 + 4  # every sample once: generation, understanding, text
    assert 0 < result["tasks"]["generation"]["loss"] < 10
    assert 0 <= result["tasks"]["understanding"]["text_accuracy"] <= 1
    wav = tmp_path / "out.wav"
    assert main(["generate", "a low tone", "--checkpoint", str(checkpoint), "--corpus",
                 str(corpus), "-o", str(wav), "--max-seconds", "0.2"]) == 0
    assert "wrote" in capsys.readouterr().out
    import soundfile as sf

    audio, rate = sf.read(wav)
    assert rate == 24000 and len(audio) <= 0.2 * 24000 + 320
    clip = next((corpus.parent / "world" / "train").glob("*.flac"))
    assert main(["understand", str(clip), "Which sound comes first?", "--checkpoint",
                 str(checkpoint), "--corpus", str(corpus), "--max-new-tokens", "4"]) == 0
    capsys.readouterr()
    assert main(["train", str(corpus), "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_heldout_loss_is_logged_while_training(corpus: Path, tmp_path: Path) -> None:
    """val/loss every run.val_every steps; the last one is the final checkpoint's loss on the
    held-out corpus, measured the way `ualm eval` measures it. The corpus stands in as its own
    held-out set here: what is checked is when and what is measured, not generalisation."""
    from ualm.train.model.evaluate import evaluate
    from ualm.train.model.module import load_trained

    config = TrainConfig.from_dict({**SMALL, "run": {**SMALL["run"], "val_every": 2,
                                                     "val_batches": None}})
    result = train([corpus], config, tmp_path / "run", heldout=[corpus])
    with open(tmp_path / "run" / "logs" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/loss")]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert {"val/loss_generation", "val/loss_understanding", "val/loss_text"} <= set(rows[0])
    final = evaluate(load_trained(result.checkpoint), [corpus], config.data.seq_len,
                     config.data.batch_size)
    assert float(rows[-1]["val/loss"]) == pytest.approx(final["loss"], rel=1e-5)
    assert float(rows[-1]["val/loss_text"]) == pytest.approx(final["tasks"]["text"]["loss"],
                                                             rel=1e-5)
    assert float(rows[0]["val/loss"]) > float(rows[-1]["val/loss"])  # it learns


def test_the_model_takes_its_codebooks_from_the_corpus(corpus: Path, tmp_path: Path) -> None:
    """model.codebooks unset: a corpus tokenized with 4 codebooks trains a 4-codebook model
    (and says so in the run's config); a set count that differs, or corpora that differ, stop
    before any step with the fix."""
    world = make_event_world(tmp_path / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=EVENTS, text_rows=2, seed=3)
    four = build_corpus([world.manifests["train"]], tmp_path / "four",
                        BuildConfig.from_dict({"tokenize": {"codec": "random", "bandwidth": 3.0}}), engine="local",
                        progress=False).corpus
    one_step = {**SMALL, "run": {**SMALL["run"], "max_steps": 1, "checkpoint_every": 1}}
    result = train([four], TrainConfig.from_dict(one_step), tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["codebooks"] == 4
    assert load_trained(result.checkpoint, "cpu").k == 4
    with pytest.raises(UalmError, match=r"has 4 codebooks, the model 8.*model\.codebooks: 4"):
        train([four], TrainConfig.from_dict({**one_step, "model": {**SMALL["model"],
                                                                   "codebooks": 8}}),
              tmp_path / "set")
    with pytest.raises(UalmError, match=r"8 codebooks and .*four's 4"):
        train([corpus, four], TrainConfig.from_dict(one_step), tmp_path / "mixed")


def test_a_resumed_run_keeps_the_log_of_the_steps_it_inherits(corpus: Path,
                                                              tmp_path: Path) -> None:
    """Resumed from its step-3 checkpoint, a run's metrics.csv keeps steps up to 3 from before
    and logs 4-6 again: the same curve as the straight run, no step twice (Lightning's logger
    used to delete the file, and the loss curve began at the resume)."""
    from ualm.train.metrics import loss_series, read_metrics

    run = tmp_path / "run"
    train([corpus], TrainConfig.from_dict(SMALL), run)
    metrics = run / "logs" / "metrics.csv"
    straight = loss_series(read_metrics(metrics), "train")["loss"]
    assert [step for step, _ in straight][-1] >= 5
    shutil.copy(run / "checkpoints" / "step-3.ckpt", run / "checkpoints" / "last.ckpt")
    again = train([corpus], TrainConfig.from_dict(SMALL), run)
    assert again.steps == 6
    resumed = loss_series(read_metrics(metrics), "train")["loss"]
    assert [s for s, _ in resumed] == [s for s, _ in straight]
    assert [v for _, v in resumed] == pytest.approx([v for _, v in straight], abs=1e-6)

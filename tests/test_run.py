"""`ualm run`: the demo config end to end (with small sizes through --set), skipping what is
complete, --until / --from, a changed setting redoing its stage and the later ones only, the
optional synth and publish stages, clear errors for bad configs, and the other example configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from ualm.audio.synthetic import SyntheticWorld
from ualm.cli import main
from ualm.errors import UalmError
from ualm.run import PipelineConfig, run_pipeline
from ualm.run.config import apply_override
from ualm.train.model.choices import options_of

from .test_train_fit import EVENTS, SMALL

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO = EXAMPLES / "demo.yaml"
FAST = [  # the demo, shrunk: 3 events, 1 s clips, a 1-layer model, 3 steps, local engine
    "engine.name=local",
    "sources.events.per_class=1",
    "sources.events.heldout_per_class=1",
    f"sources.events.events={json.dumps(list(EVENTS))}",
    "sources.events.seconds=1.0",
    "sources.events.text_rows=4",
    f"train.overrides={json.dumps({**SMALL, 'run': {**SMALL['run'], 'max_steps': 3}})}",
    "generate.max_seconds=0.2",
    "generate.max_new_tokens=4",
    "report.samples=2",
]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _statuses(out: str) -> dict[str, str]:
    """The summary's stage table: stage -> status."""
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    return {row[0]: " ".join(row[1:3]) if row[1] == "not" or row[1] == "would" else row[1]
            for row in rows}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run") / "demo-run"


def test_demo_until_blend_then_the_rest(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [str(DEMO), "--out", str(demo), "--quiet", *_sets(*FAST)]
    code, out, err = _cli([*base, "--until", "blend"], capsys)
    assert code == 0, err
    assert _statuses(out) == {"build": "ran", "tokenize": "ran", "synth": "ran", "blend": "ran",
                              "train": "not reached", "generate": "not reached",
                              "report": "not reached", "publish": "not reached"}
    assert "[run 4/8] blend" in err and "[run 5/8]" not in err  # a progress line per stage
    assert not (demo / "train").exists() and (demo / "blend.yaml").is_file()
    code, out, err = _cli(base, capsys)
    assert code == 0, err
    assert _statuses(out) == {"build": "skipped", "tokenize": "skipped", "synth": "skipped",
                              "blend": "skipped", "train": "ran", "generate": "ran",
                              "report": "ran", "publish": "off"}
    # the summary says where the report and the WAV are, and they are there
    where = dict(line.split(":", 1) for line in out.splitlines() if line[:1].isalpha()
                 and ":" in line and not line.startswith("run folder"))
    report, wav = Path(where["report"].strip()), Path(where["generated WAV"].strip())
    assert report == (demo / "report.html").resolve() and wav.is_file()
    audio, rate = sf.read(wav)
    assert rate == 24000 and 0 < len(audio) <= 0.2 * 24000 + 320
    answer = json.loads((demo / "outputs" / "answer.json").read_text())
    assert answer["question"].startswith("Which sound comes") and answer["expected"] in EVENTS
    assert isinstance(answer["answer"], str) and "asked:" in out
    # multiple choice: the answer is an offered option, and every held-out question is scored
    assert answer["answer"] in answer["options"] == options_of(answer["question"])
    assert answer["right"] == (answer["answer"] == answer["expected"])
    held = answer["heldout"]
    assert held["questions"] == 9 == len(held["examples"])  # 9 classes, one held-out clip each
    assert all(e["chosen"] in options_of(e["question"]) for e in held["examples"])
    assert held["right"] == sum(e["chosen"] == e["expected"] for e in held["examples"])
    assert held["chance"] == pytest.approx(1 / 3)  # 3 events: 3 options
    assert f"held-out:      accuracy {held['accuracy']:.2f} ({held['right']}/9)" in out
    page = report.read_text()
    for section in ("corpus-funnel", "corpus-listen", "train-blend", "train-loss",
                    "train-align-loss", "train-sft-blend", "train-dpo-preference"):
        assert f'<section id="{section}">' in page
    evaluation = json.loads((demo / "train" / "eval.json").read_text())
    assert set(evaluation["tasks"]) == {"generation", "understanding"}  # the held-out corpus
    assert "validation (last)" in page and (demo / "train" / "blend.yaml").is_file()
    # UALM's recipe: align -> pretrain -> sft -> dpo, each from the one before
    chain = [demo / f for f in ("train-align", "train", "train-sft", "train-dpo")]
    metas = [torch.load(f / "checkpoints" / "last.ckpt", map_location="cpu",
                        weights_only=False)["ualm"] for f in chain]
    assert [m["stage"] for m in metas] == ["align", "pretrain", "sft", "dpo"]
    assert [m["init"] for m in metas] == [None] + [str(f / "checkpoints" / "last.ckpt")
                                                   for f in chain[:-1]]
    assert evaluation["stage"] == "dpo" and evaluation["checkpoint"] == str(
        chain[-1] / "checkpoints" / "last.ckpt")
    history = json.loads((chain[-1] / "dpo_heldout.json").read_text())
    assert history[0]["pairs"] > 0 and "dpo: held-out pairs' implicit-reward accuracy" in err


def test_a_rerun_skips_everything_and_from_redoes_the_rest(
        demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [str(DEMO), "--out", str(demo), "--quiet", *_sets(*FAST)]
    report = demo / "report.html"
    before = report.stat().st_mtime_ns
    checkpoint = (demo / "train" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    code, out, err = _cli(base, capsys)
    assert code == 0, err
    assert set(_statuses(out).values()) == {"skipped", "off"}
    assert report.stat().st_mtime_ns == before
    code, out, _ = _cli([*base, "--from", "generate"], capsys)
    statuses = _statuses(out)
    assert code == 0 and statuses["train"] == "skipped"
    assert statuses["generate"] == statuses["report"] == "ran"
    assert report.stat().st_mtime_ns != before
    assert (demo / "train" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == checkpoint
    # a changed training setting redoes train and what follows it, and nothing before
    code, out, err = _cli([*base, *_sets("train.overrides.run.max_steps=2")], capsys)
    statuses = _statuses(out)
    assert code == 0, err
    assert [statuses[s] for s in ("build", "tokenize", "blend")] == ["skipped"] * 3
    assert [statuses[s] for s in ("train", "generate", "report")] == ["ran"] * 3
    assert json.loads((demo / "_run" / "train.json").read_text())["summary"]["steps"] == 2
    assert "starting" in err  # the old run folder was not resumed with other settings
    # a lost output makes its stage incomplete again
    (demo / "outputs" / "generated.wav").unlink()
    code, out, _ = _cli([*base, *_sets("train.overrides.run.max_steps=2"), "--until",
                         "generate"], capsys)
    assert _statuses(out)["generate"] == "ran" and _statuses(out)["train"] == "skipped"


def test_changed_sources_refuse_the_old_corpus(demo: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli([str(DEMO), "--out", str(demo), "--quiet", *_sets(*FAST),
                         *_sets("sources.events.seconds=1.1"), "--until", "build"], capsys)
    assert code == 2
    assert "sources or build settings changed" in err and "fix: delete" in err


def _fake_publish(corpus: Path, to: str, **options: object) -> None:
    """Stands in for ualm.publish's entry point: copies the corpus, records the options."""
    shutil.copytree(corpus, Path(to), dirs_exist_ok=True)
    (Path(to) / "options.json").write_text(json.dumps(options))


def _failing_publish(corpus: Path, to: str, **options: object) -> None:
    raise UalmError("the hub is down", fix="retry later")


def test_optional_stages_publish_through_their_entry_point(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    to = tmp_path / "published"
    sets = _sets(*FAST, "train.overrides.run.max_steps=2", "publish.enabled=true",
                 f"publish.to={to}", f"publish.entry={__name__}:_fake_publish",
                 "publish.options={private: true}")
    code, out, err = _cli([str(DEMO), "--out", str(demo), "--quiet", *sets], capsys)
    assert code == 0, err
    assert _statuses(out)["publish"] == "ran"
    assert (to / "corpus.json").read_bytes() == (demo / "corpus" / "corpus.json").read_bytes()
    assert json.loads((to / "options.json").read_text()) == {"private": True}
    # a stage that fails half-way is not complete afterwards, even when it was before
    failing = [*sets, *_sets(f"publish.entry={__name__}:_failing_publish")]
    code, _, err = _cli([str(DEMO), "--out", str(demo), "--quiet", *failing,
                         "--from", "publish"], capsys)
    assert code == 2 and "the hub is down" in err
    assert not (demo / "_run" / "publish.json").exists()
    code, out, _ = _cli([str(DEMO), "--out", str(demo), "--quiet", *sets], capsys)
    assert code == 0 and _statuses(out)["publish"] == "ran"
    # an entry point that is not installed: said so, and nothing else changes
    missing = _sets("publish.entry=ualm.publish_elsewhere:publish")
    code, out, err = _cli([str(DEMO), "--out", str(demo), "--quiet", *sets, *missing], capsys)
    assert code == 0 and "publish   off: not available" in err, err
    assert set(_statuses(out).values()) == {"skipped", "off"}


@pytest.mark.parametrize(("args", "message"), [
    (["--until", "deploy"], "unknown stage 'deploy' for --until"),
    (["--until", "tokenize", "--from", "train"], "--until tokenize comes before --from train"),
    (["--set", "engine.nmae=local"], "demo.yaml): engine.nmae"),
    (["--set", "traning.config=tiny"], "unknown run config section(s) ("),
    (["--set", "build.config.tokenize.codec=random"], "codec settings live in the top-level"),
    (["--set", "build.config.shards.max_samples=0"], "shards: max_samples must be >= 1"),
    (["--set", "engine.name=spark"], "engine.name must be local, dask or beam"),
    (["--set", "engine"], "bad override"),
    (["--set", "sources={inputs: []}"], "sources: no inputs and no event world"),
    (["--set", "train.stages=[align, rlhf]"], "train.stages: unknown stage 'rlhf'"),
    (["--set", "train.stages=[pretrain, sft, pretrain]"], "names a stage twice"),
    (["--set", "train.stages=[{name: sft, confg: tiny-sft}]"], "knows only name, config"),
    (["--set", "train.stages=[]"], "train.stages is empty"),
])
def test_bad_configs_fail_with_a_fix(args: list[str], message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli([str(DEMO), "--out", str(tmp_path / "r"), *args], capsys)
    assert code == 2 and message in err and "fix:" in err, err
    assert not (tmp_path / "r" / "_run").exists()


def test_from_needs_the_earlier_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli([str(DEMO), "--out", str(tmp_path / "r"), "--from", "train"], capsys)
    assert code == 2 and "the earlier stage build is not complete" in err


@pytest.mark.parametrize("name", ["demo", "sound-captions", "speech", "cluster"])
def test_example_configs_load_and_plan(name: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from ualm.run.model import train_config

    config = PipelineConfig.load(EXAMPLES / f"{name}.yaml", [f"run.out={tmp_path / 'r'}"])
    assert train_config(config).model.codebooks is None  # the corpus decides when it trains
    result = run_pipeline(config, dry_run=True)
    statuses = {o.stage: o.status for o in result.outcomes}
    assert [statuses[s] for s in ("build", "tokenize", "blend", "train", "report")] == [
        "would run"] * 5
    assert statuses["synth"] in ("off", "would run") and not (tmp_path / "r").exists()
    if name == "cluster":
        assert config.engine.scheduler and train_config(config).run.precision == "bf16-mixed"
        # the Beam variant the file describes in its comments loads too
        beam = PipelineConfig.from_dict(apply_override(apply_override(
            yaml.safe_load((EXAMPLES / "cluster.yaml").read_text()), "engine.name=beam"),
            "engine.options=[--runner=FlinkRunner, --flink_master=host:8081]"))
        assert beam.engine.options[1] == "--flink_master=host:8081"


@pytest.mark.parametrize("name", ["sound-captions", "speech"])
def test_recipe_examples_build_real_inputs(name: str, tmp_path: Path,
                                           world: SyntheticWorld) -> None:
    """Their build stage on the synthetic world (the model paths swapped for none): the recipe's
    filters run and every input is accounted for."""
    overrides = [f"run.out={tmp_path / 'r'}", "engine.name=local",
                 f"sources.inputs=[{world.manifest}]", "sources.heldout=[]",
                 f"sources.allow_roots=[{world.root}]",
                 "build.config.clap.model=null", "build.config.whisper.model=null"]
    config = PipelineConfig.load(EXAMPLES / f"{name}.yaml", overrides)
    result = run_pipeline(config, until="build", progress=False)
    summary = json.loads((result.output("build", "corpus") / "corpus.json").read_text())
    counts = summary["counts"]
    assert counts["inputs"] == counts["kept"] + counts["rejected"] + counts["duplicates"] > 0
    if name == "speech":  # synthetic tones are no speech: the VAD recipe rejects them
        assert any(r.startswith("vad/") for r in summary["reasons"])


def test_override_values_are_yaml() -> None:
    data = apply_override({}, "generate.caption=a dog: barking")
    assert data == {"generate": {"caption": "a dog: barking"}}
    with pytest.raises(UalmError, match="bad override"):
        apply_override({}, "a..b=1")


def test_a_run_without_a_codec_says_how_to_add_one(tmp_path: Path) -> None:
    """No implicit random codec in `ualm run` either: the tokenize stage stops with the fix."""
    import io

    from ualm.run.data import _tokenize
    from ualm.run.registry import Context

    config = PipelineConfig.load(DEMO, [f"run.out={tmp_path / 'r'}", "tokenize.codec=null"])
    with pytest.raises(UalmError, match=r"tokenize\.codec is not set") as raised:
        _tokenize(Context(config, tmp_path / "r", "hash", {}, None, io.StringIO(), False))
    assert "random:encodec only for tests and demos" in str(raised.value)

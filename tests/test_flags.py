"""The CLI's one config scheme (ualm.flags): flags come from the config dataclasses, a flag wins
over the YAML file, bad keys and values give one line naming the key (and the file), and the old
spellings of flags still read as the new ones. Nothing here runs a pipeline: it parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ualm.cli import main, parse_build, parse_tokenize
from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.pipelines.build import resolved_for
from ualm.run.cli import parse_run
from ualm.synth.cli import parse_synth
from ualm.train.blend_cli import _compute_parser, _fit_parser, parse_options
from ualm.train.train_cli import parse_generate, parse_train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BUILD = ["--input", "in.jsonl", "--out", "out"]


def _yaml(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_flag_from_a_dataclass_field_sets_that_field() -> None:
    _, config = parse_build([*BUILD, "--segment.seconds", "5", "--crawl.robots", "false",
                             "--filters.enabled", "[dc_offset]"])
    assert config.segment.seconds == 5.0 and config.crawl.robots is False
    assert config.filters.enabled == ("dc_offset",)
    _, train = parse_train(["c", "--config", "tiny", "--optim.lr", "0.01",
                            "--run.devices", "2", "--optim.betas", "[0.8, 0.9]"])
    assert train.optim.lr == 0.01 and train.run.devices == 2 and train.optim.betas == (0.8, 0.9)
    _, synth = parse_synth(["c", "--teacher", "openai:m", "--pair_margin", "0.2"])
    assert synth.teacher == "openai:m" and synth.pair_margin == 0.2
    _, gen = parse_generate(["a cat", "--checkpoint", "x", "--corpus", "c", "-o", "w.wav",
                             "--guidance", "2", "--max_frames", "30"])
    assert gen.guidance == 2.0 and gen.max_frames == 30


def test_flags_are_documented_by_the_field_docstrings(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "--tokenize.codec" in out and "EncodecModel" in out  # TokenizeConfig.codec's docstring
    assert "--crawl.max_redirects" in out and "Redirects followed per URL" in out


def test_the_default_config_keeps_its_hash() -> None:
    """As a build resolves it for up to 1,024 inputs (the auto unit size is 16, the size
    that was the default), so corpora built before resume."""
    _, config = parse_build(BUILD)
    assert config == BuildConfig() and config.work.unit_size is None

    assert resolved_for(config, 1024).hash() == "aa9dfb8d9538aba8"
    _, config = parse_build([*BUILD, "--tokenize.codec", "x.th"])  # the codec is not hashed
    assert resolved_for(config, 1024).hash() == "aa9dfb8d9538aba8"


def test_a_flag_wins_over_the_yaml_file_and_the_preset(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "audio:\n  sample_rate: 16000\nsegment:\n  seconds: 4\n"
                           "tokenize:\n  codec: a.th\n")
    _, config = parse_build([*BUILD, "--audio.sample_rate", "22050", "--config", str(path)])
    assert config.audio.sample_rate == 22050  # the flag, though written before --config
    assert config.segment.seconds == 4.0 and config.tokenize.codec == "a.th"  # the file
    assert config == BuildConfig.from_dict({"audio": {"sample_rate": 22050},
                                            "segment": {"seconds": 4},
                                            "tokenize": {"codec": "a.th"}})
    _, preset = parse_build([*BUILD, "--preset", "speech", "--segment.mode", "fixed"])
    assert preset.segment.mode == "fixed" and preset.vad.enabled  # the rest is the preset's
    train_yaml = _yaml(tmp_path, "extends: tiny\noptim:\n  lr: 0.002\nrun:\n  max_steps: 7\n",
                       "t.yaml")
    _, train = parse_train(["c", "--config", str(train_yaml), "--run.max_steps", "9"])
    assert train.optim.lr == 0.002 and train.run.max_steps == 9
    synth_yaml = _yaml(tmp_path, "teacher: local:/m\nconcurrency: 3\n", "s.yaml")
    _, synth = parse_synth(["c", "--config", str(synth_yaml), "--concurrency", "5"])
    assert synth.teacher == "local:/m" and synth.concurrency == 5
    _, run = parse_run([str(EXAMPLES / "demo.yaml"), "--set", "engine.name=dask",
                        "--engine.name", "local", "--train.overrides",
                        "{run: {max_steps: 2}}"])
    assert run.engine.name == "local" and run.train.overrides["run"]["max_steps"] == 2


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_an_unknown_key_names_the_key_and_the_file(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    build_yaml = _yaml(tmp_path, "audio:\n  sample_rat: 16000\n")
    err = _error(["build", *BUILD, "--config", str(build_yaml)], capsys)
    assert "audio.sample_rat" in err and str(build_yaml) in err
    train_yaml = _yaml(tmp_path, "extends: tiny\noptim:\n  lrr: 1\n", "t.yaml")
    err = _error(["train", "c", "--config", str(train_yaml)], capsys)
    assert "optim.lrr" in err and str(train_yaml) in err
    synth_yaml = _yaml(tmp_path, "teachr: rule\n", "s.yaml")
    err = _error(["synth", "c", "--config", str(synth_yaml)], capsys)
    assert "teachr" in err and str(synth_yaml) in err
    err = _error(["build", *BUILD, "--audio.sample_rat", "16000"], capsys)
    assert "unrecognized arguments: --audio.sample_rat" in err
    assert "did you mean --audio.sample_rate?" in err


def test_a_wrong_type_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_yaml = _yaml(tmp_path, "audio:\n  sample_rate: fast\n")
    err = _error(["build", *BUILD, "--config", str(build_yaml)], capsys)
    assert "audio.sample_rate must be an integer" in err and str(build_yaml) in err
    err = _error(["build", *BUILD, "--audio.sample_rate", "fast"], capsys)
    assert "--audio.sample_rate" in err and "fast" in err
    err = _error(["train", "c", "--config", "tiny", "--optim.lr", "high"], capsys)
    assert "--optim.lr" in err
    err = _error(["synth", "c", "--concurrency", "many"], capsys)
    assert "--concurrency" in err


def test_old_build_and_tokenize_spellings_still_read() -> None:
    _, old = parse_build([*BUILD, "--codec", "a.th", "--bandwidth", "3", "--batch-size", "4",
                          "--device", "cpu", "--cache", "/c", "--no-tokenize",
                          "--allow-private-network"])
    _, new = parse_build([*BUILD, "--tokenize.codec", "a.th", "--tokenize.bandwidth", "3",
                          "--tokenize.batch_size", "4", "--tokenize.device", "cpu",
                          "--tokenize.cache_dir", "/c", "--tokenize.enabled", "false",
                          "--crawl.allow_private_network", "true"])
    assert old == new and old.tokenize.bandwidth == 3.0 and not old.tokenize.enabled
    _, tok = parse_tokenize(["corpus", "--codec", "b.th", "--batch-size", "2", "--cache", "/c",
                             "--seed", "3"])
    assert (tok.codec, tok.batch_size, tok.cache_dir, tok.seed) == ("b.th", 2, "/c", 3)
    args, _ = parse_build([*BUILD, "--engine", "local", "--workers", "2", "--scheduler",
                           "tcp://h:8786", "--runner", "DirectRunner"])
    new_args, _ = parse_build([*BUILD, "--engine.name", "local", "--engine.workers", "2",
                               "--engine.scheduler", "tcp://h:8786", "--engine.runner",
                               "DirectRunner"])
    assert args.engine == new_args.engine and args.engine.workers == 2
    with pytest.raises(UalmError, match=r"engine\.name must be local, dask or beam"):
        parse_build([*BUILD, "--engine", "spark"])
    with pytest.raises(UalmError, match="--no-tokenize takes no value"):
        parse_build([*BUILD, "--no-tokenize=1"])


def test_pipeline_options_pass_to_beam_only() -> None:
    args, _ = parse_build([*BUILD, "--engine", "beam", "--flink_master=h:8081", "--project",
                           "P", "--save_main_session", "--runner", "FlinkRunner"])
    assert args.engine.name == "beam" and args.engine.runner == "FlinkRunner"
    assert args.engine.options == ("--flink_master=h:8081", "--project", "P",
                                   "--save_main_session")
    with pytest.raises(UalmError, match=r"did you mean --tokenize\.codec"):
        parse_build([*BUILD, "--engine", "beam", "--tokenize.codc", "x"])  # ours, misspelt
    with pytest.raises(UalmError, match="unrecognized arguments: --flink_master=h:8081"):
        parse_build([*BUILD, "--engine", "local", "--flink_master=h:8081"])


def test_old_train_and_generate_spellings_still_read() -> None:
    args, old = parse_train(["c", "--config", "tiny", "--max-steps", "5", "--val-every", "2",
                             "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu",
                             "--stage", "sft", "--quiet"])
    assert (old.run.max_steps, old.run.val_every, old.run.devices, old.run.strategy,
            old.run.accelerator, old.stage.name) == (5, 2, 2, "ddp", "cpu", "sft")
    assert old.run.progress_bar is False and args.corpora == ["c"]
    args, gen = parse_generate(["a cat", "--checkpoint", "x", "--corpus", "c", "-o", "w.wav",
                             "--top-k", "5", "--max-seconds", "2"])
    assert gen.top_k == 5 and args.seconds_bound == 2.0  # frames: at the corpus's rate


def test_old_synth_spellings_still_read() -> None:
    _, old = parse_synth(["c", "--kinds", "dialogue,pairs", "--max-retries", "1", "--cache",
                          "/c", "--api-key-env", "KEY", "--clap-model", "/m"])
    assert old.kinds == ("dialogue", "pairs") and old.max_retries == 1
    assert (old.cache_dir, old.api_key_env, old.clap_model) == ("/c", "KEY", "/m")
    _, new = parse_synth(["c", "--kinds", "[dialogue, pairs]"])
    assert new.kinds == ("dialogue", "pairs")


def test_old_blend_spellings_still_read() -> None:
    from ualm.train.blend.fit import FitOptions
    from ualm.train.blend.weights import BlendOptions

    common = ["c1", "c2", "--out", "b.yaml"]
    _, old = parse_options(_compute_parser("ualm blend"), BlendOptions, [
        *common, "--targets", "understanding=0.5,generation=0.25,text=0.25", "--max-epochs",
        "none", "--budget", "500M", "--min-share", "0.1", "--allow-infeasible"])
    _, new = parse_options(_compute_parser("ualm blend"), BlendOptions, [
        *common, "--targets", "{understanding: 0.5, generation: 0.25, text: 0.25}",
        "--max_epochs", "null", "--budget", "500000000", "--min_share", "0.1",
        "--allow_infeasible", "true"])
    assert old == new and old.budget == 500_000_000 and old.max_epochs is None
    _, fit = parse_options(_fit_parser("ualm blend fit"), FitOptions, [
        *common, "--heldout", "h", "--task-weights", "text=2,generation=1", "--budget", "2B",
        "--proxies", "3", "--config", "tiny"])
    assert fit.task_weights == {"text": 2.0, "generation": 1.0} and fit.budget == 2 * 10**9
    assert fit.proxies == 3
    with pytest.raises(UalmError, match="not a positive whole number of tokens"):
        parse_options(_compute_parser("ualm blend"), BlendOptions, [*common, "--budget", "-1"])


def test_old_run_spelling_still_reads(tmp_path: Path) -> None:
    _, config = parse_run([str(EXAMPLES / "demo.yaml"), "--out", str(tmp_path / "r")])
    assert config.run.out == str(tmp_path / "r")


def test_run_embeds_the_real_blend_synth_and_train_configs(
        capsys: pytest.CaptureFixture[str]) -> None:
    from ualm.train.blend.weights import BlendOptions

    demo = str(EXAMPLES / "demo.yaml")
    _, config = parse_run([demo, "--blend.temperature", "2"])
    assert isinstance(config.blend, BlendOptions) and config.blend.temperature == 2.0
    assert config.blend.settings()["targets"] == {"understanding": 0.4, "generation": 0.45,
                                                  "text": 0.05, "reasoning": 0.1}  # as written
    err = _error(["run", demo, "--set", "blend.targets={music: 1.0}"], capsys)
    assert "unknown task 'music'" in err  # BlendOptions' own check, before any stage runs
    err = _error(["run", demo, "--set", "synth.options.teachr=rule"], capsys)
    assert "synth.options.teachr" in err and "demo.yaml" in err
    err = _error(["run", demo, "--set", "train.overrides.optim.lrr=1"], capsys)
    assert "optim.lrr" in err and "demo.yaml train.overrides" in err


def test_the_command_table_and_its_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2 and "commands:" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in ("build", "train", "synth", "blend", "run"))
    err = _error(["bild"], capsys)
    assert "unknown command 'bild'" in err and "build" in err
    err = _error(["build", *BUILD, "--loudness.normalize_lufs", "loud"], capsys)
    assert "flag --loudness.normalize_lufs: expected float or null. Got value: loud" in err

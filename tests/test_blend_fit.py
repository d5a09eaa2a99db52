"""`ualm blend fit`: proxies trained on Dirichlet mixtures, scored on held-out corpora, a ridge fit
per task, and the mixture with the lowest predicted loss written as a valid blend spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ualm.audio.events import make_event_world
from ualm.cli import main
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus
from ualm.train.blend.spec import load_blend

from .test_train_fit import EVENTS, SMALL


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("blendfit")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=1, seconds=1.0,
                             events=EVENTS, text_rows=4, seed=3)
    config = BuildConfig.from_dict({"shards": {"max_samples": 8}, "tokenize": {"codec": "random"}})
    train = build_corpus([world.manifests["train"]], root / "train", config, engine="local",
                         progress=False).corpus
    heldout = build_corpus([world.manifests["heldout"]], root / "heldout", config,
                           engine="local", progress=False).corpus
    proxy = root / "proxy.yaml"
    proxy.write_text(yaml.safe_dump(SMALL))
    return train, heldout, proxy


def test_fit_writes_a_spec_from_proxy_runs_and_reuses_them(corpora: tuple[Path, Path, Path],
                                                           tmp_path: Path) -> None:
    train, heldout, proxy = corpora
    out, workdir = tmp_path / "blend.yaml", tmp_path / "fit"
    argv = ["blend", "fit", str(train), "--heldout", str(heldout), "--out", str(out),
            "--proxies", "3", "--steps", "2", "--config", str(proxy), "--workdir", str(workdir)]
    assert main(argv) == 0
    spec = load_blend(out)
    assert abs(sum(s.weight for s in spec.sources) - 1.0) < 1e-9
    assert {s.task for s in spec.sources} == {"generation", "understanding", "text"}
    report = json.loads((workdir / "fit.json").read_text())
    assert len(report["proxies"]) == 3
    for run in report["proxies"]:
        assert set(run["heldout_loss"]) == {"generation", "understanding"}  # held-out tasks
        assert all(v > 0 for v in run["heldout_loss"].values())
        assert abs(sum(run["mixture"].values()) - 1.0) < 1e-5
    assert (workdir / "fit.png").read_bytes()[:4] == b"\x89PNG"
    assert "predicted held-out loss" in spec.notes[0]
    checkpoints = sorted(workdir.glob("proxy-*/checkpoints/last.ckpt"))
    stamps = [c.stat().st_mtime_ns for c in checkpoints]
    assert main(argv) == 0  # a rerun scores the finished proxies again without training them
    assert [c.stat().st_mtime_ns for c in checkpoints] == stamps
    assert load_blend(out) == spec

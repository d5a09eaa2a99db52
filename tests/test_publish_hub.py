"""Publishing to a Hub on 127.0.0.1 (tests/hub_server.py): interrupted and resumed with nothing
sent twice, byte-for-byte arrival, the final commit as the completion mark, branches and private
repos, the token never shown, and the trainer and `ualm inspect` reading the published copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.hub_server import HubServer
from tests.publish_corpus import check_arrived, sha256
from ualm.errors import UalmError
from ualm.publish import publish

TOKEN = "hf_test_Secret_0123456789"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """A fresh Hub, with huggingface_hub pointed at it for this test only (conftest sets
    HF_HUB_OFFLINE for the session; huggingface_hub reads its constants at import)."""
    import huggingface_hub.constants as constants

    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        # hf_xet would upload through a Xet CAS service, which this server does not speak;
        # the LFS protocol is the one under test
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield server


def test_interrupted_publish_resumes_without_sending_anything_twice(
        hub: HubServer, publish_corpus: Path) -> None:
    hub.state.fail_after = 5  # the server dies in the second batch
    with pytest.raises(UalmError, match="rerun the same command"):
        publish(publish_corpus, "hf://datasets/org/sounds", batch_files=4)
    partial = hub.files("org/sounds")
    assert "corpus.json" not in partial and "publish.json" not in partial  # not complete yet
    assert len(partial) > 1  # the first batch was committed
    assert sum(hub.state.lfs_uploads.values()) == 5
    commits_before = len(hub.state.repos["org/sounds"].messages)

    hub.state.fail_after = None
    result = publish(publish_corpus, "hf://datasets/org/sounds", batch_files=4)
    assert result.skipped == len(partial) - 1  # all but .gitattributes were there
    arrived = check_arrived(hub, "org/sounds", publish_corpus)
    assert "traces/traces-000000.tar" in arrived and "manifests/traces/part-000000.parquet" in arrived

    # Each LFS object was sent once, however many paths hold it; regular files once each.
    lfs_files = {sha256(d) for p, d in arrived.items() if p.endswith((".tar", ".parquet", ".png"))}
    assert set(hub.state.lfs_uploads) == lfs_files
    assert max(hub.state.lfs_uploads.values()) == 1
    assert max(hub.state.regular_sent.values()) == 1
    # The completion commit comes last and holds corpus.json with the card and the record.
    messages = hub.state.repos["org/sounds"].messages
    assert "corpus complete" in messages[-1]
    assert len(messages) == commits_before + result.batches

    again = publish(publish_corpus, "hf://datasets/org/sounds", batch_files=4)
    assert (again.sent, again.batches) == (0, 0)
    assert hub.state.repos["org/sounds"].messages == messages  # no new commit
    assert TOKEN in hub.state.tokens_seen


def test_a_lost_commit_is_redone_without_uploading_its_objects_again(
        hub: HubServer, publish_corpus: Path) -> None:
    hub.state.fail_commits = 1  # the objects arrive, then the commit is refused
    hub.state.page_size = 4  # tree listings take several pages
    with pytest.raises(UalmError, match="commit"):
        publish(publish_corpus, "hf://datasets/org/lost", batch_files=1000)
    assert set(hub.files("org/lost")) == {".gitattributes"}
    sent_before = dict(hub.state.lfs_uploads)
    assert sent_before

    result = publish(publish_corpus, "hf://datasets/org/lost", batch_files=1000)
    assert result.skipped == 0 and result.batches == 2
    assert dict(hub.state.lfs_uploads) == sent_before  # the LFS batch said "already there"
    check_arrived(hub, "org/lost", publish_corpus)
    pages = [p for m, p in hub.state.requests if "/tree/" in p]
    assert len(pages) > 3


def test_card_blend_and_trainer_read_the_published_corpus(
        hub: HubServer, publish_corpus: Path, tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard

    from ualm.manifests.inspect import summarize
    from ualm.train.blend.spec import load_blend
    from ualm.train.blend.stats import corpus_stats
    from ualm.train.blend.weights import BlendOptions, compute_blend
    from ualm.train.data.sources import discover, probabilities
    from ualm.train.data.stream import PackedStream, StreamConfig
    from ualm.train.sequence.text_tokenizer import ByteTokenizer

    targets = {"understanding": 0.3, "generation": 0.3, "text": 0.3, "reasoning": 0.1}
    compute_blend(corpus_stats([publish_corpus]), BlendOptions(targets=targets)).dump(
        tmp_path / "blend.yaml")
    url = "hf://datasets/org/card"
    publish(publish_corpus, url, blend=tmp_path / "blend.yaml")
    arrived = hub.files("org/card")

    card = DatasetCard(arrived["README.md"].decode())
    names = [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert names[:2] == ["audio", "text"] and names[-2:] == ["traces", "pairs"]
    assert any(n.startswith("tokens-") for n in names)
    text = card.text
    assert "RANDOM CODEC — NOT FOR TRAINING" in text.split("# UALM corpus")[0]  # on top
    for heading in ("## Sources", "## Funnel", "## Filters and thresholds", "## Codec tokens",
                    "## Blend spec", "## Loading"):
        assert heading in text, heading
    assert f"ualm train {url}" in text and 'load_dataset("org/card"' in text

    # The published blend names the published copy, and its corpus hash checks out there.
    blend = load_blend(f"{url}/blend.yaml")
    assert {s.corpus for s in blend.sources} == {c.path for c in blend.corpora} == {url}

    local = summarize(publish_corpus)
    remote = summarize(url)
    assert {**remote, "corpus": None} == {**local, "corpus": None}

    sources = discover([url])
    assert [(s.label, s.samples) for s in sources] == \
        [(s.label, s.samples) for s in discover([publish_corpus])]
    assert all(s.startswith((url + "/tokens/", url + "/text/", url + "/traces/"))
               for src in sources for s in src.shards)
    assert any(src.task == "reasoning" for src in sources)  # the traces stream from the Hub too
    config = StreamConfig(256, 2, 4, 0, 8, 0.05)
    batch_url = PackedStream(sources, probabilities(sources, blend), config, ByteTokenizer())
    local_sources = discover([publish_corpus])
    local_blend = load_blend(tmp_path / "blend.yaml")
    assert probabilities(sources, blend) == probabilities(local_sources, local_blend)
    batch_local = PackedStream(local_sources, probabilities(local_sources, local_blend), config,
                               ByteTokenizer())
    a, b = batch_url.next_batch(), batch_local.next_batch()
    assert (a["task_ids"] >= 0).any()
    for key in a:  # the published corpus streams exactly the same batch
        np.testing.assert_array_equal(a[key], b[key])


def test_branch_private_and_a_model_url_refused(hub: HubServer, publish_corpus: Path) -> None:
    result = publish(publish_corpus, "hf://datasets/org/branchy", revision="v1", private=True,
                     batch_files=1000)
    assert result.url == "hf://datasets/org/branchy@v1" and result.batches == 2
    assert hub.state.repos["org/branchy"].private
    check_arrived(hub, "org/branchy", publish_corpus, rev="v1")
    assert "corpus.json" not in hub.files("org/branchy", "main")
    with pytest.raises(UalmError, match="dataset repo"):
        publish(publish_corpus, "hf://models/org/branchy")


def test_offline_mode_is_named_with_its_fix(hub: HubServer, publish_corpus: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    from ualm.manifests.inspect import summarize

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UalmError, match="unset HF_HUB_OFFLINE"):
        publish(publish_corpus, "hf://datasets/org/offline")
    with pytest.raises(UalmError, match="unset HF_HUB_OFFLINE"):
        summarize("hf://datasets/org/offline")
    assert not hub.state.requests


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return subprocess.run([sys.executable, "-m", "ualm.cli", *args], capture_output=True,
                          text=True, timeout=120,
                          env={**env, "PYTHONPATH": src + os.pathsep + env.get("PYTHONPATH", "")})


def test_cli_publishes_with_the_token_from_the_environment_and_never_shows_it(
        hub: HubServer, publish_corpus: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home")}  # no saved login to fall back on
    run = _cli(["publish", str(publish_corpus), "--to", "hf://datasets/org/cli", "--branch",
                "data"], env)
    assert run.returncode == 0, run.stderr
    assert "published hf://datasets/org/cli@data" in run.stdout
    assert TOKEN not in run.stdout + run.stderr
    assert not (tmp_path / "hf-home").exists()  # the token was not stored anywhere
    check_arrived(hub, "org/cli", publish_corpus, rev="data")

    inspect = _cli(["inspect", "hf://datasets/org/cli@data", "--json"], env)
    assert json.loads(inspect.stdout)["samples"] > 0, inspect.stderr

    no_token = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    refused = _cli(["publish", str(publish_corpus), "--to", "hf://datasets/org/other"], no_token)
    assert refused.returncode == 2
    assert "no Hugging Face token" in refused.stderr and "HF_TOKEN" in refused.stderr
    wrong = _cli(["publish", str(publish_corpus), "--to", "hf://datasets/org"], env)
    assert wrong.returncode == 2 and "hf://datasets/ORG/NAME" in wrong.stderr


def test_ualm_train_streams_a_published_corpus(hub: HubServer, publish_corpus: Path,
                                               tmp_path: Path) -> None:
    from ualm.train.config import TrainConfig
    from ualm.train.trainer import train

    publish(publish_corpus, "hf://datasets/org/train")
    config = TrainConfig.from_dict({
        "model": {"hidden_size": 32, "layers": 1, "heads": 2, "kv_heads": 1,
                  "intermediate_size": 64, "max_positions": 512},
        "data": {"seq_len": 256, "batch_size": 2, "shuffle_buffer": 4},
        "run": {"max_steps": 2, "checkpoint_every": 2, "log_every": 1, "accelerator": "cpu",
                "devices": 1, "progress_bar": False, "threads": 1}})
    remote = train(["hf://datasets/org/train"], config, tmp_path / "remote")
    local = train([publish_corpus], config, tmp_path / "local")
    assert remote.steps == 2 and remote.final_loss is not None
    assert remote.final_loss == local.final_loss  # the same samples, in the same order
    assert remote.realised["sources"] == local.realised["sources"]


def test_datasets_loads_the_published_repo_through_its_card_configs(
        hub: HubServer, publish_corpus: Path, tmp_path: Path) -> None:
    publish(publish_corpus, "hf://datasets/org/loadable")
    codec = next(p.name for p in (publish_corpus / "tokens").iterdir())
    code = f"""
from datasets import load_dataset
audio = next(iter(load_dataset("org/loadable", "audio", split="train", streaming=True)))
tokens = next(iter(load_dataset("org/loadable", "tokens-{codec}", split="train", streaming=True)))
text = load_dataset("org/loadable", "text", split="train")
print(sorted(audio), sorted(tokens), len(text))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    from ualm.manifests.shard_reader import iter_samples

    texts = sum(1 for shard in (publish_corpus / "text").glob("*.tar") for _ in iter_samples(shard))
    assert texts > 0
    assert run.stdout.split("\n")[0] == \
        f"['__key__', '__url__', 'flac', 'json'] ['__key__', '__url__', 'json', 'npy'] {texts}"

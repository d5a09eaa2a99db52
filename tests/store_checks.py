"""What the object-store build tests check on any store (S3, GCS): an object listing's digests
against a local-folder build's, and `ualm inspect` on the bucket against the folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import tree_bytes
from ualm.cli import main


def digests(url: str, work: bool = False) -> dict[str, str]:
    """sha256 of every object below a prefix (without `_work/` unless asked), by relative name,
    read through a fresh client of the URL's store."""
    import fsspec

    scheme, root = url.split("://", 1)
    fs = fsspec.filesystem(scheme, skip_instance_cache=True)
    return {key[len(root) + 1:]: hashlib.sha256(fs.cat_file(key)).hexdigest()
            for key in fs.find(root) if work or not key[len(root) + 1:].startswith("_work/")}


def local_digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in tree_bytes(root).items()}


def assert_inspect_matches(url: str, local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ualm inspect --json` says the same of the corpus in the bucket as of the folder."""
    assert main(["inspect", url, "--json"]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(local), "--json"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert remote.pop("corpus") == url and here.pop("corpus") == str(local)
    assert remote == here and remote["kept"] > 0


def assert_trains_from(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ualm train URL`, as the README shows it: a 1-layer model, 2 steps, the token shards
    streamed from the store; the realised blend drew samples."""
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({
        "model": {"hidden_size": 16, "layers": 1, "heads": 2, "kv_heads": 1,
                  "intermediate_size": 32, "max_positions": 2048},
        "data": {"seq_len": 2048, "batch_size": 2, "shuffle_buffer": 4},
        "run": {"max_steps": 2, "log_every": 1, "accelerator": "cpu", "devices": 1,
                "progress_bar": False, "threads": 1}}))
    capsys.readouterr()
    assert main(["train", url, "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    realised = json.loads((tmp_path / "run" / "realised_blend.json").read_text())
    assert sum(s["samples"] for s in realised["sources"].values()) > 0

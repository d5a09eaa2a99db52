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

"""What the object-store build tests check on any store (S3, GCS): an object listing's digests
against a local-folder build's, `ualm inspect` and `ualm train` on the bucket, create-only
completion records, a crashed build finished by a rerun, and one-line store errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import SMALL, tree_bytes
from ualm.audio.synthetic import SyntheticWorld, make_world
from ualm.cli import main
from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout, write_done
from ualm.pipelines.build import build_corpus


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


def assert_built_like_the_folder(url: str, local: Path) -> None:
    """A build into the store holds the folder build's bytes; each run logged as an object of
    its own (a store cannot append); the staged payloads dropped at the commit."""
    remote = digests(url)
    assert remote == local_digests(local)
    assert any(name.startswith("audio/") for name in remote) and "corpus.json" in remote
    work = digests(url, work=True)
    assert [n for n in work if n.startswith("_work/runs/")], "one object per run, no append"
    assert not [n for n in work if n.startswith("_work/units/")], "payloads dropped at commit"


def assert_a_racing_record_is_refused(url: str) -> CorpusLayout:
    """A second attempt's completion record does not replace the first one's (the store's
    create-only put). Returns the layout, whose record for ingest unit 0 vouches for
    `manifests/part.parquet`."""
    layout = CorpusLayout(url)
    output = layout.path("manifests/part.parquet")
    layout.write_bytes(output, b"deterministic bytes")
    write_done(layout, "ingest", 0, [output], {"attempt": "first"})
    record = layout.done_record("ingest", 0)
    first = layout.read_bytes(record)
    write_done(layout, "ingest", 0, [output], {"attempt": "racing second"})
    assert layout.read_bytes(record) == first, "the racing attempt did not overwrite it"
    return layout


def crash_part_way(url: str, world: SyntheticWorld, local: Path,
                   monkeypatch: pytest.MonkeyPatch) -> CorpusLayout:
    """A build whose shard unit 1 fails on every attempt, and the truncated tar a worker killed
    after its upload leaves under the final name (an object no record vouches for)."""
    monkeypatch.setenv("UALM_FAULTS", "shard:1=fail")
    with pytest.raises(UalmError, match="shard unit 1 failed"):
        build_corpus([world.manifest], url, SMALL, engine="local", progress=False)
    monkeypatch.delenv("UALM_FAULTS")
    layout = CorpusLayout(url)
    local_tar = local / layout.relative(layout.audio_shard(1))
    layout.write_bytes(layout.audio_shard(1), local_tar.read_bytes()[:1000])
    return layout


def assert_a_rerun_finishes_it(url: str, world: SyntheticWorld, local: Path) -> None:
    """Readers refuse the half-built corpus; a rerun keeps the finished units and ends with the
    folder build's bytes."""
    assert main(["inspect", url]) == 2, "no corpus.json: readers refuse the half-built corpus"
    result = build_corpus([world.manifest], url, SMALL, engine="local", progress=False)
    assert result.skipped_units > 0, "the rerun kept the finished units"
    assert digests(url) == local_digests(local)


def build_tokens_beside_a_folder(url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A 2-clip world built with the codec stage (a seeded random EnCodec: seconds a clip) into
    the store and into a folder; the two hold the same bytes, token shards included. Returns
    the folder and the store's digests."""
    tokens = SMALL.from_dict({**SMALL.to_dict(), "tokenize": {"enabled": True, "codec": "random"}})
    local = tmp_path / "tokens"
    world = make_world(tmp_path / "world", n_clips=2, seed=7)
    build_corpus([world.manifest], url, tokens, engine="local", progress=False)
    build_corpus([world.manifest], local, tokens, engine="local", progress=False)
    remote = digests(url)
    assert remote == local_digests(local) and any(n.startswith("tokens/") for n in remote)
    return local, remote


def assert_one_line_store_error(err: str, bucket: str, case: str) -> None:
    """The build's stderr for a missing bucket or denied access: one line naming the bucket."""
    assert err.count("\n") == 1 and err.startswith("ualm: error: ")
    assert bucket in err and ("does not exist" if case == "missing bucket" else "access denied") \
        in err

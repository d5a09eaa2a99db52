"""`ualm publish` checks the destination against the plan before it writes the files that mark the
corpus complete (the card, corpus.json, publish.json): an object that was acknowledged (and read
back intact) and then went missing or was damaged at the destination (a lifecycle rule, another
writer on the same prefix or branch, a replication glitch) fails the publish with an error that
names it, no completion file is written, and rerunning the same command sends it again.

Each case runs once undamaged through the same harness first, so a failure is the check's and not
the harness's. A small untokenized corpus is built here (under a second), to a folder, an S3
server on 127.0.0.1 (moto) and a Hub on 127.0.0.1 (tests/hub_server.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_server import HubServer
from tests.publish_corpus import local_files
from tests.s3_server import moto_s3
from ualm.errors import UalmError
from ualm.publish import publish

COMPLETION = ("README.md", "corpus.json", "publish.json")
"""What `_send_last` writes, after the check: a reader takes the corpus as complete by these."""
BUCKET = "verify"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ualm.audio.events import make_event_world
    from ualm.config import BuildConfig
    from ualm.pipelines.build import build_corpus

    root = tmp_path_factory.mktemp("verify")
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=("a low tone", "white noise"), text_rows=2, seed=5)
    config = BuildConfig.from_dict({"shards": {"max_samples": 3}, "tokenize": {"enabled": False},
                                    "work": {"unit_size": 4, "dedup_buckets": 2}})
    return build_corpus([world.manifests["train"]], root / "corpus", config, engine="local",
                        progress=False).corpus


class Saboteur:
    """Wraps the store `publish` opens: once the batch holding `victim` is sent (uploaded, read
    back and indexed by the store), the destination loses the object (`missing`), or it is
    replaced by a shorter copy (`truncated`) or by other bytes of the same size (`same-size`).
    `kind = None` leaves everything intact."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, victim: str, data: bytes) -> None:
        import ualm.publish as publish_module

        self.victim, self.data = victim, data
        self.kind: str | None = None
        self.hits: list[str] = []
        real = publish_module.open_store

        def open_store(*args: Any, **kwargs: Any) -> Any:
            store = real(*args, **kwargs)
            send = store.send

            def send_then_damage(batch: list, message: str, **more: Any) -> None:
                send(batch, message, **more)
                if self.kind is not None and any(e.path == self.victim for e in batch):
                    self._damage(store)

            store.send = send_then_damage
            return store

        monkeypatch.setattr(publish_module, "open_store", open_store)

    def altered(self) -> bytes:
        if self.kind == "truncated":
            return self.data[:len(self.data) // 2]
        assert self.kind == "same-size"
        return self.data[:-1] + bytes([self.data[-1] ^ 0xFF])

    def _damage(self, store: Any) -> None:
        from ualm.publish.destinations import HubDestination

        self.hits.append(f"{self.kind}:{self.victim}")
        if isinstance(store.destination, HubDestination):  # another writer commits to the branch
            from huggingface_hub import CommitOperationAdd, CommitOperationDelete

            op = CommitOperationDelete(self.victim) if self.kind == "missing" else \
                CommitOperationAdd(self.victim, self.altered())
            store.api.create_commit(store.destination.repo_id, [op], commit_message="other writer",
                                    repo_type="dataset", revision=store.destination.revision)
        elif self.kind == "missing":
            store.fs.rm_file(store._path(self.victim))
        else:
            store.fs.pipe_file(store._path(self.victim), self.altered())


def _victim(corpus: Path) -> tuple[str, bytes]:
    """A data file in the first of several batches (batch_files=2), so later batches follow its
    damage."""
    path = sorted(p for p in local_files(corpus) if p.startswith("audio/"))[1]
    return path, (corpus / path).read_bytes()


def _damaged_publish_fails_and_a_rerun_repairs(
        corpus: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
        url: Callable[[str], str], arrived: Callable[[str], dict[str, bytes]]) -> None:
    victim, data = _victim(corpus)
    saboteur = Saboteur(monkeypatch, victim, data)
    expected = local_files(corpus)

    clean = publish(corpus, url("clean"), batch_files=2)  # the harness alone breaks nothing
    assert clean.sent == clean.files and not saboteur.hits
    there = arrived("clean")
    assert {p: there.get(p) for p in expected} == expected
    assert set(COMPLETION) <= set(there)

    saboteur.kind = kind
    target = url("damaged")
    with pytest.raises(UalmError) as caught:
        publish(corpus, target, batch_files=2)
    assert saboteur.hits == [f"{kind}:{victim}"]
    assert caught.value.message == f"1 files did not arrive intact at {target}, e.g. {victim}"
    assert "rerun the same command" in caught.value.fix
    there = arrived("damaged")
    assert [p for p in COMPLETION if p in there] == [], "marked complete with a damaged file"
    assert there.get(victim) != data  # the damage is at the destination, and nothing undid it
    assert victim in there or kind == "missing"

    saboteur.kind = None
    again = publish(corpus, target, batch_files=2)
    assert again.sent == 1 + len(COMPLETION)  # the damaged file, then the completion files
    there = arrived("damaged")
    assert {p: there.get(p) for p in expected} == expected
    assert set(COMPLETION) <= set(there)


def _folder_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_folder_publish_refuses_to_complete_with_a_lost_or_damaged_file(
        corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    _damaged_publish_fails_and_a_rerun_repairs(
        corpus, monkeypatch, kind, url=lambda name: str((tmp_path / name).resolve()),
        arrived=lambda name: _folder_files(tmp_path / name))


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A moto S3 server on 127.0.0.1 with an empty bucket."""
    with moto_s3(monkeypatch, BUCKET):
        yield


def _s3_files(prefix: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    root = f"{BUCKET}/{prefix}"
    return {name[len(root) + 1:]: fs.cat_file(name) for name in fs.find(root)}


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_s3_publish_refuses_to_complete_with_a_lost_or_damaged_object(
        s3: None, corpus: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    _damaged_publish_fails_and_a_rerun_repairs(
        corpus, monkeypatch, kind, url=lambda name: f"s3://{BUCKET}/{name}", arrived=_s3_files)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A Hub on 127.0.0.1, as in tests/test_publish_hub.py."""
    import huggingface_hub.constants as constants

    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test_verify")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield server


@pytest.mark.parametrize("kind", ["missing", "same-size"])
def test_hub_publish_refuses_to_complete_with_a_lost_or_replaced_file(
        hub: HubServer, corpus: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """On the Hub the check compares each file's sha256 in the branch's tree: a file replaced by
    other bytes of the same size is caught too."""
    _damaged_publish_fails_and_a_rerun_repairs(
        corpus, monkeypatch, kind, url=lambda name: f"hf://datasets/org/{name}",
        arrived=lambda name: {p: d for p, d in hub.files(f"org/{name}").items()
                              if p != ".gitattributes"})


def test_a_file_damaged_on_its_way_up_is_caught_by_the_read_back(
        corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that writes other bytes of the same size for one file: the read-back of each
    upload names it before it enters the index, and nothing marks the corpus complete."""
    from ualm.publish.fsspec_store import FsspecStore

    victim, data = _victim(corpus)
    real_put = FsspecStore._put
    hits = []

    def put(self: FsspecStore, entry: Any) -> None:
        real_put(self, entry)
        if entry.path == victim and self.root.endswith("/damaged"):
            hits.append(entry.path)
            self.fs.pipe_file(self._path(entry.path), data[:-1] + bytes([data[-1] ^ 0xFF]))

    monkeypatch.setattr(FsspecStore, "_put", put)
    assert publish(corpus, str(tmp_path / "clean"), batch_files=2).sent > 0
    assert (tmp_path / "clean" / "corpus.json").is_file() and not hits
    target = (tmp_path / "damaged").resolve()
    with pytest.raises(UalmError, match="^" + re.escape(f"{victim} arrived at {target} with sha256 ")) as caught:
        publish(corpus, str(target), batch_files=2)
    assert hits == [victim] and "rerun the same command" in caught.value.fix
    assert not [p for p in COMPLETION if (target / p).exists()]

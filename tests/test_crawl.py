"""The crawler against a real HTTP server on 127.0.0.1 that injects faults: every URL ends kept
or rejected with its specific reason, a URL corpus equals the same files' corpus by path, and a
rerun fetches nothing again."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL, tree_bytes
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig, CrawlConfig
from ualm.inputs.crawl.fetch import Fetcher
from ualm.inputs.crawl.policy import address_refusal, check_url
from ualm.inputs.listing import list_inputs
from ualm.pipelines.build import build_corpus
from ualm.testing.crawl_server import FaultyServer

FAST = CrawlConfig(allow_private_network=True, retries=2, backoff_seconds=0.05,
                   read_timeout=0.5, per_host_rate=0, per_host_concurrency=16)
FILES = {"a.flac": ("flac", 3.0), "b.mp3": ("mp3", 2.5), "c.wav": ("wav16", 4.0),
         "d.ogg": ("ogg", 2.0), "e.wav": ("wav24", 2.2)}

# (id, path on the server, expected reason or None for kept)
CASES = [
    ("ok-flac", "/audio/a.flac", None),
    ("ok-mp3", "/audio/b.mp3", None),
    ("ok-redirect", "/redirect/c.wav", None),
    ("retry-500", "/flaky/d.ogg", None),
    ("retry-429", "/busy/e.wav", None),
    ("missing", "/404", "crawl/http_404"),
    ("down", "/500", "crawl/http_5xx"),
    ("slow", "/slow", "crawl/timeout"),
    ("cut-short", "/short", "crawl/truncated"),
    ("ten-gb", "/huge", "crawl/too_large"),
    ("loop", "/loop/0", "crawl/too_many_redirects"),
    ("metadata", "/to-metadata", "crawl/private_address"),
    ("mapped-metadata", "/to-mapped-metadata", "crawl/private_address"),
    ("link-local", "/to-link-local", "crawl/private_address"),
    ("robots", "/private/a.flac", "crawl/robots"),
    ("noai", "/noai/b.mp3", "crawl/opt_out"),
    ("tdm", "/tdm/b.mp3", "crawl/opt_out"),
    ("rate-limited", "/busy-long", "crawl/http_429"),
    ("html", "/html.mp3", "crawl/not_audio"),
    ("opted-out-row", "/audio/d.ogg?row-opt-out", "crawl/opt_out"),
]


def _config(**crawl: object) -> BuildConfig:
    return dataclasses.replace(SMALL, crawl=dataclasses.replace(FAST, **crawl))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    for seed, (name, (fmt, seconds)) in enumerate(FILES.items()):
        write_audio(root / name, synth_clip(seconds, 24000, seed), 24000, fmt)
    return root


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _reasons(corpus: Path) -> dict[str, str]:
    table = pq.read_table(corpus / "manifests" / "rejects").to_pylist()
    return {r["input_id"]: r["reason"] for r in table if r["level"] == "input"}


def _kept(corpus: Path) -> set[str]:
    return set(pq.read_table(corpus / "manifests" / "samples").column("input_id").to_pylist())


def test_every_url_accounted_for_with_its_reason(files: Path, tmp_path: Path) -> None:
    with FaultyServer(files) as server:
        rows = [{"id": i, "url": server.base + p, "caption": f"clip {i}",
                 **({"opt_out": True} if "opt-out" in p else {})} for i, p, _ in CASES]
        rows.append({"id": "bad-scheme", "url": "file:///etc/passwd"})
        manifest = _write_jsonl(tmp_path / "urls.jsonl", rows)
        tempfile.tempdir = str(tmp_path / "tmp")  # the units' temporary files land here
        Path(tempfile.tempdir).mkdir()
        try:
            result = build_corpus([manifest], tmp_path / "corpus", _config(max_bytes=1 << 20),
                                  engine="local", progress=False)
        finally:
            tempfile.tempdir = None
        assert "/audio/d.ogg" not in server.hits  # the opted-out row was never requested
        assert server.hits["/busy-long"] == 1  # a day's Retry-After gives up at once
        assert 1 <= server.hits["/robots.txt"] <= 4  # once per host per unit (4 units)
        assert server.agents == {FAST.user_agent}
    reasons, kept = _reasons(result.corpus), _kept(result.corpus)
    expected = {i: r for i, _, r in CASES if r is not None} | {"bad-scheme": "crawl/bad_url"}
    assert reasons == expected
    assert kept == {i for i, _, r in CASES if r is None}
    summary = result.summary
    assert summary["inputs"] == len(rows) == summary["kept"] + summary["rejected"] + summary[
        "duplicates"]
    assert not list((tmp_path / "tmp").iterdir())  # no fetched bytes outlive their unit


def test_url_corpus_equals_path_corpus_and_rerun_fetches_nothing(
        files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ualm.errors import UalmError

    names = sorted(FILES)
    by_path = _write_jsonl(tmp_path / "paths.jsonl", [
        {"id": n, "path": str(files / n), "caption": n, "source": "web"} for n in names])
    path_corpus = build_corpus([by_path], tmp_path / "by-path", SMALL, engine="local",
                               allow_roots=[files], progress=False).corpus
    with FaultyServer(files) as server:
        by_url = _write_jsonl(tmp_path / "urls.jsonl", [
            {"id": n, "url": f"{server.base}/audio/{n}", "caption": n, "source": "web"}
            for n in names])
        monkeypatch.setenv("UALM_FAULTS", "shard:0=fail")  # the run dies after ingest
        with pytest.raises(UalmError):
            build_corpus([by_url], tmp_path / "by-url", _config(), engine="local",
                         progress=False)
        fetched = sum(server.hits.values())
        assert server.hits["/audio/a.flac"] == 1
        monkeypatch.delenv("UALM_FAULTS")
        again = build_corpus([by_url], tmp_path / "by-url", _config(), engine="local",
                             progress=False)
        assert sum(server.hits.values()) == fetched  # finished units were not refetched
        assert again.skipped_units >= 1
    url_corpus = again.corpus
    assert _kept(path_corpus) == _kept(url_corpus) == set(names)
    audio = {k: v for k, v in tree_bytes(path_corpus).items() if k.startswith("audio/")}
    assert audio and audio == {k: v for k, v in tree_bytes(url_corpus).items()
                               if k.startswith("audio/")}


def test_private_addresses_refused_without_the_flag(files: Path, tmp_path: Path) -> None:
    with FaultyServer(files) as server:
        port = server.server_address[1]
        urls = {"literal": f"{server.base}/audio/a.flac",
                "dns": f"http://localhost:{port}/audio/a.flac",  # refused after resolution
                "decimal": f"http://2130706433:{port}/audio/a.flac"}
        results = asyncio.run(_fetch_all(CrawlConfig(), urls.values(), tmp_path))
        assert not server.hits  # nothing reached the server, robots.txt included
    reasons = dict(zip(urls, (r.reason for r in results), strict=True))
    assert reasons == {"literal": "crawl/private_address", "dns": "crawl/private_address",
                       "decimal": "crawl/bad_url"}


async def _fetch_all(config: CrawlConfig, urls, tmp: Path) -> list:
    async with Fetcher(config, tmp) as fetcher:
        return list(await asyncio.gather(
            *(fetcher.fetch(u, tmp / f"f{i}") for i, u in enumerate(urls))))


@pytest.mark.parametrize(("address", "flag", "refused"), [
    ("127.0.0.1", False, True), ("127.0.0.1", True, False), ("::1", True, False),
    ("10.2.3.4", True, False), ("192.168.1.1", False, True), ("100.64.0.1", False, True),
    ("169.254.169.254", True, True), ("fd00:ec2::254", True, True), ("fe80::1", True, True),
    ("::ffff:169.254.169.254", True, True), ("64:ff9b::a9fe:a9fe", True, True),
    ("100.100.100.200", True, True), ("0.0.0.0", True, True), ("224.0.0.1", True, True),
    ("240.0.0.1", True, True), ("8.8.8.8", False, False), ("2606:4700::1111", False, False),
])
def test_address_policy(address: str, flag: bool, refused: bool) -> None:
    assert (address_refusal(address, flag) is not None) == refused


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "http:///x", "gopher://h",
                                 "http://0x7f.1/x"])
def test_bad_urls(url: str) -> None:
    from ualm.inputs.crawl.policy import Refused

    with pytest.raises(Refused) as info:
        check_url(url, allow_private=True)
    assert info.value.reason == "crawl/bad_url"


def test_cache_revalidates_with_etag(files: Path, tmp_path: Path) -> None:
    config = dataclasses.replace(FAST, cache_dir=str(tmp_path / "cache"))
    with FaultyServer(files) as server:
        url = f"{server.base}/etag/a.flac"
        first = asyncio.run(_fetch_all(config, [url], tmp_path))[0]
        second = asyncio.run(_fetch_all(config, [url], tmp_path))[0]
        assert server.hits["/etag/a.flac"] == 2 and server.not_modified == 1
    assert first.reason is second.reason is None and first.temporary and not second.temporary
    assert second.path.read_bytes() == (files / "a.flac").read_bytes()


def test_retry_after_is_honoured(files: Path, tmp_path: Path) -> None:
    import time

    with FaultyServer(files) as server:
        started = time.monotonic()
        result = asyncio.run(_fetch_all(FAST, [f"{server.base}/busy/b.mp3"], tmp_path))[0]
        assert time.monotonic() - started >= 1.0 and result.attempts == 2
    assert result.reason is None


def test_url_list_and_manifest_url_checks(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text("# comment\nhttps://example.org/a.flac\n\nftp://x/y\n"
                      "https://example.org/a.flac\n")
    records = list(list_inputs([listed]))
    assert [r.input_id for r in records] == ["https://example.org/a.flac", "ftp://x/y",
                                             "https://example.org/a.flac#L5"]
    assert [r.reject_reason for r in records] == [None, "crawl/bad_url", None]


def test_crawl_config_does_not_change_the_hash_unless_it_changes_bytes() -> None:
    base = BuildConfig()
    how = BuildConfig.from_dict({"crawl": {"user_agent": "x/1", "concurrency": 3,
                                           "per_host_rate": 1, "allow_private_network": True,
                                           "cache_dir": "/tmp/c", "retries": 0}})
    what = BuildConfig.from_dict({"crawl": {"max_bytes": 1000}})
    assert how.hash() == base.hash() != what.hash()
    assert "crawl" not in base.audio_dict()
    with pytest.raises(Exception, match="crawl"):
        BuildConfig.from_dict({"crawl": {"per_host_concurrency": 0}})


def test_dask_workers_fetch_the_same_corpus(files: Path, tmp_path: Path) -> None:
    with FaultyServer(files) as server:
        manifest = _write_jsonl(tmp_path / "urls.jsonl", [
            {"id": n, "url": f"{server.base}/flaky/{n}"} for n in sorted(FILES)]
            + [{"id": "gone", "url": f"{server.base}/404"}])
        local = build_corpus([manifest], tmp_path / "local", _config(), engine="local",
                             progress=False)
        server.hits.clear()  # /flaky/ fails once per name again
        dask = build_corpus([manifest], tmp_path / "dask", _config(), engine="dask", workers=2,
                            progress=False)
    assert _reasons(dask.corpus) == _reasons(local.corpus) == {"gone": "crawl/http_404"}
    assert tree_bytes(local.corpus)["audio/audio-000000.tar"] == tree_bytes(dask.corpus)[
        "audio/audio-000000.tar"]


def test_sockets_connect_only_to_checked_addresses(files: Path) -> None:
    """Defence in depth: below the URL check, the session's socket factory refuses a forbidden
    address that reached it (a literal IP skips the resolver)."""
    import aiohttp

    from ualm.inputs.crawl import net

    async def attempt(url: str) -> str | None:
        async with net.open_session(CrawlConfig()) as session:
            try:
                async with session.get(url):
                    return None
            except aiohttp.ClientConnectorError as exc:
                refused = net.refused_cause(exc)
                return refused.detail if refused else repr(exc)

    with FaultyServer(files) as server:
        detail = asyncio.run(attempt(f"{server.base}/audio/a.flac"))
        assert not server.hits
    assert detail == "connecting to 127.0.0.1 is a loopback or private address " \
                     "(--allow-private-network permits it)"


def test_header_helpers() -> None:
    from multidict import CIMultiDict

    from ualm.inputs.crawl import net
    from ualm.retry_after import retry_after

    def headers(*pairs: tuple[str, str]) -> CIMultiDict:
        return CIMultiDict(pairs)

    assert retry_after(headers(("retry-after", "7"))) == 7.0  # aiohttp's case-insensitive headers
    assert net.opt_out_signal(headers(("X-Robots-Tag", "noindex"),
                                      ("X-Robots-Tag", "ualm-crawler: noai")))
    assert net.opt_out_signal(headers(("X-Robots-Tag", "noindex, nofollow"))) is None
    assert net.opt_out_signal(headers(("TDM-Reservation", "1")))
    assert [net.status_reason(s) for s in (404, 418, 503, 204)] == [
        "crawl/http_404", "crawl/http_4xx", "crawl/http_5xx", "crawl/http_status"]


def test_markup_sniff(tmp_path: Path, files: Path) -> None:
    from ualm.inputs.crawl.sniff import looks_like_markup

    cases = {"page": b"\xef\xbb\xbf  <!doctype html><html>", "json": b'{"error": "gone"}',
             "id3": b"ID3\x04\0\0\0\0\0\x10" + b"\0" * 40, "binary": bytes(range(256))}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert looks_like_markup(tmp_path / "page") and looks_like_markup(tmp_path / "json")
    assert looks_like_markup(tmp_path / "id3") is None
    assert looks_like_markup(tmp_path / "binary") is None
    assert all(looks_like_markup(files / n) is None for n in FILES)

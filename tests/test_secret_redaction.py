"""Credentials never leave the process: a build from URLs that carry a password, a token and
signed-URL parameters, with Hub and bucket keys in the environment, fetches with them (the good
URLs are kept) and writes none of them anywhere: every byte of every file the build, `inspect`
and `report` write, and every line they print, is searched for each planted secret."""

from __future__ import annotations

import base64
import doctest
import json
from pathlib import Path

import pytest

from ualm import redact
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.cli import main
from ualm.redact import redact_text, redact_url, secret_param
from ualm.testing.crawl_server import FaultyServer

PASSWORD = "pw-PLANTED-3f9a1c"
TOKEN = "tok-PLANTED-77d2e0"
SIGNATURE = "sig-PLANTED-0b8e41c2d9"
CREDENTIAL = "AKIAPLANTED5Q2Z/20261207/us-east-1/s3/aws4_request"
SESSION = "sess-PLANTED-c0ffee"
GOOG = "goog-PLANTED-5e1d"
API_KEY = "key-PLANTED-9a9a9a"
AWS_SECRET = "aws-secret-PLANTED-wJalrXUtnFEMI"
HF_TOKEN = "hf_PLANTEDhubtoken0123456789"
SAVED_HUB_TOKEN = "hf_PLANTEDsavedLogin0123456789abcdefg"  # in no variable: known by its shape
SECRETS = (PASSWORD, TOKEN, SIGNATURE, CREDENTIAL, SESSION, GOOG, API_KEY, AWS_SECRET, HF_TOKEN,
           SAVED_HUB_TOKEN)

SIGNED = (f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={CREDENTIAL}"
          f"&X-Amz-Security-Token={SESSION}&X-Amz-Signature={SIGNATURE}")


def _rows(base: str) -> list[dict]:
    host = base.removeprefix("http://")
    return [  # no explicit ids: each id is derived from its URL, the riskiest case
        {"url": f"http://user:{PASSWORD}@{host}/audio/a.flac", "caption": "a tone"},
        {"url": f"{base}/audio/b.mp3?{SIGNED}", "caption": "another tone"},
        {"url": f"{base}/signed/c.wav?token={TOKEN}&X-Goog-Signature={GOOG}&x=1",
         "caption": "a third tone", "mirror": f"{base}/c.wav?api_key={API_KEY}"},
        {"url": f"{base}/redirect/d.ogg?access_token={TOKEN}", "caption": "a fourth tone"},
        {"url": f"http://admin:{PASSWORD}@{host}/404?sig={SIGNATURE}", "caption": "gone"},
        {"url": f"{base}/404/e.wav?{SIGNED}", "caption": "gone too"},
        {"url": f"{base}/500?key={API_KEY}", "caption": "down"},
        {"url": f"http://user:{PASSWORD}@{host}:99999/x.wav", "caption": "a bad port"},
        {"url": f"ftp://user:{PASSWORD}@{host}/x.wav?token={TOKEN}", "caption": "not http"},
    ]


def _every_byte(root: Path) -> dict[str, bytes]:
    """Each file's bytes; a parquet file's values decoded too (a compressed page would hide a
    secret from a search of the raw bytes)."""
    import pyarrow.parquet as pq

    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            data += json.dumps(rows, default=str, ensure_ascii=False).encode()
        files[path.relative_to(root).as_posix()] = data
    return files


def test_no_planted_secret_is_written_or_printed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    served = tmp_path / "served"
    served.mkdir()
    for seed, (name, fmt) in enumerate([("a.flac", "flac"), ("b.mp3", "mp3"),
                                        ("c.wav", "wav16"), ("d.ogg", "ogg"),
                                        ("e.flac", "flac")]):
        write_audio(served / name, synth_clip(1.5 + seed / 4, 24000, seed), 24000, fmt)
    out = tmp_path / "out"
    with FaultyServer(served, token=TOKEN) as server:  # /signed/ URLs need the token
        (served / "urls.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                   for r in _rows(server.base)))
        host = server.base.removeprefix("http://")
        manifest = f"http://user:{PASSWORD}@{host}/audio/urls.jsonl"  # the manifest by URL too
        listed = tmp_path / "more-urls.txt"  # a URL list: its records go to a work file
        listed.write_text(f"{server.base}/audio/e.flac?sig={SIGNATURE}\n"
                          f"http://user:{PASSWORD}@{host}/404/f.wav?token={TOKEN}\n")
        assert main(["build", "--input", manifest, "--input", str(listed),
                     "--out", str(out / "corpus"),
                     "--engine", "local", "--tokenize.enabled", "false",
                     "--crawl.allow_private_network", "true", "--crawl.retries", "0",
                     "--crawl.per_host_rate", "0"]) == 0  # one unit: the server ignores Range
        # the fetch itself used the credentials
        assert f"Basic {base64.b64encode(f'user:{PASSWORD}'.encode()).decode()}" in \
            server.authorizations
        assert f"/audio/b.mp3?{SIGNED}" in server.targets
        assert f"/signed/c.wav?token={TOKEN}&X-Goog-Signature={GOOG}&x=1" in server.targets
        # a one-line error names the input without its credentials
        assert main(["build", "--input", f"http://user:{PASSWORD}@{host}/audio/gone.jsonl",
                     "--out", str(out / "never")]) == 2
        build_output = capsys.readouterr()
        assert f"http://***@{host}/audio/gone.jsonl" in build_output.err
    assert main(["inspect", str(out / "corpus")]) == 0
    assert main(["inspect", "--json", str(out / "corpus")]) == 0
    assert main(["report", str(out / "corpus"), "--samples", "0",
                 "-o", str(out / "report.html")]) == 0
    rest = capsys.readouterr()
    printed = (build_output.out + rest.out, build_output.err + rest.err)
    assert "inputs   11 = kept 5 + rejected 6" in printed[0]

    summary = json.loads((out / "corpus" / "corpus.json").read_text())["counts"]
    assert summary["kept"] == 5 and summary["rejected"] == 6, summary  # the good URLs fetched
    files = _every_byte(out)
    assert any(name.startswith("manifests/rejects") for name in
               (n.removeprefix("corpus/") for n in files))
    for secret in SECRETS:
        leaks = [name for name, data in files.items() if secret.encode() in data]
        assert not leaks, f"{secret} written to {leaks}"
        assert secret not in printed[0] and secret not in printed[1], secret
    kept_ids = b"".join(files.values())
    assert b"/audio/b.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***" in kept_ids


@pytest.mark.parametrize(("url", "public"), [
    ("http://u:p@h:8/a.wav", "http://***@h:8/a.wav"),
    ("https://h/a.wav?X-Amz-Signature=s&X-Amz-Credential=c&x=1",
     "https://h/a.wav?X-Amz-Signature=***&X-Amz-Credential=***&x=1"),
    ("https://h/a?sv=1&sig=abc#frag", "https://h/a?sv=1&sig=***#frag"),
    ("https://h/a?API_KEY=k;Token=t&hf_token=z", "https://h/a?API_KEY=***;Token=***&hf_token=***"),
    ("https://h/path@x/a.wav", "https://h/path@x/a.wav"),
    ("https://h/f.parquet?key=k#row=3", "https://h/f.parquet?key=***#row=3"),
    ("/data/a.wav", "/data/a.wav"),
    ("s3://bucket/a.wav", "s3://bucket/a.wav"),
])
def test_redact_url(url: str, public: str) -> None:
    assert redact_url(url) == public


@pytest.mark.parametrize(("name", "secret"), [
    ("X-Amz-Security-Token", True), ("hf_token", True), ("accessToken", True), ("Sig", True),
    ("client_secret", True), ("key", True), ("max_tokens", False), ("tokenizer", False),
    ("width", False), ("section.key_frames", False),
])
def test_secret_param_names(name: str, secret: bool) -> None:
    assert secret_param(name) == secret


def test_redact_text_masks_urls_headers_and_environment_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    text = (f"ClientError for 'https://u:{PASSWORD}@h/x?token={TOKEN}' with secret {AWS_SECRET}"
            f" {{'Authorization': 'Bearer {HF_TOKEN}'}} Authorization: AWS4-HMAC-SHA256 "
            f"Credential={CREDENTIAL}, SignedHeaders=host, Signature={SIGNATURE}"
            f" (token:{SAVED_HUB_TOKEN})")
    masked = redact_text(text)
    assert not any(s in masked for s in SECRETS), masked
    assert "https://***@h/x?token=***" in masked and "'Authorization': '***'" in masked
    assert doctest.testmod(redact).failed == 0

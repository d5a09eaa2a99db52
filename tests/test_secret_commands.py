"""Credentials planted in every place a user could put one (manifest URLs with user-info and
query tokens, an Authorization header in a manifest column, the environment, a build config's
plug-in options, the teacher's URL and key, the Hub token) reach the servers that need them and
nowhere else: `ualm build`, `ualm synth`, `ualm publish` and `ualm report` run as the command
line runs them, and every byte they write (the corpus, the report, the Hub's copy, temporary
files, the working folder) and print is searched for each secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.hub_server import HubServer
from tests.test_secret_redaction import (
    API_KEY,
    AWS_SECRET,
    CREDENTIAL,
    GOOG,
    HF_TOKEN,
    PASSWORD,
    SAVED_HUB_TOKEN,
    SECRETS,
    SESSION,
    SIGNATURE,
    TOKEN,
    _every_byte,
)
from ualm.audio.synthetic import synth_clip, write_audio
from ualm.testing.crawl_server import FaultyServer
from ualm.testing.teacher_server import FakeTeacherServer

TEACHER_KEY = "sk-PLANTED-teacher-4e4e7a"
CONFIG_KEY = "cfg-PLANTED-agent-1d1d5c"
PLANTED = (*SECRETS, TEACHER_KEY, CONFIG_KEY)
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _rows(base: str) -> list[dict]:
    host = base.removeprefix("http://")
    signed = f"X-Amz-Credential={CREDENTIAL}&X-Amz-Signature={SIGNATURE}"
    return [
        {"url": f"{base}/signed/a.flac?token={TOKEN}&{signed}", "caption": "a signed tone"},
        {"url": f"http://user:{PASSWORD}@{host}/audio/b.wav?access_token={TOKEN}"
                f"&api_key={API_KEY}", "caption": "a tone behind a password",
         "headers": {"Authorization": f"Bearer {HF_TOKEN}"}, "note": SAVED_HUB_TOKEN},
        {"url": f"{base}/audio/c.ogg?X-Goog-Credential={CREDENTIAL}&X-Goog-Signature={GOOG}",
         "caption": "a third tone"},
        {"url": f"{base}/signed/a.flac?sig={SIGNATURE}", "caption": "no token: refused"},
        {"url": f"{base}/404?X-Amz-Security-Token={SESSION}&key={API_KEY}", "caption": "gone"},
    ]


def _written(root: Path, hub: HubServer) -> dict[str, bytes]:
    """Every file under root (parquet values decoded) and every object the Hub received."""
    files = _every_byte(root)
    state = hub.state
    for key, data in {**state.blobs, **state.lfs}.items():
        files[f"hub:{key}"] = data
    files["hub:commits"] = json.dumps([r.messages for r in state.repos.values()]).encode()
    files["hub:requests"] = json.dumps(state.requests).encode()
    return files


def test_planted_secrets_reach_their_servers_and_are_never_written_or_printed(
        tmp_path: Path) -> None:
    given, out = tmp_path / "given", tmp_path / "out"
    served, work = given / "served", out / "cwd"
    for folder in (served, work, out / "tmp"):
        folder.mkdir(parents=True)
    for seed, (name, fmt) in enumerate([("a.flac", "flac"), ("b.wav", "wav16"),
                                        ("c.ogg", "ogg")]):
        write_audio(served / name, synth_clip(1.5 + seed / 4, 24000, seed), 24000, fmt)
    corpus = out / "corpus"
    with FaultyServer(served, token=TOKEN) as crawl, FakeTeacherServer() as teacher, \
            HubServer() as hub:
        env = {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(out / "tmp"),
               "HF_HOME": str(out / "hf-home"), "HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": hub.url,
               "HF_HUB_DISABLE_XET": "1", "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
               "AWS_SESSION_TOKEN": SESSION, "UALM_TEACHER_KEY": TEACHER_KEY}
        printed: list[str] = []

        def ualm(*args: str | Path, status: int = 0, **more: str
                 ) -> subprocess.CompletedProcess:
            run = subprocess.run([sys.executable, "-m", "ualm.cli", *map(str, args)],
                                 capture_output=True, text=True, timeout=300, cwd=work,
                                 env={**env, **more})
            printed.append(run.stdout + run.stderr)
            assert run.returncode == status, run.stderr[-3000:]
            return run

        manifest = given / "urls.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in _rows(crawl.base)))
        build_config = given / "build.yaml"
        agent = f"ualm-test (+https://example.org/bot?key={CONFIG_KEY})"  # a config value
        build_config.write_text(yaml.safe_dump({  # the caches under out/, searched too
            "shards": {"max_samples": 2}, "tokenize": {"codec": "random", "cache_dir": str(out / "token-cache")},
            "crawl": {"user_agent": agent, "cache_dir": str(out / "crawl-cache")}}))
        ualm("build", "--input", manifest, "--out", corpus, "--config", build_config,
             "--engine", "local", "--crawl.allow_private_network", "true",
             "--crawl.retries", "0", "--crawl.per_host_rate", "0")
        counts = json.loads((corpus / "corpus.json").read_text())["counts"]
        assert (counts["kept"], counts["rejected"]) == (3, 2), counts  # fetched with them
        assert any(t.startswith(f"/signed/a.flac?token={TOKEN}&") for t in crawl.targets)
        assert crawl.agents == {agent}

        synth_config = given / "synth.yaml"  # the key in the teacher's URL: refused
        url = teacher.base_url.replace("http://", f"http://teacher:{TEACHER_KEY}@")
        synth_config.write_text(yaml.safe_dump({
            "teacher": f"openai:teacher-model@{url}?api_key={TEACHER_KEY}",
            "api_key_env": "UALM_TEACHER_KEY", "kinds": ["enrichment"]}))
        refused = ualm("synth", corpus, "--config", synth_config, status=2)
        assert refused.stderr.startswith("ualm: error: the teacher URL http://***@127.0.0.1:")
        assert not teacher.requests
        ualm("synth", corpus, "--config", synth_config,  # the key from the environment: used
             "--teacher", f"openai:teacher-model@{teacher.base_url}")
        assert len(teacher.requests) == 3 and teacher.authorization == {f"Bearer {TEACHER_KEY}"}

        ualm("publish", corpus, "--to", "hf://datasets/org/planted", HF_HUB_OFFLINE="0")
        assert hub.state.tokens_seen == {HF_TOKEN}
        ualm("report", corpus, "--samples", "0", "-o", out / "report.html")

    files = _written(out, hub)
    for written in ("corpus/manifests/rejects/", "corpus/traces/", "crawl-cache/",
                    "token-cache/", "report.html", "hub:"):  # each command's outputs are here
        assert any(name.startswith(written) for name in files), written
    for secret in PLANTED:
        leaks = [name for name, data in files.items() if secret.encode() in data]
        assert not leaks, f"{secret} written to {leaks}"
        shown = [text for text in printed if secret in text]
        assert not shown, f"{secret} printed: {shown[0][-2000:]}"

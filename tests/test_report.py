"""`ualm report`: a corpus with rejects, duplicates, licences and languages plus a short training
run with a blend spec and a held-out evaluation, rendered to one page. The page's numbers are
checked against the manifests, its sounds against the shards, and a real browser (headless
Chromium) loads it and reports every picture decoded."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from ualm.audio.encode import write_audio
from ualm.audio.events import make_event_world
from ualm.audio.synthetic import make_world, synth_clip
from ualm.cli import main
from ualm.config import BuildConfig
from ualm.manifests.inspect import summarize
from ualm.pipelines.build import build_corpus
from ualm.report import render_report
from ualm.report.audio import pick
from ualm.train.blend.stats import corpus_stats
from ualm.train.blend.weights import BlendOptions, compute_blend
from ualm.train.config import TrainConfig
from ualm.train.model.evaluate import evaluate
from ualm.train.model.module import load_trained
from ualm.train.trainer import train

from .test_train_fit import EVENTS, SMALL

TINY = {**SMALL, "run": {**SMALL["run"], "max_steps": 4, "checkpoint_every": 4}}
TARGETS = {"generation": 0.5, "understanding": 0.3, "text": 0.2}


def _spoken(root: Path) -> Path:
    """Two clips whose manifest names their language (the other worlds name none)."""
    lines = []
    for i, language in enumerate(("en", "de", "en")):
        write_audio(root / f"spoken-{i}.flac", synth_clip(1.5, 24000, seed=90 + i), 24000, "flac")
        lines.append(json.dumps({"id": f"spoken-{i}", "path": f"spoken-{i}.flac",
                                 "caption": f"someone speaking, take {i}", "language": language,
                                 "source": "spoken", "license": "CC-BY-SA-4.0"}))
    (root / "spoken.jsonl").write_text("\n".join(lines) + "\n")
    return root / "spoken.jsonl"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    hostile = make_world(root / "hostile", n_clips=4, seed=3, seconds_range=(1.5, 3.0))
    events = make_event_world(root / "events", per_class=1, heldout_per_class=0, seconds=1.0,
                              events=EVENTS,
                              text_rows=4, seed=2)
    config = BuildConfig.from_dict({"shards": {"max_samples": 8},
                                    "loudness": {"enabled": True}, "tokenize": {"codec": "random"}})
    corpus = build_corpus([hostile.manifest, events.manifests["train"], _spoken(root)],
                          root / "corpus", config, engine="local",
                          allow_roots=[root], progress=False).corpus
    spec = compute_blend(corpus_stats([corpus]), BlendOptions(targets=TARGETS,
                                                              allow_infeasible=True))
    run = root / "run"
    run.mkdir()
    spec.dump(run / "blend.yaml")
    result = train([corpus], TrainConfig.from_dict(TINY), run, blend=spec)
    evaluation = evaluate(load_trained(result.checkpoint), [corpus], seq_len=256, batch_size=4)
    (run / "eval.json").write_text(json.dumps(evaluation))
    return {"corpus": corpus, "run": run, "root": root}


@pytest.fixture(scope="module")
def page(folders: dict[str, Path]) -> str:
    return render_report([folders["corpus"], folders["run"]], samples=3, stamp="fixed")


def _table_rows(page: str, section: str) -> list[list[str]]:
    body = page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]
    return [row for row in rows if row]  # header rows hold <th> cells only


def test_page_numbers_match_the_manifests(folders: dict[str, Path], page: str) -> None:
    summary = summarize(folders["corpus"])
    assert summary["rejected"] >= 8 and summary["duplicates"] == 2  # a funnel worth drawing
    funnel = {row[0]: row for row in _table_rows(page, "corpus-funnel") if len(row) == 4}
    for row in summary["funnel_hours"]:
        assert funnel[row["outcome"]][2] == f"{row['hours']:,.4f}"
    for reason, n in summary["reasons"].items():
        assert [reason, f"{n:,}"] in _table_rows(page, "corpus-funnel")
    by_stage = {r[0]: r for r in _table_rows(page, "corpus-funnel") if len(r) == 3}
    quality = [r for r in summary["funnel_hours"] if r["outcome"].startswith("quality/")]
    assert by_stage["quality"][1:] == [f"{sum(r['hours'] for r in quality):,.4f}",
                                       f"{sum(r['count'] for r in quality):,}"]
    assert by_stage["dedup"][2] == "2"
    overview = dict(r for r in _table_rows(page, "corpus-overview") if len(r) == 2)
    assert overview["inputs"] == f"{summary['inputs']:,}" and overview["samples"] == str(
        summary["samples"])
    sources = {(r[0], r[1]): r[2] for r in _table_rows(page, "corpus-sources") if len(r) == 4}
    assert sources[("spoken", "CC-BY-SA-4.0")] == "3"
    assert {lic for _, lic in sources} >= {"CC-BY-4.0", "CC0-1.0", "unspecified"}
    languages = [r for r in _table_rows(page, "corpus-clap") if len(r) == 2]
    assert languages == [["en", "2"], ["de", "1"]]
    assert "CLAP scores: not measured" in page and "Spoken language (Whisper): not measured" in page
    assert 'alt="loudness histogram"' in page and "LUFS): not measured" not in page
    for section in ("corpus-audio", "corpus-listen", "run-blend", "run-loss"):
        assert f'<section id="{section}">' in page


def test_page_shows_the_blend_and_the_losses(folders: dict[str, Path], page: str) -> None:
    spec = yaml.safe_load((folders["run"] / "blend.yaml").read_text())
    realised = json.loads((folders["run"] / "realised_blend.json").read_text())
    blend = {r[0]: r for r in _table_rows(page, "run-blend")}
    for s in spec["sources"]:
        row = blend[f"{s['name']}/{s['task']}"]
        assert row[1] == f"{s['weight']:,.3f}"
        got = realised["sources"].get(f"{s['name']}/{s['task']}")
        assert row[2] == (f"{got['token_share']:,.3f}" if got else "—")
    last = [line.split(",") for line in
            (folders["run"] / "logs" / "metrics.csv").read_text().splitlines()]
    header, rows = last[0], last[1:]
    final = [r[header.index("train/loss")] for r in rows if r[header.index("train/loss")]][-1]
    losses = {r[0]: r for r in _table_rows(page, "run-loss")}
    assert losses["loss"][2] == f"{float(final):,.4f}"
    evaluation = json.loads((folders["run"] / "eval.json").read_text())
    for task, row in evaluation["tasks"].items():
        assert losses[f"loss_{task}"][3] == f"{row['loss']:,.4f}"  # validation per task


def test_players_carry_the_stored_audio_and_the_decoded_codes(folders: dict[str, Path],
                                                              page: str) -> None:
    import pyarrow.dataset as ds

    sounds = re.findall(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(sounds) == 6  # three samples, each stored and decoded
    samples = ds.dataset(str(folders["corpus"] / "manifests" / "samples")).to_table().to_pylist()
    chosen = pick(samples, 3)
    assert len({s["source"] for s in chosen}) == 3  # one per source before any twice
    first = chosen[0]
    with tarfile.open(folders["corpus"] / first["shard"]) as tar:
        stored, rate = sf.read(io.BytesIO(tar.extractfile(f"{first['key']}.flac").read()))
    played, played_rate = sf.read(io.BytesIO(base64.b64decode(sounds[0])))
    assert played_rate == rate and np.allclose(played, stored, atol=1 / 32768)
    decoded, decoded_rate = sf.read(io.BytesIO(base64.b64decode(sounds[1])))
    assert decoded_rate == 24000 and abs(len(decoded) - len(stored)) <= 320  # one frame
    assert not np.allclose(decoded, 0)  # the codes said something


def test_page_is_self_contained_and_deterministic(folders: dict[str, Path], page: str) -> None:
    assert not re.search(r'(src|href)="(https?:|//|file:)', page)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    assert images == ["funnel in hours", "duration histogram", "loudness histogram",
                      "language distribution", "blend spec against realised", "loss per task"]
    again = render_report([folders["corpus"], folders["run"]], samples=3, stamp="fixed")
    assert again == page


def test_cli_writes_the_page_and_refuses_other_folders(folders: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(folders["corpus"]), "-o", str(out), "--samples", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.read_text().count("data:audio/wav") == 2
    assert main(["report", str(tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "neither a corpus" in err and "fix:" in err


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const audio = [...document.querySelectorAll('audio')];
  const bad = audio.filter(a => a.error).length;
  document.title = 'CHECK ' + JSON.stringify({images: imgs.length, loaded: ok,
                                               audio: audio.length, audio_errors: bad});
});
</script>"""


def test_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run does)")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"<title>CHECK (\{.*?\})</title>", done.stdout)
    assert found, done.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == 6 and result["loaded"] == result["images"], result
    assert result["audio"] == 6 and result["audio_errors"] == 0, result

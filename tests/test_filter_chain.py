"""Filters switched on by name: one declared in the package (`dc_offset`, a module and one entry
in `ualm.filters.chain.FILTERS`) and one plug-in installed under the `ualm.filters` entry point
group. Each one's reason reaches the rejects, `ualm inspect`, the report and the card; a name
nobody declares stops the build before any work; a default config hashes as before."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ualm.audio.synthetic import synth_clip, write_audio
from ualm.config import BuildConfig
from ualm.errors import UalmError
from ualm.filters.chain import available
from ualm.manifests.inspect import format_summary, summarize
from ualm.pipelines.build import build_corpus, resolved_for
from ualm.report.build import render_report

from .conftest import tree_bytes

RATE = 24000
PLUGIN = '''
import numpy as np

from ualm.filters.base import Rejection
from ualm.filters.chain import Filter


class PeakCheck:
    def __init__(self, max_peak: float = 0.9) -> None:
        self.max_peak = max_peak

    def __call__(self, samples, sample_rate):
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > self.max_peak:
            return Rejection("loud/too_loud", f"peak {peak:.2f} > {self.max_peak:g}")
        return None


LOUD = Filter("loud", ("loud/too_loud",), "windows whose peak is above max_peak", PeakCheck)
'''


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 2 s clips: two plain (peak about 0.5), one with a +0.3 DC offset, one at 0.25 gain."""
    folder = tmp_path_factory.mktemp("clips")
    rows = []
    for i, change in enumerate(["plain", "offset", "plain", "quiet"]):
        audio = synth_clip(2.0, RATE, seed=40 + i)
        audio = audio + np.float32(0.3) if change == "offset" else audio
        audio = audio * np.float32(0.25) if change == "quiet" else audio
        write_audio(folder / f"{change}{i}.wav", audio.astype(np.float32), RATE, "wav16")
        rows.append({"id": f"{change}{i}", "path": f"{change}{i}.wav", "caption": f"clip {i}"})
    out = folder / "manifest.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution (its dist-info on sys.path) declaring the `loud` filter."""
    (tmp_path / "loud_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "loud_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loud-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ualm.filters]\nloud = loud_plugin:LOUD\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "loud"


def _build(manifest: Path, out: Path, filters: dict) -> dict:
    config = BuildConfig.from_dict({"filters": filters, "tokenize": {"enabled": False}})
    build_corpus([manifest], out, config, engine="local", progress=False)
    return summarize(out)


def _input_reasons(corpus: Path) -> dict[str, str]:
    rejects = pq.read_table(corpus / "manifests" / "rejects").to_pylist()
    return {r["input_id"]: r["reason"] for r in rejects if r["level"] == "input"}


def test_a_declared_filter_switched_on_by_name_rejects_end_to_end(manifest: Path,
                                                                 tmp_path: Path) -> None:
    assert _build(manifest, tmp_path / "off", {})["kept"] == 4  # off by default
    summary = _build(manifest, tmp_path / "on", {"enabled": ["dc_offset"]})
    assert summary["kept"] == 3 and summary["accounted"]
    assert _input_reasons(tmp_path / "on") == {"offset1": "dc_offset/too_high"}
    assert "dc_offset/too_high" in format_summary(summary)
    assert "dc_offset/too_high" in render_report([tmp_path / "on"])
    card = (tmp_path / "on" / "README.md").read_text()
    assert "| dc_offset | yes | windows whose mean is further than max_offset from zero |" in card
    corpus = json.loads((tmp_path / "on" / "corpus.json").read_text())
    assert corpus["filters"] == [{"name": "dc_offset", "reasons": ["dc_offset/too_high"],
                                  "description": "windows whose mean is further than "
                                                 "max_offset from zero"}]
    assert "filters" not in json.loads((tmp_path / "off" / "corpus.json").read_text())
    config = BuildConfig.from_dict({"filters": {"enabled": ["dc_offset"]},
                                    "tokenize": {"enabled": False}})
    build_corpus([manifest], tmp_path / "dask", config, engine="dask", workers=2,
                 progress=False)
    assert tree_bytes(tmp_path / "dask") == tree_bytes(tmp_path / "on")


def test_a_plugin_filter_from_an_entry_point_rejects_end_to_end(manifest: Path, tmp_path: Path,
                                                               plugin: str) -> None:
    assert plugin in available()
    summary = _build(manifest, tmp_path / "loud",
                     {"enabled": [plugin], "options": {plugin: {"max_peak": 0.3}}})
    # the plain and offset clips peak above 0.3, the clip at 0.25 gain does not
    assert _input_reasons(tmp_path / "loud") == {
        "plain0": "loud/too_loud", "offset1": "loud/too_loud", "plain2": "loud/too_loud"}
    assert summary["kept"] == 1 and summary["reasons"] == {"loud/too_loud": 3}
    assert "loud/too_loud" in format_summary(summary)
    assert "loud/too_loud" in render_report([tmp_path / "loud"])
    assert "| loud | yes | windows whose peak is above max_peak (max_peak 0.3) |" in (
        tmp_path / "loud" / "README.md").read_text()


@pytest.mark.parametrize(("filters", "message"), [
    ({"enabled": ["hum"]}, "filters.enabled names unknown filter(s): hum"),
    ({"enabled": ["dc_offset"], "options": {"hum": {}}}, "options set for filter(s) not enabled"),
    ({"enabled": ["dc_offset"], "options": {"dc_offset": {"max_db": 3}}},
     "filters.options.dc_offset"),
])
def test_bad_filter_settings_stop_the_build_before_any_work(manifest: Path, tmp_path: Path,
                                                            filters: dict, message: str) -> None:
    with pytest.raises(UalmError) as caught:
        _build(manifest, tmp_path / "out", filters)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not list((tmp_path / "out" / "_work").glob("done/*"))


def test_a_default_config_hashes_as_before_the_section() -> None:
    # measured on the commit before it; resolved as a build of up to 1,024 inputs resolves it
    assert resolved_for(BuildConfig(), 1024).hash() == "aa9dfb8d9538aba8"
    assert BuildConfig.from_dict({"filters": {"enabled": ["dc_offset"]}}).hash() != (
        BuildConfig().hash())

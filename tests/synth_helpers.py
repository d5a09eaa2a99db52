"""Small tokenized corpora for the synth tests (random codec, a few seconds to build)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ualm.audio.encode import write_audio
from ualm.audio.events import SAMPLE_RATE, make_event_world, render
from ualm.config import BuildConfig
from ualm.pipelines.build import build_corpus

EVENTS = ("a low tone", "white noise", "a click train")
CONFIG = BuildConfig.from_dict({"shards": {"max_samples": 8}, "tokenize": {"codec": "random"}})


def event_corpus(root: Path) -> Path:
    """18 clips (9 classes of the event world, a generation and an understanding clip each)
    and 2 text rows, tokenized."""
    world = make_event_world(root / "world", per_class=1, heldout_per_class=0, seconds=1.0,
                             events=EVENTS, text_rows=2, seed=5)
    return build_corpus([world.manifests["train"]], root / "corpus", CONFIG, engine="local",
                        progress=False).corpus


def captioned_corpus(root: Path, tails: Sequence[str]) -> Path:
    """One 1.2 s clip per tail: two events of the world in sequence, captioned "A then B" and
    the tail (so each caption is its own), tokenized. Clip i is `clip{i:02d}`."""
    rng = np.random.default_rng(3)
    lines = []
    for i, tail in enumerate(tails):
        events = (EVENTS[i % len(EVENTS)], EVENTS[(i + 1) % len(EVENTS)])
        path = root / "clips" / f"clip{i:02d}.flac"
        write_audio(path, render(events, 1.2, rng), SAMPLE_RATE, "flac")
        lines.append(json.dumps({"id": f"clip{i:02d}", "path": str(path), "source": "scripted",
                                 "caption": f"{events[0]} then {events[1]} {tail}"}))
    manifest = root / "clips.jsonl"
    manifest.write_text("".join(line + "\n" for line in lines))
    return build_corpus([manifest], root / "corpus", CONFIG, engine="local",
                        allow_roots=[root], progress=False).corpus


def copy_corpus(corpus: Path, to: Path) -> Path:
    shutil.copytree(corpus, to)
    return to


def published(root: Path, folders: Sequence[str] = ("traces", "pairs", "manifests/traces",
                                                    "manifests/pairs", "synth")) -> dict:
    """Bytes of everything synthesis wrote, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()}

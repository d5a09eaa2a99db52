"""The event world: deterministic, distinct clips, UALM-format understanding rows, a held-out
split, and sounds that differ where their names say they do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ualm.audio.events import (
    EVENTS,
    SAMPLE_RATE,
    event_classes,
    make_event_world,
    multiple_choice,
    render,
)
from ualm.inputs.rows import normalise_row

SMALL = {"per_class": 1, "heldout_per_class": 1, "events": ("a low tone", "white noise",
                                                              "a rising chirp"), "text_rows": 3}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path: Path) -> None:
    a = make_event_world(tmp_path / "a", seed=3, **SMALL)
    b = make_event_world(tmp_path / "b", seed=3, **SMALL)
    c = make_event_world(tmp_path / "c", seed=4, **SMALL)
    assert _tree(a.root) == _tree(b.root)
    first = a.clips["train"][0].path
    assert (a.root / first).read_bytes() != (c.root / first).read_bytes()


def test_world_rows_and_splits(tmp_path: Path) -> None:
    world = make_event_world(tmp_path, seed=0, **SMALL)
    classes = event_classes(SMALL["events"])
    assert len(classes) == 3 + 6
    rows = [json.loads(line) for line in world.manifests["train"].read_text().splitlines()]
    generation = [r for r in rows if r.get("task") == "generation"]
    understanding = [r for r in rows if "sound" in r]
    text = [r for r in rows if "messages" in r]
    assert (len(generation), len(understanding), len(text)) == (9, 9, 3)
    # UALM's understanding format, read by the project's own row normaliser
    row = understanding[0]
    assert set(row) >= {"id", "sound", "duration", "conversations"}
    assert [t["from"] for t in row["conversations"]] == ["human", "gpt"]
    assert row["conversations"][0]["value"].startswith("<sound>\n")
    fields = normalise_row(row, "x")
    assert fields["task"] == "understanding"
    assert json.loads(fields["extra"])["conversations"] == row["conversations"]
    # held-out clips are other files of the same classes
    heldout = {c.label for c in world.clips["heldout"]}
    assert heldout == {" > ".join(c) for c in classes}
    train_paths = {c.path for c in world.clips["train"]}
    assert not train_paths & {c.path for c in world.clips["heldout"]}
    # each clip's file: 24 kHz mono, 1.2 s
    audio, rate = sf.read(world.root / world.clips["heldout"][0].path)
    assert rate == SAMPLE_RATE and audio.shape == (int(1.2 * SAMPLE_RATE),)


def test_answers_are_among_the_options_and_the_truth(tmp_path: Path) -> None:
    world = make_event_world(tmp_path, seed=1, **SMALL)
    asked = [c for c in world.clips["train"] if c.question]
    assert asked
    for clip in asked:
        assert f") {clip.answer}" in clip.question  # one of the lettered options
        assert clip.answer == (clip.events[0] if clip.kind == "first" else clip.events[-1])
    rng = np.random.default_rng(0)
    text, right = multiple_choice("white noise", list(EVENTS), rng, "Which?")
    assert text.count("(") == 4 and right == "white noise" and ") white noise" in text


def test_events_sound_like_their_names() -> None:
    rng = np.random.default_rng(0)

    def centroid(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x))
        return float((spectrum * np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)).sum() / spectrum.sum())

    low, high = render(("a low tone",), 1.0, rng), render(("a high tone",), 1.0, rng)
    assert centroid(low) < 300 < 1500 < centroid(high)
    white, brown = render(("white noise",), 1.0, rng), render(("brown noise",), 1.0, rng)
    assert centroid(brown) < centroid(white) / 4
    rising = render(("a rising chirp",), 1.0, rng)
    assert centroid(rising[:8000]) < centroid(rising[-8000:])
    falling = render(("a falling chirp",), 1.0, rng)
    assert centroid(falling[:8000]) > centroid(falling[-8000:])
    pair = render(("a low tone", "white noise"), 1.0, rng)
    assert centroid(pair[:9000]) < 600 and centroid(pair[-9000:]) > 3000
    clicks = render(("a click train",), 1.0, rng)
    assert (np.abs(clicks) > 0.01).mean() < 0.2  # mostly silence between clicks
    for clip in (low, white, rising, pair, clicks):
        assert clip.dtype == np.float32 and 0.1 < np.abs(clip).max() <= 0.5


def test_follow_up_questions_ask_the_other_end_and_for_a_description(tmp_path: Path) -> None:
    one = make_event_world(tmp_path / "one", **SMALL, seed=3)
    three = make_event_world(tmp_path / "three", **SMALL, seed=3, questions=3)
    audio = {k: v for k, v in _tree(one.root).items() if k.endswith(".flac")}
    assert audio == {k: v for k, v in _tree(three.root).items() if k.endswith(".flac")}
    rows = {split: [json.loads(line) for line in three.manifests[split].read_text().splitlines()]
            for split in ("train", "heldout")}
    clips = {c.id: c for c in three.clips["train"]}
    asked = [r for r in rows["train"] if r.get("conversations")]
    assert asked and all(len(r["conversations"]) == 6 for r in asked)
    for row in asked:
        clip = clips[row["id"]]
        questions = [t["value"] for t in row["conversations"][0::2]]
        answers = [t["value"] for t in row["conversations"][1::2]]
        ends = {"first": clip.events[0], "last": clip.events[-1]}
        assert questions[0].startswith("<sound>\n") and "<sound>" not in "".join(questions[1:])
        other = "last" if clip.kind == "first" else "first"
        assert f"comes {other}?" in questions[1] and answers[1] == ends[other]
        assert (questions[2], answers[2]) == ("Describe the audio.", clip.caption)
    # held-out clips keep one question: the proof scores exactly that one
    assert all(len(r["conversations"]) == 2 for r in rows["heldout"] if r.get("conversations"))

"""The event world: clips built from a small vocabulary of sound events, with captions and
questions, for proving that a trained model learned something.

A clip is one or two events in sequence ("a high tone followed by white noise"). Each event is a
named, recognisable sound: tones at named pitches, noise of named colours, a click train, rising
and falling chirps. Every clip is its own realisation (phases, levels, pitch jitter, noise), so no
two files are equal and exact dedup keeps them all.

`make_event_world` writes FLAC clips and one JSONL manifest per split: generation rows (our own
format, with the caption) and understanding rows in UALM's format (`id, sound, duration,
conversations`), plus a few text-only chat rows. The same seed gives the same bytes.

>>> import tempfile
>>> world = make_event_world(tempfile.mkdtemp(), per_class=1, heldout_per_class=1, seed=0)
>>> sorted(world.manifests)
['heldout', 'train']
>>> len(world.classes) == len(EVENTS) + len(EVENTS) * (len(EVENTS) - 1)
True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ualm.audio.encode import write_audio

SAMPLE_RATE = 24_000
"""What the EnCodec 24 kHz codec expects, so the build never resamples."""


def _tone(freq: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def make(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = freq * 2 ** rng.uniform(-0.08, 0.08)  # about a semitone of jitter
        return np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return make


def _noise(colour: str) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]

    def make(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.fft.rfftfreq(len(t), 1 / SAMPLE_RATE)
        spectrum[1:] /= freqs[1:] ** exponent  # power ~ 1/f^(2 * exponent)
        spectrum[0] = 0
        x = np.fft.irfft(spectrum, len(t))
        return x / (np.abs(x).max() + 1e-9)
    return make


def _clicks(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = rng.uniform(9, 13)  # clicks per second
    x = np.zeros(len(t))
    width = int(0.004 * SAMPLE_RATE)
    start = int(rng.uniform(0, SAMPLE_RATE / rate))
    for at in range(start, len(t), int(SAMPLE_RATE / rate)):
        part = x[at : at + width]
        part += np.hanning(2 * width)[width : width + len(part)] * rng.choice((-1, 1))
    return x


def _chirp(f0: float, f1: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def make(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a, b = (f * 2 ** rng.uniform(-0.1, 0.1) for f in (f0, f1))
        span = max(t[-1] - t[0], 1e-6)
        freq = a * (b / a) ** ((t - t[0]) / span)  # exponential sweep
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        return np.sin(phase + rng.uniform(0, 2 * np.pi))
    return make


EVENTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "a low tone": _tone(220.0),
    "a high tone": _tone(1760.0),
    "white noise": _noise("white"),
    "brown noise": _noise("brown"),
    "a click train": _clicks,
    "a rising chirp": _chirp(300.0, 3000.0),
    "a falling chirp": _chirp(3000.0, 300.0),
}
"""Event name (as captions say it) -> synthesiser of one occurrence over times `t`."""

CAPTION_TEMPLATES = ("{a} followed by {b}", "{a}, then {b}", "first {a}, then {b}")
SINGLE_TEMPLATES = ("{a}", "{a} alone", "just {a}")
QUESTIONS = {
    "first": "Which sound comes first?",
    "last": "Which sound comes last?",
}
DESCRIBE = "Describe the audio."


@dataclass(frozen=True)
class EventClip:
    id: str
    path: str
    """Relative to the world's root."""
    events: tuple[str, ...]
    caption: str
    question: str | None = None
    answer: str | None = None
    kind: str | None = None
    """`first` or `last` for understanding clips (which event the question asks about)."""

    @property
    def label(self) -> str:
        """The clip's class: its events in order."""
        return " > ".join(self.events)


@dataclass
class EventWorld:
    root: Path
    classes: list[tuple[str, ...]]
    clips: dict[str, list[EventClip]] = field(default_factory=dict)
    """Split -> clips (generation and understanding)."""
    manifests: dict[str, Path] = field(default_factory=dict)
    """Split -> JSONL manifest."""


def event_classes(events: Sequence[str] = tuple(EVENTS), max_steps: int = 2) -> list[tuple[str, ...]]:
    """Every single event, then (with max_steps 2) every ordered pair of different events."""
    classes = [(e,) for e in events]
    if max_steps >= 2:
        classes += [(a, b) for a in events for b in events if a != b]
    return classes


def caption_for(events: Sequence[str], template: int = 0) -> str:
    if len(events) == 1:
        return SINGLE_TEMPLATES[template % len(SINGLE_TEMPLATES)].format(a=events[0])
    return CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)].format(a=events[0], b=events[1])


def render(events: Sequence[str], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """float32 mono at SAMPLE_RATE: the events back to back (boundary jittered by up to 5 %),
    each at its own level, with short fades so steps do not click."""
    n = round(seconds * SAMPLE_RATE)
    bounds = [0, n]
    if len(events) == 2:
        bounds = [0, int(n * rng.uniform(0.45, 0.55)), n]
    out = np.zeros(n)
    for k, event in enumerate(events):
        a, b = bounds[k], bounds[k + 1]
        t = np.arange(a, b) / SAMPLE_RATE
        part = EVENTS[event](t, rng) * rng.uniform(0.25, 0.5)
        fade = min(240, (b - a) // 4)
        ramp = np.linspace(0, 1, fade)
        part[:fade] *= ramp
        part[len(part) - fade :] *= ramp[::-1]
        out[a:b] = part
    return out.astype(np.float32)


def multiple_choice(answer: str, events: Sequence[str], rng: np.random.Generator,
                    question: str) -> tuple[str, str]:
    """A question with four lettered options (one right; fewer when the vocabulary is smaller),
    and its answer: the right option's text (`white noise`), as answer matching by option text
    scores it."""
    others = [e for e in events if e != answer]
    picked = rng.choice(len(others), min(3, len(others)), replace=False)
    options = [answer, *(others[int(i)] for i in picked)]
    order = rng.permutation(len(options))
    options = [options[int(i)] for i in order]
    text = question + " " + " ".join(f"({'ABCD'[i]}) {o}" for i, o in enumerate(options))
    return text, answer


def make_event_world(
    root: str | Path,
    per_class: int = 4,
    heldout_per_class: int = 1,
    understanding_per_class: int | None = None,
    seconds: float = 1.2,
    seed: int = 0,
    events: Sequence[str] = tuple(EVENTS),
    max_steps: int = 2,
    text_rows: int = 8,
    questions: int = 1,
) -> EventWorld:
    """Writes the world: per class, `per_class` generation clips and `understanding_per_class`
    (default: the same) understanding clips for training, and `heldout_per_class` of each for the
    held-out split. Understanding questions are multiple choice (4 options, chance 25 %) about
    the first or the last event; with `questions` > 1 each training clip's conversation asks
    that many (the other end next, then a description), so that the question, not only the
    clip, decides the answer.
    Extra questions draw from their own generator: the audio is the same whatever `questions`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)  # a world of held-out clips only writes no train audio
    rng = np.random.default_rng([seed, 0xE7E27])
    classes = event_classes(events, max_steps)
    und_per_class = per_class if understanding_per_class is None else understanding_per_class
    world = EventWorld(root, classes)
    plan = {"train": (per_class, und_per_class), "heldout": (heldout_per_class, heldout_per_class)}
    for split, (n_gen, n_und) in plan.items():
        clips: list[EventClip] = []
        lines: list[str] = []
        for c, cls in enumerate(classes):
            for i in range(n_gen + n_und):
                clip_id = f"{split}-{'gen' if i < n_gen else 'und'}-{c:03d}-{i:02d}"
                rel = f"{split}/{clip_id}.flac"
                write_audio(root / rel, render(cls, seconds, rng), SAMPLE_RATE, "flac")
                caption = caption_for(cls, int(rng.integers(1 << 16)))
                if i < n_gen:
                    clip = EventClip(clip_id, rel, cls, caption)
                    lines.append(json.dumps({"id": clip_id, "path": rel, "caption": caption,
                                             "task": "generation", "source": "events-gen"}))
                else:
                    kind = ("first", "last")[int(rng.integers(2))]
                    target = cls[0] if kind == "first" else cls[-1]
                    question, answer = multiple_choice(target, events, rng, QUESTIONS[kind])
                    clip = EventClip(clip_id, rel, cls, caption, question, answer, kind)
                    turns = [{"from": "human", "value": f"<sound>\n{question}"},
                             {"from": "gpt", "value": answer}]
                    if split == "train" and questions > 1:
                        turns += _more_questions(cls, caption, kind, questions - 1, events,
                                                 np.random.default_rng([seed, 0x9E57, c, i]))
                    lines.append(json.dumps({
                        "id": clip_id, "sound": rel, "duration": seconds, "caption": caption,
                        "source": "events-und", "conversations": turns}))
                clips.append(clip)
        if split == "train":
            lines += [json.dumps(r) for r in _text_rows(text_rows, rng, events)]
        world.clips[split] = clips
        world.manifests[split] = root / f"{split}.jsonl"
        world.manifests[split].write_text("".join(line + "\n" for line in lines))
    return world


def _more_questions(cls: Sequence[str], caption: str, asked: str, n: int,
                    events: Sequence[str], rng: np.random.Generator) -> list[dict[str, str]]:
    """Follow-up turns about the same clip: the other end, then a description (the caption),
    then first and last again, each with its own options. Asking "first" and "last" of one clip
    makes the question word matter; the description names every event in order."""
    turns = []
    kind = asked
    for k in range(n):
        if k == 1:
            turns += [{"from": "human", "value": DESCRIBE}, {"from": "gpt", "value": caption}]
            continue
        kind = "last" if kind == "first" else "first"
        target = cls[0] if kind == "first" else cls[-1]
        question, answer = multiple_choice(target, events, rng, QUESTIONS[kind])
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return turns


def _text_rows(n: int, rng: np.random.Generator, events: Sequence[str]) -> list[dict]:
    """Text-only chat rows about the vocabulary (task `text`), so corpora carry all three tasks."""
    combos = [(a, b, t) for a in events for b in events if a != b
              for t in range(len(CAPTION_TEMPLATES))]  # distinct rows: dedup keeps them all
    rows = []
    for i, k in enumerate(rng.permutation(len(combos))[:n]):
        a, b, template = combos[int(k)]
        caption = caption_for((a, b), template)
        rows.append({"id": f"text-{i:03d}", "source": "events-text", "messages": [
            {"role": "user", "content": f"In '{caption}', what comes first?"},
            {"role": "assistant", "content": a}]})
    return rows

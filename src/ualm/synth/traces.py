"""Trace jobs (one teacher request, and its repairs, per clip and kind) and the chat samples a
valid reply becomes.

    enrichment  user: prompt            assistant: rich caption, audio0 (the clip)
    dialogue    user/assistant turns    assistant: rich caption, audio0 (the clip)
    reflection  user: the caption       assistant: plan, audio0 (near-miss v1, not a target),
                                                   caption of v1, critique, audio1 (the clip)

Audio parts name their corpus key and a ref (`audio0`, `audio1`); the shard carries the codes as
`<key>.<ref>.npy`. The near-miss v1 is marked `"target": false`: the trainer sees it as context
(what the model heard) and does not learn to produce it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ualm.synth.clips import Clip
from ualm.synth.schema import render_rich_caption
from ualm.synth.teachers import TeacherRequest
from ualm.synth.templates import TEMPLATES

KINDS = ("enrichment", "dialogue", "reflection")
TASK = "reasoning"


@dataclass(frozen=True)
class Job:
    kind: str
    clip: Clip
    v1: Clip | None = None
    """Self-reflection's near-miss."""

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.clip.key}"

    @property
    def source_keys(self) -> list[str]:
        return [self.clip.key] + ([self.v1.key] if self.v1 else [])

    def request(self) -> TeacherRequest:
        clip = self.clip
        variables = {"captions": " | ".join(clip.captions), "seconds": clip.seconds,
                     "tags": ", ".join(clip.tags) or "none",
                     "transcript": clip.transcript or "none",
                     "v1_captions": " | ".join(self.v1.captions) if self.v1 else ""}
        facts = {"key": clip.key, "seconds": clip.seconds, "captions": list(clip.captions),
                 "transcript": clip.transcript,
                 "v1_captions": list(self.v1.captions) if self.v1 else []}
        return TeacherRequest(self.kind, TEMPLATES[self.kind].messages(variables), facts)


def _audio(ref: str, key: str, target: bool = True) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "audio", "ref": ref, "key": key}
    if not target:
        part["target"] = False
    return part


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def trace_messages(job: Job, value: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                             dict[str, Any], dict[str, str]]:
    """(messages, rich caption, ref -> corpus key) of a valid reply."""
    clip = job.clip
    if job.kind == "enrichment":
        rc = value["rich_caption"]
        return ([{"role": "user", "content": value["prompt"]},
                 {"role": "assistant", "content": [_text(render_rich_caption(rc)),
                                                   _audio("audio0", clip.key)]}],
                rc, {"audio0": clip.key})
    if job.kind == "dialogue":
        rc = value["rich_caption"]
        return ([*value["turns"],
                 {"role": "assistant", "content": [_text(render_rich_caption(rc)),
                                                   _audio("audio0", clip.key)]}],
                rc, {"audio0": clip.key})
    assert job.v1 is not None
    rc = value["plan"]
    return ([{"role": "user", "content": clip.captions[0]},
             {"role": "assistant", "content": [
                 _text("Plan: " + render_rich_caption(rc)),
                 _audio("audio0", job.v1.key, target=False),
                 _text("What I hear: " + value["v1_caption"]),
                 _text("Critique: " + value["critique"]),
                 _audio("audio1", clip.key)]}],
            rc, {"audio0": job.v1.key, "audio1": clip.key})


def trace_sample(job: Job, value: dict[str, Any], repaired: bool, teacher: str,
                 params: dict[str, Any], codec_id: str, scorer: str | None
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """(the sample's JSON, ref -> corpus key of its audio)."""
    messages, rc, refs = trace_messages(job, value)
    meta = {"task": TASK, "kind": job.kind, "source": f"synth-{job.kind}",
            "messages": messages, "rich_caption": rc, "teacher": teacher,
            "template_sha256": TEMPLATES[job.kind].sha256, "params": params,
            "source_keys": job.source_keys, "codec_id": codec_id, "repaired": repaired}
    if job.kind == "reflection":
        meta["near_miss_scorer"] = scorer
    return meta, refs

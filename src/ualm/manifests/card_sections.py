"""Facts and body sections of the dataset card: sources with hours and licences, the tasks
present, the filters and their thresholds as configured, the funnel, the blend spec and how to
load the corpus from where it lives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ualm.manifests import names, schema
from ualm.manifests.inspect import manifest_parts
from ualm.manifests.layout import CorpusLayout
from ualm.manifests.score_summary import ScoreHistogram
from ualm.manifests.token_sets import row_task

# Hub task categories for the tasks a corpus serves.
TASK_CATEGORIES = {"generation": "text-to-audio", "understanding": "audio-text-to-text",
                   "text": "text-generation", "reasoning": "text-generation"}
EXTRA_SUBSETS = names.EXTRA_SUBSETS
"""Shard folders written by later stages (reasoning traces, preference pairs)."""


@dataclass(frozen=True)
class CardFacts:
    licences: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)
    """Per source: name, samples, hours, licences."""
    tasks: list[str] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)
    """Extra shard folders present (traces, pairs)."""
    clap: ScoreHistogram | None = None
    """CLAP scores of the kept captions, each input counted once (None: none scored)."""


def card_facts(layout: CorpusLayout) -> CardFacts:
    subsets = [s for s in EXTRA_SUBSETS if layout.has_tree(layout.shard_folder(s), ".tar")]
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"samples": 0, "seconds": 0.0,
                                                          "licences": set()})
    tasks = set()
    clap, last_input = ScoreHistogram(), None
    columns = ["source", "license", "seconds", "task", "modality", "extra", "input_index",
               "clap_scores"]
    for part in manifest_parts(layout, "samples", schema.SAMPLES, columns):  # one part at a time
        for source, licence, seconds, task, modality, extra, index, scores in zip(
                *(part[c] for c in columns), strict=True):
            if scores and index != last_input:  # an input's windows are consecutive
                clap.add(scores)
            last_input = index
            p = per[source]
            p["samples"] += 1
            p["seconds"] += seconds or 0.0
            p["licences"].add((licence or "unknown").lower())
            tasks.add(row_task(task, modality, extra))
    if not per:
        return CardFacts([], subsets=subsets)
    sources = [{"name": name, "samples": p["samples"], "hours": p["seconds"] / 3600,
                "licences": sorted(p["licences"])} for name, p in sorted(per.items())]
    licences = sorted({lic for s in sources for lic in s["licences"]})
    return CardFacts(licences, sources, sorted(tasks), subsets, clap if clap.count else None)


def clap_section(facts: CardFacts) -> str:
    """The distribution of the kept captions' CLAP scores (each clip's captions once)."""
    h = facts.clap
    if h is None:
        return ""
    quantiles = " | ".join(f"{h.quantile(q):.2f}" for q in (0.1, 0.25, 0.5, 0.75, 0.9))
    return "\n".join([
        "## CLAP caption scores", "",
        f"{h.count:,} kept captions carry their CLAP audio-text score (`clap_scores` in "
        "`manifests/samples`, aligned with `captions`).", "",
        "| min | p10 | p25 | median | p75 | p90 | max |", "|---|---|---|---|---|---|---|",
        f"| {h.low:.2f} | {quantiles} | {h.high:.2f} |"]) + "\n"


def sources_section(facts: CardFacts) -> str:
    if not facts.sources:
        return ""
    lines = ["## Sources", "", "| source | samples | hours | licence |", "|---|---|---|---|"]
    lines += [f"| `{s['name']}` | {s['samples']:,} | {s['hours']:.2f} | "
              f"{', '.join(s['licences'])} |" for s in facts.sources]
    return "\n".join(lines) + "\n"


def funnel_section(summary: dict[str, Any]) -> str:
    rows = summary.get("funnel_hours") or []
    if not rows:
        return ""
    lines = ["## Funnel (hours)", "", "| outcome | level | hours | count |", "|---|---|---|---|"]
    for r in rows:
        count = f"{r['count']:,}" if r["count"] is not None else ""
        lines.append(f"| {r['outcome']} | {r['level']} | {r['hours']:.3f} | {count} |")
    return "\n".join(lines) + "\n"


def filters_section(config: dict[str, Any], declared: Sequence[dict[str, Any]] = ()) -> str:
    """Each filter stage as configured: on or off, and the thresholds it applied; then the
    filters switched on by name, as `corpus.json` declares them (description, options)."""
    c = config
    q, seg = c.get("quality", {}), c.get("segment", {})
    rows = [("quality", True, f"min {q.get('min_seconds')} s, silence below "
             f"{q.get('silence_dbfs')} dBFS, at most {q.get('max_clipped_fraction')} clipped "
             f"(level {q.get('clip_level')}), inputs up to {q.get('max_input_seconds')} s"),
            ("segment", True, f"{seg.get('mode')} windows of {seg.get('seconds')} s, "
             f"tails under {seg.get('min_tail_seconds')} s dropped")]
    optional = {
        "loudness": ("enabled", "max peak {max_peak}, normalise to {normalize_lufs} LUFS"),
        "vad": ("enabled", "speech ratio in [{min_speech_ratio}, {max_speech_ratio}], "
                           "threshold {threshold}"),
        "clap": ("model", "caption-audio score >= {threshold}, top {top_k} captions"),
        "whisper": ("model", "languages {keep_languages}, min probability {min_probability}"),
        "captions": ("enabled", "{min_words}-{max_words} words, low-quality words dropped"),
        "near_dedup": ("enabled", "fingerprint bit error <= {max_bit_error}"),
        "caption_dedup": ("enabled", "caption MinHash similarity >= {threshold}, at most "
                                     "{max_clips_per_group} clips per group"),
    }
    for name, (switch, text) in optional.items():
        section = c.get(name) or {}
        on = bool(section.get(switch))
        rows.append((name, on, text.format_map(defaultdict(str, section)) if on else ""))
    options = (c.get("filters") or {}).get("options") or {}
    for f in declared:
        settings = ", ".join(f"{k} {v}" for k, v in sorted((options.get(f["name"]) or {}).items()))
        rows.append((f["name"], True, f"{f['description']}"
                                      + (f" ({settings})" if settings else "")))
    lines = ["## Filters and thresholds", "", "| stage | on | settings |", "|---|---|---|"]
    lines += [f"| {n} | {'yes' if on else 'no'} | {text} |" for n, on, text in rows]
    return "\n".join(lines) + "\n"


def decontam_section(corpus: dict[str, Any]) -> str:
    """The evaluation sets the corpus was checked against, and what the check removed."""
    facts = corpus.get("decontamination")
    if not facts:
        return ""
    rejected = facts["rejected"]
    lines = ["## Evaluation decontamination", "",
             f"Checked against {len(facts['eval_sets'])} evaluation set(s): "
             f"{rejected.get('decontam/eval_audio', 0):,} inputs rejected whose audio copies an "
             f"evaluation clip (`decontam/eval_audio`), "
             f"{rejected.get('decontam/eval_caption', 0):,} whose every caption copies an "
             f"evaluation caption (`decontam/eval_caption`), and "
             f"{facts['captions_dropped']:,} copied captions dropped from inputs kept.", "",
             "| evaluation set | path | clips | fingerprinted | captions | unreadable | digest |",
             "|---|---|---|---|---|---|---|"]
    for s in facts["eval_sets"]:
        lines.append(f"| `{s['name']}` | `{s['path']}` | {s['clips']:,} | {s['fingerprinted']:,} "
                     f"| {s['captions']:,} | {s['unreadable']:,} | `{s['digest']}` |")
    return "\n".join(lines) + "\n\n"


def random_codec_banner(corpus: dict[str, Any]) -> str:
    """A loud warning at the top of the card when any token set comes from a random codec."""
    random = [cid for cid, t in (corpus.get("tokens") or {}).items() if t.get("random_weights")]
    if not random:
        return ""
    ids = ", ".join(f"`{c}`" for c in random)
    return ("> [!WARNING]\n"
            f"> **RANDOM CODEC — NOT FOR TRAINING.** The token set(s) {ids} were made with a "
            "RANDOMLY INITIALISED codec: the tokens carry no real audio information and decode "
            "to noise. Use them for tests and demos only; tokenize again with real EnCodec "
            "weights (`ualm tokenize CORPUS --codec PATH`) before training.\n\n")


def blend_section(blend: dict[str, Any] | None) -> str:
    if not blend:
        return ""
    lines = ["## Blend spec", "", f"`blend.yaml`: {blend.get('budget_tokens', 0):,} tokens "
             f"planned, targets {blend.get('targets')}.", "",
             "| source | task | weight | tokens | expected epochs |", "|---|---|---|---|---|"]
    for s in blend.get("sources", []):
        lines.append(f"| `{s['name']}` | {s['task']} | {s['weight']:.3f} | {s['tokens']:,} | "
                     f"{s.get('expected_epochs', 0):.2f} |")
    return "\n".join(lines) + "\n"


def loading_section(url: str | None, shards: int, configs: list[str], blend: bool) -> str:
    """How to read the corpus where it is published (or, before publishing, from its folder)."""
    where = url or "CORPUS"
    last = f"{max(shards - 1, 0):06d}"
    if url and url.startswith("hf://datasets/"):
        repo, _, revision = url[len("hf://datasets/"):].partition("@")
        wds_url = (f"https://huggingface.co/datasets/{repo}/resolve/{revision or 'main'}/audio/"
                   f"audio-{{000000..{last}}}.tar")
        at = f', revision="{revision}"' if revision else ""
        datasets_call = f'load_dataset("{repo}", "audio", split="train", streaming=True{at})'
    else:
        wds_url = f"{where}/audio/audio-{{000000..{last}}}.tar"
        datasets_call = (f'load_dataset("webdataset", data_files={{"train": "{where}/audio/*.tar"}}, '
                         'split="train", streaming=True)')
    subsets = ", ".join(f"`{c}`" for c in configs)
    return f"""## Loading

With `webdataset`:

```python
import webdataset as wds
ds = wds.WebDataset("{wds_url}").decode()
```

With Hugging Face `datasets` (configs: {subsets}):

```python
from datasets import load_dataset
ds = {datasets_call}
```

Training with `ualm` (token shards are streamed; nothing is downloaded first):

```bash
ualm inspect {where}
ualm train {where} --config tiny --out runs/first{' --blend blend.yaml' if blend else ''}
```
"""

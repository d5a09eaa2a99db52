"""The corpus's dataset card: a README.md with the YAML header the Hugging Face Hub reads
(licences aggregated over the sources, task categories, size, configs pointing at the audio,
text, token, trace and pair shards) and the corpus's numbers in its body (sources, hours,
funnel, filters, codec, blend, how to load it). `ualm publish` renders it again with the
destination's URL and the blend spec it publishes."""

from __future__ import annotations

from typing import Any

import yaml

from ualm.manifests.card_sections import (
    TASK_CATEGORIES,
    CardFacts,
    blend_section,
    card_facts,
    clap_section,
    decontam_section,
    filters_section,
    funnel_section,
    loading_section,
    random_codec_banner,
    sources_section,
)
from ualm.manifests.layout import CorpusLayout

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]


def _configs(corpus: dict[str, Any], summary: dict[str, Any], facts: CardFacts) -> list[dict]:
    """The Hub's `configs`: one per subset (audio, text, each token set, traces, pairs)."""
    configs = []
    if summary["shards"]:
        configs.append({"config_name": "audio", "data_files": [{"split": "train", "path": "audio/*.tar"}],
                        "default": True})
    if summary["text_shards"]:
        configs.append({"config_name": "text", "data_files": [{"split": "train", "path": "text/*.tar"}]})
    for codec_id in corpus.get("tokens", {}):
        configs.append({"config_name": f"tokens-{codec_id}",
                        "data_files": [{"split": "train", "path": f"tokens/{codec_id}/*.tar"}]})
    for subset in facts.subsets:
        configs.append({"config_name": subset,
                        "data_files": [{"split": "train", "path": f"{subset}/**/*.tar"}]})
    return configs


def render_card(corpus: dict[str, Any], summary: dict[str, Any], facts: CardFacts,
                url: str | None = None, blend: dict[str, Any] | None = None) -> str:
    """The card of a corpus; `url` is where it is published (for the loading examples) and
    `blend` the blend spec published with it."""
    licences = facts.licences
    size = next((label for bound, label in _SIZES if summary["samples"] < bound), "n>10M")
    configs = _configs(corpus, summary, facts)
    categories = sorted({TASK_CATEGORIES[t] for t in facts.tasks if t in TASK_CATEGORIES})
    header = {
        "license": licences[0] if len(licences) == 1 else "other",
        "license_name": "multiple" if len(licences) > 1 else None,
        "license_details": ", ".join(licences) if len(licences) > 1 else None,
        "task_categories": categories or ["text-to-audio"],
        "size_categories": [size],
        "tags": ["audio", "webdataset", "ualm"],
        "configs": configs,
    }
    header = {k: v for k, v in header.items() if v is not None}
    reasons = "\n".join(f"| `{r}` | {n:,} |" for r, n in summary["reasons"].items()) or "| none | 0 |"
    body = f"""{random_codec_banner(corpus)}# UALM corpus

Built with `ualm` {corpus['ualm_version']} (config `{corpus['config_hash']}`).

| | |
|---|---|
| inputs | {summary['inputs']:,} |
| kept | {summary['kept']:,} |
| rejected | {summary['rejected']:,} |
| duplicates | {summary['duplicates']:,} |
| samples | {summary['samples']:,} |
| hours | {summary['hours']:.2f} |
| audio shards | {summary['shards']} |
| sample rate | {corpus['config']['audio']['sample_rate']} Hz, mono, FLAC |
| tasks | {', '.join(facts.tasks) or 'none'} |
| licences | {', '.join(licences) or 'unknown'} |

{sources_section(facts)}
{funnel_section(summary)}
## Rejected inputs by reason

| reason | inputs |
|---|---|
{reasons}

{filters_section(corpus['config'], corpus.get('filters', ()))}
{clap_section(facts)}
{decontam_section(corpus)}{_tokens_section(corpus)}
{blend_section(blend)}
{loading_section(url, summary['shards'], [c['config_name'] for c in configs], bool(blend))}
Manifests (`manifests/samples`, `manifests/rejects`, `manifests/duplicates`, and
`manifests/tokens`, `manifests/traces`, `manifests/pairs` where present) are parquet folders
that pandas, polars and duckdb read directly.
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body


def _tokens_section(corpus: dict[str, Any]) -> str:
    tokens = corpus.get("tokens", {})
    if not tokens:
        return ""
    lines = ["## Codec tokens", "",
             "| codec id | bandwidth | codebooks x frames/s | samples | tokens | bytes vs audio |",
             "|---|---|---|---|---|---|"]
    warnings = []
    for codec_id, t in tokens.items():
        lines.append(f"| `{codec_id}` | {t['bandwidth']:g} kbps | {t['codebooks']} x "
                     f"{t['frame_rate']:g} | {t['samples']:,} | {t['tokens']:,} | "
                     f"{t['token_to_audio_bytes']:.3f} |")
        if t["random_weights"]:
            warnings.append(f"> **Warning:** `{codec_id}` is a RANDOMLY INITIALISED codec (seed "
                            f"{t['seed']}): its tokens are for tests and demos only, and decode "
                            "to noise. Tokenize again with real EnCodec weights before training.")
    return "\n".join([*lines, "", *warnings, ""]) + "\n"


def write_card(layout: CorpusLayout, corpus: dict[str, Any], summary: dict[str, Any]) -> None:
    card = render_card(corpus, summary, card_facts(layout))
    layout.write_bytes(layout.card, card.encode())

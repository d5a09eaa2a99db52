"""The corpus's dataset card: a README.md with the YAML header the Hugging Face Hub reads
(licences, size, configs pointing at the shards) and the corpus's numbers in its body."""

from __future__ import annotations

from typing import Any

import pyarrow.dataset as ds
import yaml

from ualm.manifests import schema
from ualm.manifests.layout import CorpusLayout, atomic_write_bytes

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]


def _licences(layout: CorpusLayout) -> list[str]:
    folder = layout.root / "manifests" / "samples"
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    if not files:
        return []
    table = ds.dataset(files, format="parquet", schema=schema.SAMPLES).to_table(columns=["license"])
    return sorted({(v or "unknown").lower() for v in table.column("license").to_pylist()})


def render_card(corpus: dict[str, Any], summary: dict[str, Any], licences: list[str]) -> str:
    size = next((label for bound, label in _SIZES if summary["samples"] < bound), "n>10M")
    configs = []
    if summary["shards"]:
        configs.append({"config_name": "audio", "data_files": [{"split": "train", "path": "audio/*.tar"}],
                        "default": True})
    if summary["text_shards"]:
        configs.append({"config_name": "text", "data_files": [{"split": "train", "path": "text/*.tar"}]})
    for codec_id in corpus.get("tokens", {}):
        configs.append({"config_name": f"tokens-{codec_id}",
                        "data_files": [{"split": "train", "path": f"tokens/{codec_id}/*.tar"}]})
    header = {
        "license": licences[0] if len(licences) == 1 else "other",
        "license_details": ", ".join(licences) if len(licences) > 1 else None,
        "task_categories": ["text-to-audio", "audio-to-audio", "automatic-speech-recognition"],
        "size_categories": [size],
        "tags": ["audio", "webdataset", "ualm"],
        "configs": configs,
    }
    header = {k: v for k, v in header.items() if v is not None}
    reasons = "\n".join(f"| `{r}` | {n:,} |" for r, n in summary["reasons"].items()) or "| none | 0 |"
    body = f"""# UALM corpus

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
| licences | {', '.join(licences) or 'unknown'} |

## Rejected inputs by reason

| reason | inputs |
|---|---|
{reasons}

## Loading

```python
import webdataset as wds
ds = wds.WebDataset("audio/audio-{{000000..{max(summary['shards'] - 1, 0):06d}}}.tar").decode()

from datasets import load_dataset
ds = load_dataset("webdataset", data_files={{"train": "audio/*.tar"}}, split="train")
```

{_tokens_section(corpus)}
Manifests (`manifests/samples`, `manifests/rejects`, `manifests/duplicates`) are parquet folders
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
    card = render_card(corpus, summary, _licences(layout))
    atomic_write_bytes(layout.root / "README.md", card.encode())

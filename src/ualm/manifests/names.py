"""The name of every file in a corpus, relative to its root: the one place that spells them.

    corpus.json                          written last: its presence means the corpus is complete
    README.md                            dataset card
    audio/audio-000000.tar               WebDataset shards: <key>.flac + <key>.json
    text/text-000000.tar                 text-only samples: <key>.json
    tokens/<codec id>/tokens-000000.tar  codec tokens: <key>.npy (int16 [codebooks, frames])
    traces/, pairs/                      synthesized reasoning traces and preference pairs
    manifests/samples/<modality>-*.parquet    kept samples, one part per shard
    manifests/rejects/part-*.parquet          rejected inputs and dropped windows, one per unit
    manifests/duplicates/*.parquet            duplicate inputs (exact, near, caption)
    manifests/tokens/<codec id>/part-*.parquet  token rows, one part per token shard
    manifests/traces/, manifests/pairs/       their rows
    synth/                               synthesis funnel, rejects and duplicates
    _work/                               unit outputs, completion records, run log (internal)

>>> audio_shard(3), tokens_part("encodec-24k", 3)
('audio/audio-000003.tar', 'manifests/tokens/encodec-24k/part-000003.parquet')
>>> shard_index("audio/audio-000003.tar")
3
"""

from __future__ import annotations

CORPUS_FILE = "corpus.json"
CARD = "README.md"
WORK = "_work"
MANIFESTS = "manifests"
SAMPLES = f"{MANIFESTS}/samples"
REJECTS = f"{MANIFESTS}/rejects"
DUPLICATES = f"{MANIFESTS}/duplicates"
TOKENS = "tokens"
AUDIO, TEXT = "audio", "text"
EXTRA_SUBSETS = ("traces", "pairs")
"""Shard folders that synthesis adds beside audio and text."""
SYNTH = "synth"
SYNTH_FUNNEL = f"{SYNTH}/funnel.json"
SYNTH_FUNNEL_PLOT = f"{SYNTH}/funnel.png"
SYNTH_REJECTS = f"{SYNTH}/rejects.parquet"
SYNTH_DUPLICATES = f"{SYNTH}/duplicates.parquet"
SYNTH_CACHE = f"{WORK}/{SYNTH}/cache"
SYNTH_RUNS_LOG = f"{WORK}/{SYNTH}/runs.jsonl"
PLAN = f"{WORK}/plan.json"
RUNS_LOG = f"{WORK}/runs.jsonl"
DONE = f"{WORK}/done"
FAULTS = f"{WORK}/faults"
PUBLISH_HASHES = f"{WORK}/publish-hashes.json"
NEAR_DECISIONS = f"{WORK}/near-dedup/decisions.parquet"
CAPTION_DECISIONS = f"{WORK}/caption-dedup/decisions.parquet"
CAPTION_GROUPS = f"{WORK}/caption-dedup/groups.parquet"
DECONTAM = f"{WORK}/decontam"
EVAL_AUDIO = f"{DECONTAM}/eval-audio.parquet"
EVAL_CAPTIONS = f"{DECONTAM}/eval-captions.parquet"
EVAL_SETS = f"{DECONTAM}/eval-sets.json"
NEAR_DUPLICATES = f"{DUPLICATES}/near-000000.parquet"
CAPTION_DUPLICATES = f"{DUPLICATES}/captions-000000.parquet"


def done_record(stage: str, index: int) -> str:
    return f"{DONE}/{stage}-{index:06d}.json"


def unit_records(unit: int) -> str:
    """A unit's input records that the driver listed (CSV manifests and sources; JSON lines)."""
    return f"{WORK}/listing/unit-{unit:06d}.jsonl"


def id_renames_bucket(bucket: int) -> str:
    """The ids one bucket of the id reduce renamed (JSON lines, in input order)."""
    return f"{WORK}/ids/bucket-{bucket:04d}.jsonl"


def unit_renames(unit: int) -> str:
    """The renamed ids of one unit's inputs, for its ingest worker (JSON lines)."""
    return f"{WORK}/ids/unit-{unit:06d}.jsonl"


def unit_file(unit: int, kind: str) -> str:
    """A unit's ingest output: `inputs`, `segments` or `payload`."""
    return f"{WORK}/ingest/unit-{unit:06d}.{kind}.parquet"


def dedup_bucket(bucket: int) -> str:
    return f"{WORK}/dedup/bucket-{bucket:04d}.parquet"


def near_edges(bucket: int) -> str:
    return f"{WORK}/near-dedup/edges-{bucket:04d}.parquet"


def caption_edges(bucket: int) -> str:
    return f"{WORK}/caption-dedup/edges-{bucket:04d}.parquet"


def rejects_part(unit: int) -> str:
    return f"{REJECTS}/part-{unit:06d}.parquet"


def decontam_decisions(unit: int) -> str:
    return f"{DECONTAM}/decisions-{unit:06d}.parquet"


def decontam_rejects(unit: int) -> str:
    """A unit's decontamination rejects, beside its ingest rejects in the same folder."""
    return f"{REJECTS}/decontam-{unit:06d}.parquet"


def duplicates_part(bucket: int) -> str:
    return f"{DUPLICATES}/part-{bucket:06d}.parquet"


def samples_part(modality: str, shard: int) -> str:
    return f"{SAMPLES}/{modality}-{shard:06d}.parquet"


def shard(modality: str, index: int) -> str:
    """An audio or text shard (and, by the same rule, a traces or pairs one)."""
    return f"{modality}/{modality}-{index:06d}.tar"


def audio_shard(index: int) -> str:
    return shard(AUDIO, index)


def text_shard(index: int) -> str:
    return shard(TEXT, index)


def token_folder(codec_id: str) -> str:
    return f"{TOKENS}/{codec_id}"


def token_shard(codec_id: str, index: int) -> str:
    return f"{TOKENS}/{codec_id}/tokens-{index:06d}.tar"


def manifest_folder(kind: str) -> str:
    """`samples`, `rejects`, `duplicates`, `traces`, `pairs` or `tokens/<codec id>`."""
    return f"{MANIFESTS}/{kind}"


def tokens_manifests(codec_id: str) -> str:
    return manifest_folder(f"tokens/{codec_id}")


def tokens_part(codec_id: str, index: int) -> str:
    return f"{tokens_manifests(codec_id)}/part-{index:06d}.parquet"


def part(kind: str, index: int) -> str:
    """A numbered part of a manifest folder (`traces`, `pairs`, ...)."""
    return f"{manifest_folder(kind)}/part-{index:06d}.parquet"


def token_stage(codec_id: str) -> str:
    """The stage name of a token set's completion records (`_work/done/tokens-<id>-*.json`)."""
    return f"tokens-{codec_id}"


def shard_prefix(modality: str) -> str:
    return f"{modality}-"


def shard_index(name: str) -> int:
    """The number of a shard or part from its name: `.../audio-000003.tar` -> 3."""
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem.rsplit("-", 1)[1])

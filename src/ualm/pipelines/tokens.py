"""`ualm tokenize`: token shards for every audio shard of a finished corpus, with one codec.

Checks everything that can be wrong before any work (codec, weights, bandwidth, sample rate),
then maps shards on an engine, then records the token set in corpus.json and the dataset card.
A second codec adds a second token set beside the first; rerunning with the same codec finds
every shard complete and does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ualm.config import TokenizeConfig
from ualm.engines import Engine, make_engine
from ualm.errors import UalmError
from ualm.manifests.card import write_card
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout, atomic_write_json, read_done
from ualm.pipelines.stages import run_pending
from ualm.tokenize.stage import (
    _WORKER_CODECS,
    CodecSpec,
    TokenizeTask,
    run_tokenize_shard,
    stage_name,
)


def tokenize_corpus(
    corpus: str | Path,
    config: TokenizeConfig | None = None,
    *,
    engine: str | Engine = "dask",
    scheduler: str | None = None,
    workers: int | None = None,
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenizes (or resumes tokenizing) a corpus; returns the token set's record."""
    config = config or TokenizeConfig()
    layout = CorpusLayout(corpus)
    if not layout.corpus_file.is_file():
        raise UalmError(f"{layout.root} is not a complete ualm corpus (no corpus.json)",
                        fix="run `ualm build` first")
    meta = json.loads(layout.corpus_file.read_text())
    spec = CodecSpec(config.codec, config.bandwidth, config.seed, config.device, config.batch_size)
    codec = _load_checked(spec, meta["config"]["audio"]["sample_rate"])
    codec_id = codec.info.codec_id
    shards = sorted(int(p.stem.split("-")[1]) for p in (layout.root / "audio").glob("audio-*.tar"))
    tasks = [TokenizeTask(str(layout.root), s, spec, codec_id, config.cache_dir) for s in shards]
    owned = not isinstance(engine, Engine)
    runner = (make_engine(engine, scheduler, workers, beam_runner, beam_options, report=progress)
              if owned else engine)
    try:
        skipped = run_pending(runner, stage_name(codec_id), run_tokenize_shard, tasks, layout,
                              progress, index=lambda t: t.shard)
    finally:
        if owned:
            runner.close()
    record = _token_record(layout, codec, spec, shards)
    meta.setdefault("tokens", {})[codec_id] = record
    write_card(layout, meta, summarize(layout.root))
    atomic_write_json(layout.corpus_file, meta)
    return {**record, "skipped_shards": skipped}


def check_codec(config: TokenizeConfig) -> None:
    """Loads the configured codec once, so a bad name, file or bandwidth is reported before a
    long build starts (the loaded codec is kept for this process)."""
    from ualm.tokenize.stage import worker_codec

    worker_codec(CodecSpec(config.codec, config.bandwidth, config.seed, config.device,
                           config.batch_size))


def _load_checked(spec: CodecSpec, corpus_rate: int) -> Any:
    """Loads the codec in this process (so bad weights fail before any work) and keeps it for
    the local engine's use."""
    from ualm.tokenize.stage import worker_codec

    codec = worker_codec(spec)
    if codec.info.sample_rate != corpus_rate:
        _WORKER_CODECS.pop(spec, None)
        raise UalmError(
            f"the corpus's audio is {corpus_rate} Hz but codec {codec.info.name} expects "
            f"{codec.info.sample_rate} Hz",
            fix=f"rebuild the corpus with audio.sample_rate: {codec.info.sample_rate}",
        )
    return codec


def _token_record(layout: CorpusLayout, codec: Any, spec: CodecSpec,
                  shards: list[int]) -> dict[str, Any]:
    """Deterministic totals (cache hits are run facts, kept in the completion records only)."""
    summaries = [read_done(layout, stage_name(codec.info.codec_id), s)["summary"] for s in shards]
    info = codec.info.to_dict()
    total = {k: sum(s[k] for s in summaries)
             for k in ("samples", "frames", "seconds", "token_bytes", "audio_bytes")}
    return {
        **info,
        "codec_id": codec.info.codec_id,
        "source": spec.source if spec.source == "random" else str(Path(spec.source).resolve()),
        "seed": spec.seed,
        "shards": [layout.relative(layout.token_shard(codec.info.codec_id, s)) for s in shards],
        "samples": total["samples"],
        "frames": total["frames"],
        "tokens": total["frames"] * info["codebooks"],
        "seconds": round(total["seconds"], 6),
        "token_bytes": total["token_bytes"],
        "audio_bytes": total["audio_bytes"],
        "token_to_audio_bytes": round(total["token_bytes"] / max(total["audio_bytes"], 1), 6),
    }

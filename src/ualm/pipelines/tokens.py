"""`ualm tokenize`: token shards for every audio shard of a finished corpus, with one codec.

Checks everything that can be wrong before any work (codec, weights, bandwidth, sample rate),
then maps shards on an engine, then records the token set in corpus.json and the dataset card.
A second codec adds a second token set beside the first; rerunning with the same codec finds
every shard complete and does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ualm.config import BuildConfig, TokenizeConfig
from ualm.engines import Engine, engine_for
from ualm.errors import UalmError
from ualm.manifests.card import write_card
from ualm.manifests.inspect import summarize
from ualm.manifests.layout import CorpusLayout, read_done
from ualm.pipelines.resources import output_errors
from ualm.pipelines.stage_list import Context, Stage, run_stages
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
    layout = CorpusLayout(corpus)
    layout.meta(fix="run `ualm build` first")
    if config is None or config.codec is None:
        raise UalmError("no codec given: tokens need codec weights", fix=CODEC_FIX)
    ctx = Context(layout, BuildConfig(tokenize=config))
    with (output_errors(layout, 0),  # a full disk: one line (no estimate of the need)
          engine_for(engine, scheduler, workers, beam_runner, beam_options, progress) as runner):
        run_stages([TOKENS], runner, ctx, progress)
    return ctx.outputs["tokens"]


CODEC_FIX = ("pass --codec PATH (an EnCodec .th checkpoint, or a Hugging Face EnCodec, X-codec, "
             "DAC or Mimi folder); --codec random:encodec only for tests and demos (noise)")


def no_codec_hint(corpus: str | Path) -> str:
    """The one line `ualm build` prints when no codec was configured."""
    return (f"tokens   none: no codec configured; add them with `ualm tokenize {corpus} --codec "
            "PATH` (an EnCodec .th checkpoint or a Hugging Face codec folder), or `--codec "
            "random:encodec` for tests and demos (random weights: noise)")


def format_tokens(tokens: dict[str, Any]) -> str:
    """A token set's record for a person: its totals, and a warning for random weights."""
    line = (f"tokens   {tokens['codec_id']}: {tokens['samples']:,} samples, "
            f"{tokens['tokens']:,} tokens ({tokens['codebooks']} codebooks x "
            f"{tokens['frame_rate']:g} frames/s), {tokens['token_to_audio_bytes']:.3f} of the "
            "audio's bytes")
    if tokens["random_weights"]:
        line += ("\nwarning: the codec has RANDOM weights (tests and demos only); pass --codec "
                 "PATH with real weights (EnCodec, X-codec, DAC or Mimi) for training data")
    return line


def _spec(config: TokenizeConfig) -> CodecSpec:
    assert config.codec is not None  # the stage runs only with a codec (TOKENS.enabled)
    return CodecSpec(config.codec, config.bandwidth, config.seed, config.device, config.batch_size)


def _corpus_rate(ctx: Context) -> int:
    """The corpus's sample rate: as committed, or as the build config will make it."""
    if ctx.layout.is_complete():
        return ctx.layout.meta()["config"]["audio"]["sample_rate"]
    return ctx.config.audio.sample_rate


def _codec(ctx: Context) -> Any:
    """The configured codec, loaded once per process and checked against the corpus's rate."""
    return _load_checked(_spec(ctx.config.tokenize), _corpus_rate(ctx))


def _check(ctx: Context) -> None:
    _codec(ctx)


def _codec_id(ctx: Context) -> str:
    return _codec(ctx).info.codec_id


def _shards(layout: CorpusLayout) -> list[int]:
    return sorted(layout.shards("audio"))


def _tasks(ctx: Context) -> list[TokenizeTask]:
    spec, codec_id = _spec(ctx.config.tokenize), _codec_id(ctx)
    return [TokenizeTask(ctx.layout.location, s, spec, codec_id, ctx.config.tokenize.cache_dir)
            for s in _shards(ctx.layout)]


def _record_token_set(ctx: Context, skipped: int) -> None:
    """corpus.json and the card name the token set, with its deterministic totals."""
    layout, codec = ctx.layout, _codec(ctx)
    record = _token_record(layout, codec, _spec(ctx.config.tokenize), _shards(layout))
    meta = layout.meta()
    meta.setdefault("tokens", {})[codec.info.codec_id] = record
    write_card(layout, meta, summarize(layout))
    layout.commit(meta)
    ctx.outputs["tokens"] = {**record, "skipped_shards": skipped}


TOKENS = Stage(
    "tokens", "map", reads=("audio shards",), writes=("token shards", "corpus.json tokens"),
    tasks=_tasks, unit=run_tokenize_shard, index=lambda t: t.shard,
    enabled=lambda config: config.tokenize.enabled and config.tokenize.codec is not None,
    check=_check,
    record=lambda ctx: stage_name(_codec_id(ctx)), finish=_record_token_set)
"""The codec stage: token shards beside the audio shards of a committed corpus."""


def _load_checked(spec: CodecSpec, corpus_rate: int) -> Any:
    """Loads the codec in this process (so bad weights fail before any work) and keeps it for
    the local engine's use."""
    from ualm.tokenize.stage import worker_codec

    codec = worker_codec(spec)
    if codec.info.sample_rate > corpus_rate:  # a lower rate is resampled to (tokenize.stage)
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
        "source": (spec.source if spec.source.startswith("random")
                   else str(Path(spec.source).resolve())),
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

"""What a corpus holds for training, read from its own files: the token set (codec) a trainer
should use, and the task of a sample as its manifest row gives it."""

from __future__ import annotations

import json
from pathlib import Path

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout


def row_task(task: str | None, modality: str, extra: str | None) -> str:
    """As `chat.sample_task` resolves it from a shard's JSON, but from a manifest row."""
    if task:
        return task
    if modality == "text":
        return "text"
    return "understanding" if extra and "conversations" in json.loads(extra) else "generation"


def corpus_codec(corpus: str | Path, codec_id: str | None = None) -> str:
    """The id of the token set to train on: `codec_id` if the corpus holds it, else its only
    one; a clear error for a folder that is no corpus, or a choice the user must make."""
    meta = CorpusLayout(corpus).meta(fix="pass corpus folders that `ualm build` wrote (or URLs "
                                         "that `ualm publish` finished)")
    tokens = meta.get("tokens") or {}
    if codec_id is not None:
        if codec_id not in tokens:
            raise UalmError(f"{corpus} has no token set {codec_id!r}",
                            fix=f"tokenize it with that codec, or choose one of: "
                                f"{', '.join(sorted(tokens)) or '(none)'}")
        return codec_id
    if len(tokens) != 1:
        raise UalmError(f"{corpus} holds {len(tokens)} token sets",
                        fix="run `ualm tokenize` first" if not tokens else
                        f"set data.codec_id to one of: {', '.join(sorted(tokens))}")
    return next(iter(tokens))

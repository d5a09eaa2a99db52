"""`ualm listen`: a sample's codes decoded back to audio with the codec that made them."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import soundfile as sf

from ualm.errors import UalmError
from ualm.manifests.layout import CorpusLayout
from ualm.tokenize.stage import CodecSpec, worker_codec


@dataclass(frozen=True)
class Listened:
    path: Path
    seconds: float
    codec_id: str
    random_weights: bool


def _token_set(layout: CorpusLayout, codec_id: str | None) -> dict:
    tokens = layout.meta(fix="run `ualm build`").get("tokens", {})
    if not tokens:
        raise UalmError(f"{layout.root} has no token shards", fix="run `ualm tokenize` first")
    if codec_id is None:
        if len(tokens) > 1:
            raise UalmError("the corpus holds several token sets",
                            fix=f"pass --codec-id, one of: {', '.join(sorted(tokens))}")
        codec_id = next(iter(tokens))
    if codec_id not in tokens:
        raise UalmError(f"no token set {codec_id!r}", fix=f"choose one of: {', '.join(tokens)}")
    return tokens[codec_id]


def load_codes(layout: CorpusLayout, codec_id: str, key: str) -> np.ndarray:
    table = layout.folder_table(layout.tokens_manifests(codec_id), ["key", "shard"],
                                filters=ds.field("key") == key)
    if table is None or table.num_rows == 0:
        raise UalmError(f"no sample with key {key!r} in token set {codec_id}",
                        fix="take a key from manifests/samples (column `key`)")
    shard = layout.path(table.column("shard")[0].as_py())
    with layout.open(shard) as handle, tarfile.open(fileobj=handle) as tar:
        data = tar.extractfile(f"{key}.npy").read()
    return np.load(io.BytesIO(data), allow_pickle=False)


def listen(corpus: str | Path, key: str, out: str | Path, codec_id: str | None = None,
           device: str | None = None) -> Listened:
    layout = CorpusLayout(corpus)
    record = _token_set(layout, codec_id)
    codes = load_codes(layout, record["codec_id"], key)
    spec = CodecSpec(record["source"], record["bandwidth"], record.get("seed", 0), device)
    codec = worker_codec(spec)
    if codec.info.checkpoint_sha256 != record["checkpoint_sha256"]:
        raise UalmError(f"the codec at {record['source']} is not the one that made these tokens "
                        "(checksum differs)", fix="restore the original checkpoint")
    audio = codec.decode(codes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, audio, codec.info.sample_rate, subtype="PCM_16")
    return Listened(out, len(audio) / codec.info.sample_rate, record["codec_id"],
                    record["random_weights"])

"""The short and older spellings that `ualm build` and `ualm tokenize` still read, mapped to
their config paths (`--workers 2` is `--engine.workers 2`; a trailing `+` appends to a list)."""

from __future__ import annotations

from ualm.flags import Spellings

ENGINE_SPELLINGS = {"--engine": "--engine.name", "--scheduler": "--engine.scheduler",
                    "--workers": "--engine.workers", "--runner": "--engine.runner"}
BUILD_SPELLINGS = Spellings(renamed={
    **ENGINE_SPELLINGS, "--codec": "--tokenize.codec", "--bandwidth": "--tokenize.bandwidth",
    "--device": "--tokenize.device", "--batch-size": "--tokenize.batch_size",
    "--cache": "--tokenize.cache_dir", "--no-tokenize": "--tokenize.enabled=false",
    "--allow-private-network": "--crawl.allow_private_network=true",
    "--eval-set": "--decontam.eval_sets+"})
TOKENIZE_SPELLINGS = Spellings(renamed={**ENGINE_SPELLINGS, "--cache": "--cache_dir"})
